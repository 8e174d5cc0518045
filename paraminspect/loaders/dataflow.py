"""Layer-level dataflow from an operation-level graph, for loaders whose format stores one.

A loader describes its file as operations, each owned by a layer or by nobody, that consume and
produce named values. Operations owned by nobody (``group=None``, e.g. the glue code of a
container's ``forward``) are transparent: an edge passes through them. The result is the layer
graph rules read: ``A -> B`` when a value computed by ``A`` reaches ``B`` through transparent
operations only, and the layers whose values reach a model output.

Reachability is over-approximated, never under-approximated: a value that *may* flow somewhere
gives an edge, so a rule asking "is there no path" is never told "no path" wrongly.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from ..record import Record

#: marker for "reaches a model output"
OUTPUT = "\x00output"


class Op(Record):
    """One operation: the layer that owns it (None: transparent glue), values in and out."""

    __slots__ = ("group", "inputs", "outputs")
    group: str | None
    inputs: list[str]
    outputs: list[str]

    def __init__(
        self, group: str | None, inputs: list[str] | None = None,
        outputs: list[str] | None = None,
    ) -> None:
        self.group = group
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs


def contract(
    ops: list[Op], sources: dict[str, str | None], outputs: Iterable[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Layer edges (deduplicated, in discovery order) and the layers that reach an output.

    ``sources`` maps values no operation produces (parameters, inputs) to their owning layer
    (None for user inputs); ``outputs`` are the values the model returns.
    """
    output_values = set(outputs)
    consumers: dict[str, list[int]] = {}
    for index, op in enumerate(ops):
        for value in op.inputs:
            consumers.setdefault(value, []).append(index)

    # reach[i]: layers (or OUTPUT) that transparent op i's results reach through transparent ops.
    reach: dict[int, set[str]] = {i: set() for i, op in enumerate(ops) if op.group is None}

    def value_reach(value: str) -> set[str]:
        found = {OUTPUT} if value in output_values else set()
        for consumer in consumers.get(value, ()):
            group = ops[consumer].group
            if group is None:
                found |= reach[consumer]
            else:
                found.add(group)
        return found

    # Fixpoint: values may be reassigned in loops (TorchScript locals), so the op graph can be
    # cyclic. Iterating in reverse order settles an acyclic graph in one pass plus a check.
    transparent = [i for i in reversed(range(len(ops))) if ops[i].group is None]
    changed = True
    while changed:
        changed = False
        for i in transparent:
            new: set[str] = set()
            for value in ops[i].outputs:
                new |= value_reach(value)
            if not new <= reach[i]:
                reach[i] |= new
                changed = True

    edges: dict[tuple[str, str], None] = {}
    out_layers: dict[str, None] = {}

    def emit(owner: str, values: Iterable[str]) -> None:
        for value in values:
            for target in value_reach(value):
                if target == OUTPUT:
                    out_layers[owner] = None
                elif target != owner:
                    edges[(owner, target)] = None

    for value, owner in sources.items():
        if owner is not None:
            emit(owner, [value])
    for op in ops:
        if op.group is not None:
            emit(op.group, op.outputs)
    return list(edges), list(out_layers)


def topological_order(
    layers: list[str], edges: list[tuple[str, str]]
) -> tuple[list[str], bool]:
    """``layers`` sorted so every edge points forward, ties kept in the given order.

    Returns the order and whether a cycle had to be broken (a module called twice in one
    forward can make the layer graph cyclic); a cycle is broken at the earliest layer.
    """
    rank = {path: i for i, path in enumerate(layers)}
    if len(rank) == len(layers):
        at = rank.get
        for src, dst in edges:
            i, j = at(src), at(dst)
            if i is not None and j is not None and i >= j:
                break
        else:  # already sorted: the heap below would return the given order
            return list(layers), False
    indegree = dict.fromkeys(layers, 0)
    successors: dict[str, list[str]] = {path: [] for path in layers}
    for src, dst in edges:
        if src in rank and dst in rank:
            successors[src].append(dst)
            indegree[dst] += 1
    ready = [rank[p] for p in layers if indegree[p] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    placed: set[str] = set()
    cyclic = False
    while len(order) < len(layers):
        if not ready:
            cyclic = True
            heapq.heappush(ready, min(rank[p] for p in layers if p not in placed))
        path = layers[heapq.heappop(ready)]
        if path in placed:
            continue
        placed.add(path)
        order.append(path)
        for nxt in successors[path]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0 and nxt not in placed:
                heapq.heappush(ready, rank[nxt])
    return order, cyclic
