"""PI104 dead-trainable-param: trainable parameters whose layer cannot reach any model output."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, Trainable
from ._dataflow import reaches_output
from ._text import elements, numel, plural, provenance
from .base import Issue, Rule


class DeadTrainableParam(Rule):
    code = "PI104"
    name = "dead-trainable-param"
    severity = Severity.WARNING
    fix = (
        "Remove the unused module, freeze it (requires_grad_(False)), or wire it into forward: "
        "as stored, its parameters never receive a gradient."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        if not any(t.trainable is Trainable.TRAINABLE for t in graph.tensors.values()):
            return  # nothing trains: nothing can train in vain (and no walk of the edges)
        live = reaches_output(graph)
        if live is None:
            return
        for path in graph.order:
            if path in live:
                continue
            trainable = [
                p for p in graph.own_parameters(path) if p.trainable is Trainable.TRAINABLE
            ]
            if not trainable:
                continue
            yield Issue(
                location=path,
                message=(
                    f"The layer holds {plural(len(trainable), 'trainable parameter')} "
                    f"({elements(numel(trainable))} elements), but nothing it computes reaches a "
                    "model output in the stored dataflow graph. They never get a gradient, so "
                    "training them only costs memory and time."
                ),
                paths=(path,),
                evidence=provenance(trainable),
            )
