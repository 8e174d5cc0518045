"""The engine: path -> graph -> rules -> :class:`FileReport`. It prints nothing."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import Settings
from .errors import LoadError, Skip
from .findings import FileReport, Finding, Report, Summary
from .graph import ModelGraph, Source, Trainable
from .io import remote_walk, restore_url
from .loaders import MODEL_SUFFIXES, load
from .loaders.folders import folder_kind, model_files
from .rules import all_rules
from .rules.base import Issue
from .rules.unreadable_file import UnreadableFile

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"}


def summarize(graph: ModelGraph) -> Summary:
    params = graph.parameters()
    source = graph.trainability_source()
    total = sum(p.numel or 0 for p in params)
    trainable = frozen = None
    if source is not Source.UNKNOWN:
        trainable = sum(p.numel or 0 for p in params if p.trainable is Trainable.TRAINABLE)
        frozen = sum(p.numel or 0 for p in params if p.trainable is Trainable.FROZEN)
    return Summary(
        layers=sum(1 for layer in graph.layers.values() if layer.path),
        params=total,
        trainable_params=trainable,
        frozen_params=frozen,
        buffers=sum(b.numel or 0 for b in graph.buffers()),
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
    return findings


def check_file(path: str | Path, settings: Settings | None = None) -> FileReport:
    """Check one file. Never raises for bad input: errors land in the report."""
    settings = settings or Settings()
    with _gc_paused():
        return _check_file(path, settings)


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
    try:
        graph = load(path)
    except Skip as skip:
        report.skipped = str(skip)
        return report
    except LoadError as exc:
        return _unreadable(report, str(exc), settings)
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
    report.error = message
    if settings.rule_enabled(UnreadableFile.code, UnreadableFile.name, report.path):
        report.findings = [UnreadableFile.finding(Issue(location="", message=message))]
    return report


def iter_model_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named explicitly, plus files with a model suffix found under named folders.

    URLs (``s3://``, ``https://``, ...) stay strings; a remote folder yields its model files."""
    for raw in paths:
        url = restore_url(raw)
        if url is not None:
            for name, _ in remote_walk(url):
                if name == url or name.lower().endswith(MODEL_SUFFIXES):
                    yield name  # type: ignore[misc]
            continue
        path = Path(raw)
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
                # A model stored as a folder (shards, HF config + weights, PEFT adapter) is one
                # model; its other files (optimizer.pt, training_args.bin) are still checked.
                is_model = folder_kind(Path(folder)) is not None
                claimed = model_files(Path(folder)) if is_model else set()
                if is_model:
                    yield Path(folder)
                for name in sorted(files):
                    if name.lower().endswith(MODEL_SUFFIXES) and Path(folder) / name not in claimed:
                        yield Path(folder) / name
        else:
            yield path


def check_paths(
    paths: Iterable[str | Path], settings: Settings | None = None, jobs: int | None = 1
) -> Report:
    """Check files and folders. ``jobs``: processes to use (``None``: one per core); the report
    is the same, in the same order, whatever the number."""
    from .parallel import iter_check_files

    settings = settings or Settings()
    files = list(iter_model_files(paths))
    return Report(files=list(iter_check_files(files, settings, jobs)))
