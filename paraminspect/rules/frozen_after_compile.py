"""PI301 frozen-after-compile: the optimizer was built for parameters that are frozen now."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, Optimizer, ParamOptState, Trainable
from ._text import listing, plural
from .base import Issue, Rule

#: What fresh optimizer state on frozen weights means; the mechanism differs per framework.
STALE_STATE = {
    "pytorch": (
        "they still carry optimizer state as fresh as the trainable ones: if their .grad is "
        "zero-filled instead of None (zero_grad(set_to_none=False)), momentum and Adam moments "
        "keep moving them"
    ),
    "deepspeed": (
        "DeepSpeed built its flat optimizer partition with them (param_shapes) and lists them as "
        "frozen now (frozen_param_shapes): the optimizer still steps their slice of the partition, "
        "so they keep moving"
    ),
    "keras": (
        "the optimizer was built while they were trainable. Either the model was frozen after "
        "compile() without compiling again, and the cached train step still updates them (a bug), "
        "or compile() was called again with the same optimizer object, which keeps the old slots "
        "but trains correctly; compile with a new optimizer instance to tell the two apart"
    ),
}


class FrozenAfterCompile(Rule):
    code = "PI301"
    name = "frozen-after-compile"
    severity = Severity.WARNING
    fix = (
        "Freeze first, then build the optimizer from the trainable parameters only "
        "(torch: AdamW(p for p in model.parameters() if p.requires_grad); Keras: call compile() "
        "again after changing trainable)."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for opt in graph.optimizers:
            by_layer: dict[str, list[tuple[str, ParamOptState]]] = {}
            # Entries that never got state while others stepped are PI303's: never updated.
            stepped = any(s.has_state for s in opt.tracked.values())
            for name, state in opt.tracked.items():
                if stepped and not state.has_state:
                    continue
                tensor = graph.tensors.get(name)
                if tensor is not None and tensor.trainable is Trainable.FROZEN:
                    by_layer.setdefault(tensor.layer, []).append((name, state))
            for layer, entries in by_layer.items():
                yield _issue(graph, opt, layer, entries)


def _issue(
    graph: ModelGraph, opt: Optimizer, layer: str, entries: list[tuple[str, ParamOptState]]
) -> Issue:
    names = [graph.tensors[n].local_name for n, _ in entries]
    states = [s for _, s in entries]
    label = f"{opt.type or 'the optimizer'} ({opt.name})"
    top = max((s.step for s in opt.tracked.values() if s.step is not None), default=None)
    lagging = [s for s in states if s.step is not None and top is not None and s.step < top]
    fact = graph.tensors[entries[0][0]].trainable_fact
    frozen_how = "" if fact.source.value == "stored" else f"; frozen: inferred, {fact.evidence}"
    severity = None
    if not any(s.has_state for s in states):
        detail = (
            "they never received a gradient, so they hold no optimizer state and are not updated; "
            "harmless unless their .grad is ever set"
        )
        severity = Severity.INFO
    elif lagging:
        steps = sorted({s.step for s in lagging if s.step is not None})
        detail = (
            f"they stopped being stepped at step {listing([f'{x:g}' for x in steps])} of {top:g}: "
            "frozen mid-training while the optimizer kept their momentum state"
        )
        if fact.source.value != "stored":
            detail += (
                " (a step lag can also come from a branch that gets gradients on some steps "
                "only; the file cannot tell the two apart)"
            )
    else:
        detail = STALE_STATE.get(graph.framework or "", STALE_STATE["pytorch"])
    groups = {s.group for s in states}
    decay = [g.weight_decay for g in opt.groups if g.index in groups and g.weight_decay]
    if decay:
        detail += f", and weight_decay={decay[0]:g} keeps shrinking them whenever a .grad exists"
    return Issue(
        location=layer,
        message=(
            f"{plural(len(names), 'frozen parameter')} ({listing(names)}) "
            f"{'is' if len(names) == 1 else 'are'} still tracked by {label}. "
            f"{detail[0].upper()}{detail[1:]}."
        ),
        paths=tuple(n for n, _ in entries),
        severity=severity,
        evidence=f"optimizer alignment: {opt.alignment}{frozen_how}",
    )
