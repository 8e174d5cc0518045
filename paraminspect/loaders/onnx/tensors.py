"""Tensors of an ONNX graph: initializers, each placed in the layer its dotted name names or else
in the first layer that reads it, and weights kept in Constant nodes."""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import LoadError
from ...graph import Fact, ModelGraph, Source, Tensor, TensorRole, Trainable
from ...io import is_remote
from ...kinds import BUFFER_NAMES
from .records import GraphInfo, NodeInfo, TensorInfo

#: dtypes of weights: an initializer of another known dtype (integer, bool, string) is a buffer
FLOAT_DTYPES = frozenset({
    "float32", "float64", "float16", "bfloat16", "complex64", "complex128", "float8_e4m3fn",
    "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1", "float8_e8m0",
})
#: a torch-style dotted parameter name: ``backbone.conv.weight``, ``layers.0.attn.q_proj.bias``
DOTTED_NAME = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)+$")
#: the characters and first characters of an ASCII name that DOTTED_NAME matches when its dots
#: separate non-empty parts (the test the loader tries before the regex)
DOTTED_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
DOTTED_CHARS = "".join(sorted(DOTTED_START)) + "0123456789-."
#: ops whose weight inputs are parameters when a Constant node (not an initializer) holds them
WEIGHT_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "GroupNormalization", "Gather", "LSTM", "GRU", "RNN", "PRelu",
})
#: the trainability fact of every initializer (one shared instance: Fact is frozen)
NO_TRAINABILITY = Fact(Source.UNKNOWN, "ONNX stores no trainability")


class TensorSteps:
    """The graph builder's steps that turn initializers and Constant-node weights into tensors
    (its state is set up by ``model._Builder``)."""

    path: Path
    graph: ModelGraph
    g: GraphInfo
    node_layer: list[str]
    node_layers: set[str]
    initializers: dict[str, TensorInfo]
    constants: dict[str, TensorInfo | int | float]
    first_reader: dict[str, str]
    remote_external: int

    def _initializers(self) -> None:
        graph = self.graph
        layers, tensors, node_layers = graph.layers, graph.tensors, self.node_layers
        # the first node layer reading each initializer, found when an initializer needs it
        consumer: dict[str, str] | None = None
        # external-data files resolved once per file, not once per initializer
        folder = None if is_remote(self.path) else Path(self.path).resolve().parent
        self.external_sizes: dict[Path, int | OSError] = {}
        shapes: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per distinct shape
        types: dict[int, tuple[str, bool]] = {}  # data_type -> (dtype, not a float type)
        parameter, buffer, unknown = TensorRole.PARAMETER, TensorRole.BUFFER, Trainable.UNKNOWN
        for init in self.g.initializers:
            name = init.name
            if name in tensors:
                raise LoadError(f"two initializers are named {name!r}")
            scope, _, local = name.rpartition(".")
            known = None
            if (  # DOTTED_NAME without the regex for a plain ASCII name, else the regex decides
                scope and local and not name.strip(DOTTED_CHARS) and name[0] in DOTTED_START
                and ".." not in name
            ) or DOTTED_NAME.match(name):
                known = layers.get(scope)
                layer = scope if known is None else known.path  # the layer's own str
                owner = None
                if layer not in node_layers:  # a tensor-only layer: who reads it first
                    if consumer is None:
                        consumer = self._consumers()
                    owner = consumer.get(name)
            else:
                if consumer is None:
                    consumer = self._consumers()
                owner = consumer.get(name)
                if owner is not None:
                    layer = owner
                else:
                    layer = ""
                    graph.notes.append(f"initializer {name} is used by no node")
            shape = tuple(init.dims)
            shape = shapes.setdefault(shape, shape)
            data_type = init.data_type
            kind = types.get(data_type)
            if kind is None:
                dtype = init.dtype
                kind = types[data_type] = (
                    dtype or f"onnx:{data_type}", dtype is not None and dtype not in FLOAT_DTYPES
                )
            tensor = Tensor(
                name, layer, buffer if kind[1] or local in BUFFER_NAMES else parameter, shape,
                kind[0], unknown, NO_TRAINABILITY, init,
            )
            if known is not None:  # ModelGraph.add_tensor without its second lookup
                known.tensors.append(name)
                tensors[name] = tensor
            else:
                graph.add_tensor(tensor)
            if owner is not None and layer != owner and layer not in node_layers:
                self.first_reader.setdefault(layer, owner)
            if init.data_location == 1 or init.external_data:
                if folder is not None:
                    self._external(init, folder)
                else:
                    self.remote_external += 1

    def _consumers(self) -> dict[str, str]:
        """Initializer name -> the layer of the first node that reads it."""
        initializers = self.initializers
        consumer: dict[str, str] = {}
        for node, layer in zip(self.g.nodes, self.node_layer, strict=True):
            for name in node.inputs:
                if name in initializers and name not in consumer:
                    consumer[name] = layer
        return consumer

    def _constant_weights(self) -> None:
        """Weights kept in Constant nodes instead of initializers: literals of the inference
        graph, so frozen by construction. Counted where a weight-bearing op (or the Add of its
        bias) reads them; small literals (rates, shapes, epsilons) are not parameters."""
        candidates = [
            (name, value) for name, value in self.constants.items()
            if isinstance(value, TensorInfo) and value.dtype in FLOAT_DTYPES and value.dims
            and name not in self.graph.tensors
        ]
        if not candidates:
            return
        producer = {o: n for n in self.g.nodes for o in n.outputs if o}
        readers: dict[str, list[NodeInfo]] = {}
        for node in self.g.nodes:
            for name in node.inputs:
                readers.setdefault(name, []).append(node)
        fact = Fact(Source.INFERRED, "a Constant node of the ONNX graph: an inference-only literal")
        for name, value in candidates:
            users = readers.get(name, [])
            if not any(
                u.op_type in WEIGHT_OPS or (u.op_type == "Add" and any(
                    producer.get(i) is not None and producer[i].op_type in WEIGHT_OPS
                    for i in u.inputs if i != name))
                for u in users
            ):
                continue
            layer = self.node_layer[users[0].index] if users else ""
            tensor = Tensor(
                name=name, layer=layer, role=TensorRole.PARAMETER, shape=tuple(value.dims),
                dtype=value.dtype, trainable=Trainable.FROZEN, trainable_fact=fact,
            )
            tensor.origin = value
            self.graph.add_tensor(tensor)
