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
            why = (
                f"the file holds optimizer state ({graph.optimizers[0].name}), so training was "
                "intended, and a training step would update nothing"
            )
        elif any(layer.mode is Mode.TRAIN for layer in graph.layers.values()):
            severity = Severity.WARNING
            why = "the model is in train mode, and a training step would update nothing"
        elif graph.root.mode is Mode.EVAL:
            return  # frozen, eval mode, no optimizer: an inference artifact, as intended
        elif graph.content == "export":
            return  # an inference export is frozen by nature: nothing to say
        else:
            severity = Severity.INFO
            why = "that is fine for an inference artifact, not for fine-tuning"
        yield Issue(
            location="",
            message=(
                f"All {plural(len(params), 'parameter')} ({elements(numel(params))} elements) are "
                f"frozen. {why[0].upper()}{why[1:]}."
            ),
            severity=severity,
            evidence=provenance(params),
        )
