"""The engine: path -> graph -> rules -> :class:`FileReport`. It prints nothing."""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from math import prod
from pathlib import Path

from .config import Settings
from .deadline import TimedOut, deadline
from .errors import LoadError, NotAModel, Skip, Unsupported
from .findings import FileReport, Finding, Report, Summary, group_findings
from .graph import ModelGraph, Source, TensorRole, Trainable
from .io import remote_walk, restore_url
from .loaders import MODEL_SUFFIXES, load
from .other_formats import identify_folder
from .rules import all_rules
from .rules.base import Issue
from .rules.unreadable_file import UnreadableFile
from .rules.unsupported_format import UnsupportedFormat
from .sniff import LFS_POINTER, ZIP_MAGICS, sniff

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"}


def summarize(graph: ModelGraph) -> Summary:
    """Element counts in one pass over the tensors (a 100,000-tensor graph is read once)."""
    total = buffers = trainable = frozen = 0
    parameter = TensorRole.PARAMETER
    for tensor in graph.tensors.values():
        shape = tensor.shape
        count = prod(shape) if shape is not None else 0
        if tensor.role is not parameter:
            buffers += count
            continue
        total += count
        state = tensor.trainable
        if state is Trainable.TRAINABLE:
            trainable += count
        elif state is Trainable.FROZEN:
            frozen += count
    source = graph.trainability_source()
    known = source is not Source.UNKNOWN
    return Summary(
        layers=len(graph.layers) - ("" in graph.layers),
        params=total,
        trainable_params=trainable if known else None,
        frozen_params=frozen if known else None,
        buffers=buffers,
        trainability=source.value,
    )


def check_graph(graph: ModelGraph, settings: Settings | None = None) -> list[Finding]:
    """Run every enabled rule over ``graph``. A crashing rule raises RuntimeError."""
    settings = settings or Settings()
    findings: list[Finding] = []
    for rule_cls in all_rules():
        if not settings.rule_enabled(rule_cls.code, rule_cls.name, graph.path):
            continue
        try:
            issues = list(rule_cls(settings).check(graph))
        except Exception as exc:  # noqa: BLE001 - a rule bug must not hide the other findings
            raise RuntimeError(f"rule {rule_cls.code} failed: {type(exc).__name__}: {exc}") from exc
        findings.extend(rule_cls.finding(issue) for issue in issues)
    return group_findings(findings)


def check_file(path: str | Path, settings: Settings | None = None) -> FileReport:
    """Check one file. Never raises for bad input: errors land in the report."""
    settings = settings or Settings()
    with _gc_paused():
        try:
            with deadline(settings.timeout):
                return _check_file(path, settings)
        except TimedOut:
            return _unreadable(
                FileReport(path=str(path)),
                f"timed out after {settings.timeout:g} s (--timeout): not checked",
                settings,
            )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Reading allocates many small objects and frees almost none: the cyclic collector would
    rescan them over and over (a fifth of the time at 50,000 tensors). Paused for one file."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_file(path: str | Path, settings: Settings) -> FileReport:
    report = FileReport(path=str(path))
    if os.path.isdir(path):
        try:
            os.listdir(path)
        except OSError as exc:  # an unlistable folder is reported, never skipped silently
            return _unreadable(report, f"cannot list this folder: {exc.strerror or exc}", settings)
    try:
        graph = load(path)
    except Unsupported as other:
        report.format = f"unsupported:{other.format_name}"
        if settings.rule_enabled(UnsupportedFormat.code, UnsupportedFormat.name, report.path):
            message = f"unsupported format: {other.format_name} (not checked)"
            report.findings = [UnsupportedFormat.finding(Issue(location="", message=message))]
        return report
    except Skip as skip:
        report.skipped = str(skip)
        return report
    except NotAModel as exc:
        if settings.non_models == "notice":
            report.skipped = f"{exc} (not checked)"
            return report
        return _unreadable(report, str(exc), settings)
    except LoadError as exc:
        _unreadable(report, str(exc), settings)
        partial = getattr(exc, "partial", None)  # what a pickle walk saw before failing
        if isinstance(partial, ModelGraph):
            report.findings.extend(check_graph(partial, settings))
        return report
    except Exception as exc:  # noqa: BLE001 - a loader bug is reported, never a traceback
        return _unreadable(report, f"internal error while reading ({type(exc).__name__}: {exc})",
                           settings)
    report.format, report.content = graph.format, graph.content
    report.summary = summarize(graph)
    try:
        report.findings = check_graph(graph, settings)
    except RuntimeError as exc:
        report.error = str(exc)
    return report


