"""Checking many files on several cores: a process pool whose results come back in input order.

Each file is independent (one file's reader never touches another's), so files are spread over
worker processes in chunks and the reports are yielded in the order the files were given: the
output of ``--jobs N`` is the output of a serial run, byte for byte. Small runs stay serial,
because starting workers costs more than checking a handful of files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .findings import FileReport

#: fewer files than this per worker are checked serially (a worker costs ~20-50 ms to start)
MIN_FILES_PER_JOB = 8
#: files handed to a worker at once: large enough to amortize the pickling round trip
CHUNK = 16


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def effective_jobs(files: int, jobs: int | None) -> int:
    """How many processes a run of ``files`` files really uses (1: serial, no pool)."""
    wanted = default_jobs() if jobs is None or jobs <= 0 else jobs
    return max(1, min(wanted, files // MIN_FILES_PER_JOB))


def iter_check_files(
    files: Sequence[str | Path], settings: Settings, jobs: int | None = None
) -> Iterator[FileReport]:
    """Reports for ``files``, in order; in ``jobs`` processes when the run is large enough."""
    from .engine import check_file

    workers = effective_jobs(len(files), jobs)
    if workers == 1:
        for path in files:
            yield check_file(path, settings)
        return
    # imported only for a pool: multiprocessing costs a sixth of a one-file run's start-up
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        chunk = max(1, min(CHUNK, len(files) // (workers * 4)))
        yield from pool.map(_check_one, files, [settings] * len(files), chunksize=chunk)


def _check_one(path: str | Path, settings: Settings) -> FileReport:
    from .engine import check_file

    return check_file(path, settings)


def _context() -> Any:
    # fork starts a worker in milliseconds and inherits the imported modules; the check path is
    # single-threaded, so forking it is safe. Elsewhere the platform default.
    import multiprocessing

    if sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()
