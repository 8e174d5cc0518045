"""PI102 frozen-head: the layers that produce the output are frozen while layers upstream train."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, OrderSource, Tensor, Trainable, subtree_state
from ._dataflow import has_dataflow, reachable, reaches_output
from ._text import elements, listing, numel, plural, provenance
from .base import Issue, Rule


class FrozenHead(Rule):
    code = "PI102"
    name = "frozen-head"
    severity = Severity.WARNING
    fix = (
        "Freeze the backbone and train the head, not the reverse: check which module you called "
        "requires_grad_(False) / trainable = False on."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        # A layer whose trainability is unknown (state UNKNOWN) cannot be part of the claim, but
        # it does not hide one made without it: the output layers known frozen, and more known
        # trainable elements upstream of them than they hold (a lower bound on what trains).
        frozen_state = Trainable.FROZEN
        if not any(t.trainable is frozen_state for t in graph.tensors.values()):
            return  # nothing known frozen (every ONNX file, plain state dicts): no frozen head
        leaves, states = [], []
        for path in graph.order:
            params = graph.own_parameters(path)
            if params:
                leaves.append(path)
                states.append(subtree_state(params))
        if len(leaves) < 2 or Trainable.FROZEN not in states:
            return
        if has_dataflow(graph):
            yield from _check_edges(graph, leaves, states)
            return
        tail_len = 0
        for state in reversed(states):
            if state is not Trainable.FROZEN:  # trainable, mixed or unknown: the tail ends
                break
            tail_len += 1
        if tail_len == 0 or tail_len == len(leaves):
            return
        tail = leaves[-tail_len:]
        upstream: list[Tensor] = [
            p
            for path in leaves[:-tail_len]
            for p in graph.own_parameters(path)
            if p.trainable is Trainable.TRAINABLE
        ]
        frozen = [p for path in tail for p in graph.own_parameters(path)]
        # Parameter-efficient fine-tuning (LoRA, prompt tuning, adapters) trains a small part
        # upstream of a frozen output layer on purpose; an inverted freeze trains the bulk.
        if not upstream or numel(upstream) <= numel(frozen):
            return
        order = (
            "in dataflow order"
            if graph.order_source is OrderSource.DATAFLOW
            else "in module registration order (the file stores no dataflow graph)"
        )
        trainable_layers = sorted({p.layer for p in upstream}, key=leaves.index)
        yield Issue(
            location=_common_prefix(tail),
            message=(
                f"The last {plural(len(tail), 'layer')} with parameters {order} "
                f"({listing(tail)}) {'is' if len(tail) == 1 else 'are'} frozen while "
                f"{plural(len(trainable_layers), 'layer')} upstream train "
                f"({elements(numel(upstream))} trainable elements, e.g. "
                f"{listing(trainable_layers, 2)}). The output layer cannot adapt to the new task."
            ),
            paths=tuple(tail),
            evidence=provenance(frozen),
        )


def _check_edges(
    graph: ModelGraph, leaves: list[str], states: list[Trainable | None]
) -> Iterator[Issue]:
    """With real edges: frozen layers feeding outputs with no layer after them that trains (or
    may: its trainability is unknown), while trainable layers upstream of them exist."""
    assert graph.edges is not None
    live = reaches_output(graph) or set()
    trainable = {
        path for path in leaves
        if any(p.trainable is Trainable.TRAINABLE for p in graph.own_parameters(path))
    }
    may_train = trainable | {
        path for path, state in zip(leaves, states) if state is Trainable.UNKNOWN
    }
    tail = [
        path for path, state in zip(leaves, states)
        if path in live
        and state is Trainable.FROZEN
        and not reachable(graph.edges, [path]) & may_train
    ]
    if not tail:
        return
    trainable_layers = [
        path for path in leaves if path in trainable and reachable(graph.edges, [path]) & set(tail)
    ]
    upstream = [
        p for path in trainable_layers for p in graph.own_parameters(path)
        if p.trainable is Trainable.TRAINABLE
    ]
    frozen = [p for path in tail for p in graph.own_parameters(path)]
    # Same PEFT guard as in registration order: a small trainable part upstream is on purpose.
    if not upstream or numel(upstream) <= numel(frozen):
        return
    yield Issue(
        location=_common_prefix(tail),
        message=(
            f"{plural(len(tail), 'layer')} with parameters that produce the model output in the "
            f"stored dataflow graph ({listing(tail)}) {'is' if len(tail) == 1 else 'are'} frozen "
            f"with nothing trainable after {'it' if len(tail) == 1 else 'them'}, while "
            f"{plural(len(trainable_layers), 'layer')} upstream train "
            f"({elements(numel(upstream))} trainable elements, e.g. "
            f"{listing(trainable_layers, 2)}). The output layer cannot adapt to the new task."
        ),
        paths=tuple(tail),
        evidence=provenance(frozen),
    )


def _common_prefix(paths: list[str]) -> str:
    parts = [p.split(".") for p in paths]
    common: list[str] = []
    for segment in zip(*parts):
        if len(set(segment)) != 1:
            break
        common.append(segment[0])
    return ".".join(common) if common else paths[0] if len(paths) == 1 else ""
