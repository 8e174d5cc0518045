"""PI101 no-trainable-params: every parameter of the model is frozen."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Mode, ModelGraph, Trainable
from ._text import elements, numel, plural, provenance
from .base import Issue, Rule


class NoTrainableParams(Rule):
    code = "PI101"
    name = "no-trainable-params"
    severity = Severity.WARNING
    fix = (
        "Unfreeze the layers you mean to train (requires_grad_(True) / trainable = True) before "
        "building the optimizer."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        params = graph.parameters()
        if not params or any(p.trainable is Trainable.UNKNOWN for p in params):
            return
        if any(p.trainable is Trainable.TRAINABLE for p in params):
            return
        if graph.optimizers:
            severity = Severity.ERROR
            why = f"yet the file holds optimizer state ({graph.optimizers[0].name}), so training was intended"
        elif any(layer.mode is Mode.TRAIN for layer in graph.layers.values()):
            severity = Severity.WARNING
            why = "and the model is in train mode: a training step would update nothing"
        elif graph.content == "export":
            return  # an inference export is frozen by nature: nothing to say
        else:
            severity = Severity.INFO
            why = "which is fine for an inference artifact, not for fine-tuning"
        yield Issue(
            location="",
            message=(
                f"all {plural(len(params), 'parameter')} ({elements(numel(params))} elements) are "
                f"frozen, {why} ({provenance(params)})"
            ),
            severity=severity,
        )
