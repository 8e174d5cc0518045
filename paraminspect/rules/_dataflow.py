"""Reachability over a graph's layer-level dataflow edges, shared by rules that use them."""

from __future__ import annotations

from ..graph import ModelGraph, OrderSource


def has_dataflow(graph: ModelGraph) -> bool:
    """True when the graph holds real edges and knows its outputs (not registration order)."""
    return graph.order_source is OrderSource.DATAFLOW and graph.edges is not None and bool(
        graph.outputs
    )


def reachable(edges: list[tuple[str, str]], start: list[str], backwards: bool = False) -> set[str]:
    """Layers reachable from ``start`` (excluding ``start`` unless on a cycle)."""
    neighbours: dict[str, list[str]] = {}
    for src, dst in edges:
        a, b = (dst, src) if backwards else (src, dst)
        neighbours.setdefault(a, []).append(b)
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in neighbours.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def reaches_output(graph: ModelGraph) -> set[str] | None:
    """Layers with a dataflow path to a model output (outputs included), or None without edges."""
    if not has_dataflow(graph):
        return None
    assert graph.edges is not None
    return set(graph.outputs) | reachable(graph.edges, list(graph.outputs), backwards=True)
