"""PI001 unreadable-file: the file is not a model, or is truncated, corrupt or unsupported."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph
from .base import Issue, Rule


class UnreadableFile(Rule):
    code = "PI001"
    name = "unreadable-file"
    severity = Severity.ERROR
    fix = "Check that the file is complete and is a model file; re-save or re-download it."

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        # Load failures are reported by the engine with this rule; here: readable, but no model.
        if graph.content == "none":
            detail = next(
                (n for n in graph.notes if n.startswith("no model found")), "no model found"
            )
            yield Issue(location="", message=f"{detail}: nothing to check")
