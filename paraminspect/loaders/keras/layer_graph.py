"""Dataflow between the layers of a Functional or Sequential config: edges read from each layer's
``inbound_nodes``, the model's outputs and the layer order they give.
"""

from __future__ import annotations

from ...graph import ModelGraph, OrderSource
from ..dataflow import topological_order
from .layer_config import LayerSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_dataflow(graph: ModelGraph, root: LayerSpec, order_specs: list[LayerSpec]) -> None:
    """Edges, outputs and dataflow order of a model whose config stores its layer graph."""
    edges: list[tuple[str, str]] = []
    _edges(graph, root, edges)
    leaves = {spec.path for spec in order_specs}
    for spec in order_specs:  # a wrapper's sub-layers compute part of its output
        parent = graph.ancestors(spec.path)[0] if spec.path else None
        if parent is not None and parent in leaves:
            edges.append((spec.path, parent))
    graph.edges = list(dict.fromkeys(edges))
    graph.outputs = _outputs(root)
    graph.order = _topological(graph, order_specs, graph.edges)
    graph.order_source = OrderSource.DATAFLOW


def _edges(graph: ModelGraph, spec: LayerSpec, edges: list[tuple[str, str]]) -> None:
    by_name = {child.name: child for child in spec.children}
    if spec.kind == "sequential":
        for src, dst in zip(spec.children, spec.children[1:]):
            for a in _producers(src, 0):
                for b in _consumers(dst, 0):
                    edges.append((a, b))
    else:
        for raw, child in zip(spec.raw_layers or [], spec.children):
            for position, (src_name, tensor_index) in enumerate(_inbound(raw)):
                src = by_name.get(src_name)
                if src is None:
                    continue
                for a in _producers(src, tensor_index):
                    for b in _consumers(child, position):
                        edges.append((a, b))
            kwargs = _call_kwargs(raw)
            if "training" in kwargs:
                # a default an outer training=True overrides: recorded, never trusted
                graph.layers[child.path].attrs["call_training_kwarg"] = kwargs["training"]
    for child in spec.children:
        if child.kind in ("functional", "sequential"):
            _edges(graph, child, edges)


def _producers(spec: LayerSpec, tensor_index: int) -> list[str]:
    if spec.kind == "sequential":
        return _producers(spec.children[-1], 0) if spec.children else [spec.path]
    if spec.kind == "functional":
        outs = _endpoints(spec.config.get("output_layers"))
        if tensor_index < len(outs):
            outs = [outs[tensor_index]]
        by_name = {child.name: child for child in spec.children}
        return [p for name, index in outs if name in by_name
                for p in _producers(by_name[name], index)] or [spec.path]
    return [spec.path]


def _consumers(spec: LayerSpec, position: int) -> list[str]:
    if spec.kind == "sequential":
        return _consumers(spec.children[0], 0) if spec.children else [spec.path]
    if spec.kind == "functional":
        ins = _endpoints(spec.config.get("input_layers"))
        if len(ins) > 1 and position < len(ins):
            ins = [ins[position]]
        by_name = {child.name: child for child in spec.children}
        return [p for name, _ in ins if name in by_name
                for p in _consumers(by_name[name], 0)] or [spec.path]
    return [spec.path]


def _outputs(root: LayerSpec) -> list[str]:
    if root.kind == "sequential":
        return _producers(root, 0)
    outs = _endpoints(root.config.get("output_layers"))
    by_name = {child.name: child for child in root.children}
    return list(dict.fromkeys(
        p for name, index in outs if name in by_name
        for p in _producers(by_name[name], index)
    ))


def _topological(
    graph: ModelGraph, order_specs: list[LayerSpec], edges: list[tuple[str, str]],
) -> list[str]:
    """Leaf layers in dataflow order (ties broken by config order), each nested model
    placed just before its first layer; the root first."""
    # a layer called twice in a row feeds itself: that edge orders nothing
    order, _ = topological_order(
        [s.path for s in order_specs], [(a, b) for a, b in edges if a != b]
    )
    out = [""]
    seen = {""}
    for path in order:
        for ancestor in reversed(graph.ancestors(path)[:-1]):
            if ancestor not in seen:
                out.append(ancestor)
                seen.add(ancestor)
        if path not in seen:
            out.append(path)
            seen.add(path)
    return out + [p for p in graph.layers if p not in seen]


def _endpoints(value: Any) -> list[tuple[str, int]]:
    """``input_layers`` / ``output_layers``: ``[name, node, tensor]`` or a list of them."""
    if not isinstance(value, list) or not value:
        return []
    items = [value] if isinstance(value[0], str) else value
    out = []
    for item in items:
        if isinstance(item, list) and item and isinstance(item[0], str):
            index = item[2] if len(item) > 2 and isinstance(item[2], int) else 0
            out.append((item[0], index))
    return out


def _inbound(raw: dict[str, Any]) -> list[tuple[str, int]]:
    """Source ``(layer name, tensor index)`` of every input, over every node of a layer."""
    found: list[tuple[str, int]] = []
    nodes = raw.get("inbound_nodes")
    if not isinstance(nodes, list):
        return found
    for node in nodes:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            _histories(node.get("args"), found)
            _histories(node.get("kwargs"), found)
        elif isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
            for item in node:
                if isinstance(item, list) and item and isinstance(item[0], str):
                    index = item[2] if len(item) > 2 and isinstance(item[2], int) else 0
                    found.append((item[0], index))
    return found


def _histories(value: Any, found: list[tuple[str, int]]) -> None:
    if isinstance(value, dict):
        history = value.get("keras_history") if isinstance(value.get("keras_history"), list) else None
        if history is None and isinstance(value.get("config"), dict):
            history = value["config"].get("keras_history")
        if isinstance(history, list) and history and isinstance(history[0], str):
            index = history[2] if len(history) > 2 and isinstance(history[2], int) else 0
            found.append((history[0], index))
            return
        for item in value.values():
            _histories(item, found)
    elif isinstance(value, list):
        for item in value:
            _histories(item, found)


def _call_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    nodes = raw.get("inbound_nodes")
    if isinstance(nodes, list):
        for node in nodes:
            if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
                return node["kwargs"]
            if isinstance(node, list):
                for item in node:
                    if isinstance(item, list) and len(item) > 3 and isinstance(item[3], dict):
                        return item[3]
    return {}
