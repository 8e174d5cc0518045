"""The library API the CLI is a thin shell over. Nothing here prints."""

from __future__ import annotations

from pathlib import Path

from . import engine, loaders
from .config import Settings
from .errors import LoadError, Skip
from .findings import FileReport, Report
from .graph import ModelGraph


def load(path: str | Path) -> ModelGraph:
    """Read a model file into a :class:`ModelGraph` without executing it.

    Raises :class:`paraminspect.errors.LoadError` (one-line message) for unreadable input.
    """
    try:
        return loaders.load(path)
    except Skip as skip:
        raise LoadError(str(skip)) from None


def check(target: str | Path | ModelGraph | object, config: Settings | None = None) -> Report:
    """Check a file, a folder, a :class:`ModelGraph` or a live ``torch.nn.Module``.

    Returns a :class:`Report`; findings are data. Unreadable files become report entries with
    ``error`` set, never exceptions.
    """
    settings = config or Settings()
    if isinstance(target, ModelGraph):
        report = FileReport(path=target.path, format=target.format, content=target.content)
        report.summary = engine.summarize(target)
        report.findings = engine.check_graph(target, settings)
        return Report(files=[report])
    if isinstance(target, (str, Path)):
        return engine.check_paths([target], settings)
    if hasattr(target, "named_parameters") and hasattr(target, "training"):
        from .live import graph_from_module

        return check(graph_from_module(target), settings)
    raise TypeError(
        f"cannot check a {type(target).__name__}: pass a path, a ModelGraph or a module"
    )
