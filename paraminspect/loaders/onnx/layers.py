"""Layers of an ONNX graph: which layer each node belongs to (from the module scope its exporter
recorded, see scopes.py), and the layers' order along the dataflow."""

from __future__ import annotations

from ...graph import ModelGraph, OrderSource
from ..dataflow import topological_order
from .ops import MODE_OPS
from .records import GraphInfo, NodeInfo
from .scopes import Scope, dynamo_scope, legacy_scope, standalone_name, unique


class LayerSteps:
    """The graph builder's steps that create the node layers and order the layers (its state is
    set up by ``model._Builder``)."""

    graph: ModelGraph
    g: GraphInfo
    node_layer: list[str]
    mode_nodes: dict[str, list[NodeInfo]]
    node_layers: set[str]
    node_paths: list[str]
    first_reader: dict[str, str]

    def _assign_layers(self) -> None:
        graph = self.graph
        layers = graph.layers
        graph.ensure_layer("")
        nodes = self.g.nodes
        suffixes: dict[str, bool] = {}  # legacy node-name suffix -> whether it is an op suffix
        scoped: list[Scope | None] = [
            (dynamo_scope(node) if node.metadata else None) or legacy_scope(node, suffixes)
            for node in nodes
        ]
        taken = {s[0] for s in scoped if s and s[0]}
        # A scope-less Constant joins the scope of the node that reads it (it is that node's
        # literal argument, not a layer of its own).
        loose = [n for n in nodes if n.op_type == "Constant" and not (scoped[n.index] or ("",))[0]]
        if loose:
            readers: dict[str, int] = {}
            for node in nodes:
                for name in node.inputs:
                    readers.setdefault(name, node.index)
            for node in loose:
                reader = readers.get(node.outputs[0]) if node.outputs else None
                scope = scoped[reader] if reader is not None else None
                if scope and scope[0]:
                    scoped[node.index] = (scope[0], (), ())
        node_layer = self.node_layer
        mode_nodes = self.mode_nodes
        #: layer path -> (op types, node names) of its nodes: the lists its attrs hold
        seen: dict[str, tuple[list[str], list[str]]] = {}
        for node, scope in zip(nodes, scoped, strict=True):
            if scope and scope[0]:
                path, scopes, classes = scope
                if path not in layers:
                    graph.ensure_layer(path)
                if classes:
                    for scope_path, cls in zip(scopes, classes, strict=False):
                        if cls and scope_path in layers:
                            layers[scope_path].class_name = cls
            else:
                if scope and scope[2]:  # a root-scope node still names the model class
                    graph.root.class_name = graph.root.class_name or scope[2][0]
                path = unique(standalone_name(node), taken)
                taken.add(path)
                graph.ensure_layer(path)
            node_layer.append(path)
            op_type = node.op_type
            entry = seen.get(path)
            if entry is None:
                attrs = layers[path].attrs
                attrs["ops"] = [op_type]
                attrs["nodes"] = [node.name or f"#{node.index}"]
                seen[path] = (attrs["ops"], attrs["nodes"])  # type: ignore[assignment]
            else:
                entry[0].append(op_type)
                entry[1].append(node.name or f"#{node.index}")
            if op_type in MODE_OPS:
                mode_nodes.setdefault(path, []).append(node)
        self.node_layers = set(node_layer)
        self.node_paths = list(seen)  # the node layers, in the order of their first nodes

    def _edges_and_order(self) -> None:
        graph = self.graph
        producer: dict[str, str] = {}
        for node, path in zip(self.g.nodes, self.node_layer, strict=True):
            for out in node.outputs:
                if out:
                    producer[out] = path
        edges: dict[tuple[str, str], None] = {}
        for node, path in zip(self.g.nodes, self.node_layer, strict=True):
            for name in node.inputs:
                src = producer.get(name)
                if src is not None and src != path:
                    edges[(src, path)] = None
        graph.edges = list(edges)
        graph.outputs = list(dict.fromkeys(producer[o] for o in self.g.outputs if o in producer))
        graph.order, cyclic = topological_order(self.node_paths, graph.edges)
        if cyclic:
            graph.notes.append(
                "layer-level dataflow has cycles (a scope's ops interleave with another's); "
                "those layers are ordered by first node"
            )
        graph.order = _with_owners(graph, graph.order, self.first_reader)
        graph.order_source = OrderSource.DATAFLOW


def _with_owners(graph: ModelGraph, order: list[str], first_reader: dict[str, str]) -> list[str]:
    """``order`` with every ancestor placed before its first descendant and every tensor-only
    layer (``backbone.conv`` holding weights folded into another scope's node) placed before the
    layer that first reads its tensors; layers nothing reads go last."""
    out: list[str] = []
    seen: set[str] = set()  # holds the ancestors of every path it holds

    def emit(path: str) -> None:
        """``path`` and those of its ancestors not yet out, outermost first."""
        fresh = []
        while path not in seen:
            fresh.append(path)
            if not path:
                break
            path = path.rsplit(".", 1)[0] if "." in path else ""
        for anc in reversed(fresh):
            seen.add(anc)
            out.append(anc)

    waiting: dict[str, list[str]] = {}
    for owner, reader in first_reader.items():
        waiting.setdefault(reader, []).append(owner)
    for path in order:
        if path in waiting:
            for owner in sorted(waiting[path]):
                emit(owner)
        if path in seen:
            continue
        if path and path.rpartition(".")[0] in seen:  # emit's one-step case, inline
            seen.add(path)
            out.append(path)
        else:
            emit(path)
    for path in graph.layers:
        if path not in seen:
            emit(path)
    return out
