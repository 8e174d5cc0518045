"""PI103 mixed-layer-freeze: inside one layer some parameters are frozen and others trainable."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, TensorRole, Trainable
from ._text import listing, plural, provenance
from .base import Issue, Rule


class MixedLayerFreeze(Rule):
    code = "PI103"
    name = "mixed-layer-freeze"
    severity = Severity.WARNING
    fix = (
        "Freeze or unfreeze whole layers (module.requires_grad_(...)), not single tensors, unless "
        "a partial freeze is the method you intend."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        known = {t.trainable for t in graph.tensors.values() if t.role is TensorRole.PARAMETER}
        if not {Trainable.TRAINABLE, Trainable.FROZEN} <= known:
            return  # no layer can mix what the whole model does not
        mixed = []
        for layer in graph.layers.values():
            if not layer.tensors:
                continue
            params = graph.own_parameters(layer.path)
            states = {p.trainable for p in params}
            if (
                Trainable.UNKNOWN not in states
                and {Trainable.TRAINABLE, Trainable.FROZEN} <= states
            ):
                mixed.append(layer.path)
        if not mixed:
            return
        # A model-wide rule by parameter name (BitFit: every bias trains, nothing else) is a
        # method, not a slip: report it once, as information.
        by_name: dict[str, set[Trainable]] = {}
        known = [p for p in graph.parameters() if p.trainable is not Trainable.UNKNOWN]
        for param in known:
            by_name.setdefault(param.local_name, set()).add(param.trainable)
        if all(len(states) == 1 for states in by_name.values()):
            trainable_names = sorted(n for n, s in by_name.items() if Trainable.TRAINABLE in s)
            yield Issue(
                location="",
                message=(
                    f"{plural(len(mixed), 'layer')} train only the parameters named "
                    f"{listing(trainable_names)}, one model-wide pattern (BitFit-style). That is "
                    "a fine-tuning method, not a slip, so it is reported once, as information."
                ),
                severity=Severity.INFO,
                paths=tuple(mixed),
                fix="Nothing to do if the partial freeze is intended.",
                evidence=provenance(known),
            )
            return
        for path in mixed:
            params = graph.own_parameters(path)
            frozen = [p.local_name for p in params if p.trainable is Trainable.FROZEN]
            trainable = [p.local_name for p in params if p.trainable is Trainable.TRAINABLE]
            yield Issue(
                location=path,
                message=(
                    f"The layer is partly frozen: {listing(frozen)} frozen, {listing(trainable)} "
                    "trainable. A freeze meant for the whole layer that missed a tensor trains "
                    "only part of it."
                ),
                paths=tuple(p.name for p in params if p.trainable is Trainable.FROZEN),
                evidence=provenance(params),
            )