def _unreadable(report: FileReport, message: str, settings: Settings) -> FileReport:
    if not settings.rule_enabled(UnreadableFile.code, UnreadableFile.name, report.path):
        # --ignore PI001 applies like any other code: the file is named, it does not fail
        report.skipped = f"unreadable ({message}); not reported, {UnreadableFile.code} is ignored"
        return report
    report.error = message
    report.findings = [UnreadableFile.finding(Issue(location="", message=message))]
    return report


def iter_model_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named explicitly, plus the model files found under named folders: chosen by their
    bytes (see :func:`worth_checking`), with folders that hold one model yielded whole.

    URLs (``s3://``, ``https://``, ...) stay strings; a remote folder yields the files with a
    model suffix (sniffing each remote file's bytes would cost a request per file)."""
    for raw in paths:
        url = restore_url(raw)
        if url is not None:
            for name, _ in remote_walk(url):
                if name == url or name.lower().endswith(MODEL_SUFFIXES):
                    yield name  # type: ignore[misc]
            continue
        path = Path(raw)
        if path.is_dir() and identify_folder(path) is None:
            from .loaders.runs import folder_kind, model_files  # only a folder needs them

            failed: list[OSError] = []  # folders that cannot be listed are checked, and fail
            for folder, dirs, files in os.walk(path, onerror=failed.append):
                while failed:
                    yield Path(failed.pop(0).filename)
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
                # a Core ML package is one (unsupported) model: named once, its files not opened
                packages = [d for d in dirs if identify_folder(Path(folder) / d) is not None]
                dirs[:] = [d for d in dirs if d not in packages]
                yield from (Path(folder) / d for d in packages)
                # A model stored as a folder (shards, HF config + weights, PEFT adapter) is one
                # model; its other files (optimizer.pt, training_args.bin) are still checked.
                is_model = folder_kind(Path(folder)) is not None
                claimed = model_files(Path(folder)) if is_model else set()
                dirs[:] = [d for d in dirs if Path(folder) / d not in claimed]
                if is_model:
                    yield Path(folder)
                base = Path(folder)
                for name in sorted(files):
                    candidate = base / name
                    if (not claimed or candidate not in claimed) and worth_checking(candidate):
                        yield candidate
            while failed:
                yield Path(failed.pop(0).filename)
        else:
            yield path


#: bytes of plain text (printable ASCII, whitespace, and the bytes of UTF-8 sequences)
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r\f" + bytes(range(0x80, 0x100))


def worth_checking(path: Path) -> bool:
    """Whether a file met in a folder scan is a model: its first bytes match a model format
    (supported or one PI004 names), or it has a model suffix and bytes no format claims (so a
    truncated checkpoint is still reported). Companions, data and text files are passed over."""
    model_suffix = path.name.lower().endswith(MODEL_SUFFIXES)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # never opened: checking names them as skipped special files
            return not stat.S_ISDIR(mode)
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, 64)
        finally:
            os.close(fd)
    except OSError:
        return False
    # Plain text is no model format, except a Git LFS pointer and the XML of an OpenVINO IR:
    # decided here without the full sniff, which matters in folders of many small files.
    if _plain_text(head) and not head.startswith(LFS_POINTER) and not head.lstrip().startswith(
            b"<"):
        return model_suffix
    if model_suffix and head.startswith(ZIP_MAGICS):
        return True  # a zip never sniffs as a companion: checked whether it opens or not
    try:
        return sniff(path).format != "companion"
    except LoadError:
        return model_suffix
    except OSError:
        return False


def _plain_text(head: bytes) -> bool:
    if not head or head.translate(None, _TEXT_BYTES):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the head is still text
        return exc.reason == "unexpected end of data"
    return True


def folders_without_models(paths: Iterable[str | Path], report: Report) -> list[str]:
    """The named folders in which no file could be checked as a model (only unsupported formats,
    skipped files, companions or nothing at all): a run over them must not pass as clean."""
    checked = [
        Path(f.path) for f in report.files
        if f.error or (f.format and not f.format.startswith("unsupported:") and not f.skipped)
    ]
    empty = []
    for raw in paths:
        folder = Path(raw)
        if folder.is_dir() and identify_folder(folder) is None and not any(
            p == folder or folder in p.parents for p in checked
        ):
            empty.append(str(raw))
    return empty


def check_paths(
    paths: Iterable[str | Path], settings: Settings | None = None, jobs: int | None = 1
) -> Report:
    """Check files and folders. ``jobs``: processes to use (``None``: one per core); the report
    is the same, in the same order, whatever the number."""
    from .parallel import iter_check_files

    settings = settings or Settings()
    files = list(iter_model_files(paths))
    return Report(files=list(iter_check_files(files, settings, jobs)))
