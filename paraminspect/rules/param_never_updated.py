"""PI303 param-never-updated: optimizer members that never received a gradient."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph
from ._text import listing, plural
from .base import Issue, Rule


class ParamNeverUpdated(Rule):
    code = "PI303"
    name = "param-never-updated"
    severity = Severity.INFO
    fix = (
        "If the parameters are meant to stay fixed, leave them out of the optimizer; if they are "
        "meant to train, check that the forward pass uses them and that they were not frozen "
        "before the first step."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for opt in graph.optimizers:
            states = list(opt.tracked.values())
            stepped = [s for s in states if s.has_state]
            if not stepped:
                continue  # nothing stepped yet: an optimizer saved before training says nothing
            top = max((s.step for s in stepped if s.step is not None), default=None)
            by_layer: dict[str, list[str]] = {}
            for name, state in opt.tracked.items():
                tensor = graph.tensors.get(name)
                if tensor is not None and not state.has_state:
                    by_layer.setdefault(tensor.layer, []).append(tensor.local_name)
            label = f"{opt.type or 'the optimizer'} ({opt.name})"
            others = f", up to step {top:g}" if top else ""
            for layer, names in by_layer.items():
                yield Issue(
                    location=layer,
                    message=(
                        f"{plural(len(names), 'parameter')} ({listing(names)}) "
                        f"{'is' if len(names) == 1 else 'are'} in a param group of {label} but "
                        f"never received a gradient: no optimizer state at all while the others "
                        f"stepped{others}. They were frozen before the first step or sit on a "
                        f"branch the loss never reaches, and never moved"
                    ),
                    evidence=f"optimizer alignment: {opt.alignment}",
                    paths=tuple(f"{layer}.{n}" if layer else n for n in names),
                )
