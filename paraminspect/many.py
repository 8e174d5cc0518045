"""Registry audits: checking 10^5-10^6 files on any executor, into a resumable JSON Lines file.

:func:`check_many` expands paths (local or remote folders), skips every file the output already
records with the same identity (path + size + mtime, or the server's ETag), hands the rest to a
``concurrent.futures``-style executor (a process pool, a Dask ``Client``, a Ray pool, or none)
and appends one JSON object per file as results arrive. An interrupted audit resumes where it
stopped: run the same call again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .io import is_remote, remote_info

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: batches kept in flight: enough to keep a cluster busy, bounded so memory stays flat
MAX_IN_FLIGHT = 64
#: files per task: a scheduler round trip costs more than checking one small file
BATCH = 32


@dataclass(frozen=True)
class ManySummary:
    """What one :func:`check_many` call did."""

    checked: int  #: files checked in this call
    skipped: int  #: files already recorded with the same identity (resumed)
    findings: int  #: findings in the files checked in this call
    errors: int  #: unreadable files among them


def file_identity(path: str | Path) -> str:
    """``size:mtime_ns`` for a local file; the ETag (else size + modification time) remotely.
    A file whose identity changed since it was recorded is checked again."""
    if is_remote(str(path)):
        info = remote_info(str(path))
        for key in ("ETag", "etag", "ETAG", "md5", "LastModified", "mtime", "Last-Modified"):
            if info.get(key):
                return f"{info.get('size')}:{info[key]}"
        return f"{info.get('size')}:"
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def check_record(path: str, settings: Settings | None = None) -> dict[str, Any]:
    """Check one file and return its JSON Lines record (runs on a worker; never raises for bad
    input, like :func:`paraminspect.engine.check_file`)."""
    from .engine import check_file

    try:
        identity = file_identity(path)
    except (OSError, ValueError) as exc:
        identity = f"unavailable: {exc}"
    report = check_file(path, settings)
    return {"path": path, "identity": identity, **report.to_dict()}


def check_records(paths: list[str], settings: Settings | None = None) -> list[dict[str, Any]]:
    """:func:`check_record` for a batch of files (one task on an executor)."""
    return [check_record(path, settings) for path in paths]


def recorded(out: Path) -> dict[str, str]:
    """``path -> identity`` of every complete record in ``out`` (a cut-off last line is ignored)."""
    done: dict[str, str] = {}
    if not out.exists():
        return done
    with open(out, encoding="utf-8") as stream:
        for line in stream:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("path"), str):
                done[record["path"]] = str(record.get("identity"))
    return done


def check_many(
    paths: Iterable[str | Path],
    executor: Any = None,
    out: str | Path | None = None,
    settings: Settings | None = None,
) -> ManySummary:
    """Check every model file under ``paths`` and append one JSON line per file to ``out``.

    ``executor``: anything with ``submit(fn, *args) -> Future`` (``ProcessPoolExecutor``,
    ``distributed.Client``, ``client.get_executor()``, ``ray.util.multiprocessing``-style pools
    wrapped in an executor); ``None`` checks in this process. Files recorded in ``out`` with the
    same identity are skipped, so re-running an interrupted call resumes it. Without ``out``,
    records go nowhere and only the summary is returned.
    """
    from .engine import iter_model_files

    settings = settings or Settings()
    if executor is not None and hasattr(executor, "get_executor"):  # a distributed.Client
        executor = executor.get_executor()
    target = Path(out) if out is not None else None
    done = recorded(target) if target is not None else {}
    files = [str(p) for p in iter_model_files(paths)]
    todo = [p for p in files if not _unchanged(p, done)]
    skipped = len(files) - len(todo)
    totals = {"checked": 0, "findings": 0, "errors": 0}
    stream = open(target, "a", encoding="utf-8") if target is not None else None  # noqa: SIM115
    if stream is not None and stream.tell() > 0 and not _ends_with_newline(target):  # type: ignore[arg-type]
        stream.write("\n")  # close a line an interrupted run cut off
    try:
        for record in _results(todo, executor, settings):
            totals["checked"] += 1
            totals["findings"] += len(record.get("findings") or [])
            totals["errors"] += bool(record.get("error"))
            if stream is not None:
                stream.write(json.dumps(record, separators=(",", ":")) + "\n")
                stream.flush()  # a record on disk is a file never checked again
    finally:
        if stream is not None:
            stream.close()
    return ManySummary(skipped=skipped, **totals)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def _unchanged(path: str, done: dict[str, str]) -> bool:
    if path not in done:
        return False
    try:
        return file_identity(path) == done[path]
    except (OSError, ValueError):
        return False


def _results(
    paths: list[str], executor: Any, settings: Settings
) -> Iterator[dict[str, Any]]:
    if executor is None:
        for path in paths:
            yield check_record(path, settings)
        return
    pending: set[Future[Any]] = set()
    batches = (paths[i : i + BATCH] for i in range(0, len(paths), BATCH))
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < MAX_IN_FLIGHT:
            batch = next(batches, None)
            if batch is None:
                exhausted = True
                break
            pending.add(executor.submit(check_records, batch, settings))
        if not pending:
            break
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            yield from future.result()
