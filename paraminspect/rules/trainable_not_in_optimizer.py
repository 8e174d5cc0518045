"""PI302 trainable-not-in-optimizer: trainable parameters the saved optimizer never updates."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, Source, Trainable
from ._text import group_by_layer, listing, plural
from .base import Issue, Rule


class TrainableNotInOptimizer(Rule):
    code = "PI302"
    name = "trainable-not-in-optimizer"
    severity = Severity.WARNING
    fix = (
        "Rebuild the optimizer after unfreezing (or add a param group with "
        "optimizer.add_param_group); in Keras, call compile() again."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        # Only an exact alignment proves absence; only a stored flag proves trainability.
        if not graph.optimizers or not all(o.exhaustive for o in graph.optimizers):
            return
        tracked = {name for opt in graph.optimizers for name in opt.tracked}
        orphans = [
            p
            for p in graph.parameters()
            if p.trainable is Trainable.TRAINABLE
            and p.trainable_fact.source is Source.STORED
            and p.name not in tracked
        ]
        names = ", ".join(o.name for o in graph.optimizers)
        for layer, params in group_by_layer(orphans).items():
            local = [p.local_name for p in params]
            yield Issue(
                location=layer,
                message=(
                    f"{plural(len(params), 'trainable parameter')} ({listing(local)}) "
                    f"{'is' if len(params) == 1 else 'are'} in no saved optimizer ({names}). "
                    "They receive gradients but are never updated, typically because they were "
                    "unfrozen after the optimizer was built."
                ),
                paths=tuple(p.name for p in params),
                evidence="trainable: stored in the file; optimizer alignment: exact",
            )
