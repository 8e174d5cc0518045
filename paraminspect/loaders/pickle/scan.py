"""The security scan of files that hold pickles but no model (numpy object arrays, zips of
pickles, protocol 0/1 pickles, archives that cannot be read): a graph with code references only.

"Not a model" never ends the scan: the graph's content is ``data`` and the pickle's globals are
recorded with their verdicts. A walk that fails part-way keeps what it saw before the failure.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LoadError
from ...graph import ModelGraph
from ...sniff import Sniffed
from .carriers import walk_file
from .limits import DEFAULT_LIMITS
from .policy import code_references
from .stubs import GlobalLog


def with_partial(exc: LoadError, graph: ModelGraph, log: GlobalLog) -> LoadError:
    """Attach what a failed walk saw, so its unsafe globals are reported beside the load error."""
    graph.content = "partial"
    graph.code_references = code_references(log)
    exc.partial = graph  # type: ignore[attr-defined]
    return exc


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    graph = ModelGraph(path=str(path), format=sniffed.format, content="data")
    log = GlobalLog()
    try:
        what = walk_file(path, log, DEFAULT_LIMITS)
    except LoadError as exc:
        raise with_partial(exc, graph, log) from None
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    graph.format = "numpy" if what.startswith("numpy") else "pickle" if what == "pickle" else "zip"
    graph.code_references = code_references(log)
    graph.notes.append(f"not a model: a {what}, scanned for unsafe pickle code only")
    return graph
