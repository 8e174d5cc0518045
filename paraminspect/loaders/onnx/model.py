"""ONNX ``.onnx`` files, read with the pure-Python wire walker (no onnx import, no tensor bytes).

Nodes are grouped into layers by the module scope the exporter recorded: the dynamo exporter's
``pkg.torch.onnx.name_scopes`` / ``class_hierarchy`` node metadata, or the legacy exporter's
node names (``/backbone/bn/BatchNormalization`` -> ``backbone.bn``). A node without a scope is
a layer of its own. Initializers become tensors of the layer their name places them in (a dotted
``backbone.conv.weight``) or else of the first layer that consumes them.

ONNX records no trainability, so every tensor stays ``Trainable.UNKNOWN``. It does record the
train/eval behaviour of BatchNormalization (``training_mode``) and Dropout (its third input).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    CodeReference,
    Fact,
    Layer,
    LayerKind,
    Mode,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...io import is_remote, open_binary
from ...kinds import BUFFER_NAMES, classify
from ...sniff import Sniffed
from ..dataflow import topological_order
from .lowered import find_lowered
from .records import DATA_TYPES, ModelInfo, NodeInfo, TensorInfo
from .scopes import Scope, dynamo_scope, legacy_scope, standalone_name, unique
from .wire import WireError, read_model

#: op_type -> layer kind, for layers whose class the file does not name
OP_KINDS: dict[str, LayerKind] = {
    "BatchNormalization": LayerKind.BATCHNORM,
    "Dropout": LayerKind.DROPOUT,
    "Conv": LayerKind.CONV,
    "ConvTranspose": LayerKind.CONV,
    "ConvInteger": LayerKind.CONV,
    "QLinearConv": LayerKind.CONV,
    "Gemm": LayerKind.LINEAR,
    "MatMul": LayerKind.LINEAR,
    "MatMulInteger": LayerKind.LINEAR,
    "QLinearMatMul": LayerKind.LINEAR,
    "InstanceNormalization": LayerKind.INSTANCENORM,
    "LayerNormalization": LayerKind.LAYERNORM,
    "GroupNormalization": LayerKind.GROUPNORM,
    "RMSNormalization": LayerKind.RMSNORM,
    "SimplifiedLayerNormalization": LayerKind.RMSNORM,
    "Gather": LayerKind.EMBEDDING,
    "Attention": LayerKind.ATTENTION,
    "MultiHeadAttention": LayerKind.ATTENTION,
    "LSTM": LayerKind.RECURRENT,
    "GRU": LayerKind.RECURRENT,
    "RNN": LayerKind.RECURRENT,
    "Relu": LayerKind.ACTIVATION,
    "LeakyRelu": LayerKind.ACTIVATION,
    "PRelu": LayerKind.ACTIVATION,
    "Sigmoid": LayerKind.ACTIVATION,
    "Tanh": LayerKind.ACTIVATION,
    "Gelu": LayerKind.ACTIVATION,
    "Softmax": LayerKind.ACTIVATION,
    "Elu": LayerKind.ACTIVATION,
    "Selu": LayerKind.ACTIVATION,
    "HardSigmoid": LayerKind.ACTIVATION,
    "HardSwish": LayerKind.ACTIVATION,
    "Mish": LayerKind.ACTIVATION,
    "MaxPool": LayerKind.POOLING,
    "AveragePool": LayerKind.POOLING,
    "GlobalAveragePool": LayerKind.POOLING,
    "GlobalMaxPool": LayerKind.POOLING,
    "LpPool": LayerKind.POOLING,
}
#: when a layer holds several ops, the first kind in this list that one of them has wins
KIND_PRIORITY = (
    LayerKind.BATCHNORM, LayerKind.DROPOUT, LayerKind.INSTANCENORM, LayerKind.LAYERNORM,
    LayerKind.GROUPNORM, LayerKind.RMSNORM, LayerKind.ATTENTION, LayerKind.RECURRENT,
    LayerKind.CONV, LayerKind.LINEAR, LayerKind.EMBEDDING, LayerKind.POOLING,
    LayerKind.ACTIVATION,
)
#: initializer names (last dotted part) that are state, not weights
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
#: graph.metadata key: training-mode layers lowered into plain ops (read by train-mode rules)
TRAIN_MODE_OPS = "train_mode_ops"
#: ops whose node decides its layer's train/eval mode
MODE_OPS = frozenset({"BatchNormalization", "Dropout"})
#: the trainability fact of every initializer (one shared instance: Fact is frozen)
NO_TRAINABILITY = Fact(Source.UNKNOWN, "ONNX stores no trainability")


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read an ONNX model's structure. Raises LoadError for malformed or inconsistent files."""
    try:
        with open_binary(path) as handle:
            size = handle.seek(0, 2)
            model = read_model(handle, size)
    except WireError as exc:
        raise LoadError(f"malformed ONNX file: {exc}") from None
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    if model.graph is None:
        raise LoadError("not an ONNX model: the protobuf holds no graph")
    if model.ir_version is None and not model.opsets:
        raise LoadError("not an ONNX model: no ir_version and no opset_import")
    return _Builder(path, model).build()


class _Builder:
    def __init__(self, path: Path, model: ModelInfo) -> None:
        assert model.graph is not None
        self.path = path
        self.model = model
        self.g = model.graph
        self.graph = ModelGraph(path=str(path), format="onnx", content="export", framework="onnx")
        self.node_layer: list[str] = []  # node index -> layer path
        #: layer path -> its BatchNormalization and Dropout nodes, in order
        self.mode_nodes: dict[str, list[NodeInfo]] = {}
        self.node_layers: set[str] = set()
        self.node_paths: list[str] = []
        self.initializers = {t.name: t for t in self.g.initializers}
        self.constants: dict[str, TensorInfo | int | float] = {}  # Constant node outputs
        self.opset = model.opsets.get("", model.opsets.get("ai.onnx", 0))
        #: tensor-owning layer without nodes -> the node layer that first reads its tensors
        self.first_reader: dict[str, str] = {}
        self.remote_external = 0  #: external-data initializers of a remote model (not opened)
        self.op_facts: dict[str, Fact] = {}  #: "ONNX op X" kind facts by op type

    def build(self) -> ModelGraph:
        graph = self.graph
        producer = " ".join(p for p in (self.model.producer_name, self.model.producer_version) if p)
        graph.framework_version = producer or None
        self._metadata()
        self._collect_constants()
        self._assign_layers()
        self._initializers()
        self._constant_weights()
        if self.remote_external:
            graph.notes.append(
                f"{self.remote_external} initializer(s) keep their data in external files, which "
                "are not checked for a remote model"
            )
        self._kinds_and_modes()
        self._lowered_train_mode()
        self._edges_and_order()
        return graph

    # -- metadata ---------------------------------------------------------------------------
    def _metadata(self) -> None:
        m, graph = self.model, self.graph
        graph.metadata.update({
            "ir_version": m.ir_version,
            "opset": dict(m.opsets),
            "producer": m.producer_name,
            "producer_version": m.producer_version,
            "graph_name": self.g.name,
            "inputs": [i for i in self.g.inputs if i not in self.initializers],
            "outputs": list(self.g.outputs),
            "nodes": len(self.g.nodes),
            "initializers": len(self.g.initializers),
            "tensor_bytes_skipped": m.skipped_bytes,
        })
        if m.metadata:
            graph.metadata["model_metadata"] = dict(m.metadata)
        if m.training_infos:
            graph.notes.append(
                f"the model carries {m.training_infos} TrainingInfoProto record(s); inference "
                "runtimes ignore them and they were not analysed"
            )
        if m.functions:
            graph.notes.append(
                f"{len(m.functions)} model-local function(s) ({', '.join(m.functions[:4])}) "
                "were not expanded: ops inside them are not analysed"
            )
        if self.g.subgraphs:
            graph.notes.append(
                f"{self.g.subgraphs} control-flow subgraph(s) (If/Loop/Scan bodies) were not analysed"
            )
        if self.g.sparse_initializers:
            graph.notes.append(f"{self.g.sparse_initializers} sparse initializer(s) not listed")

    def _collect_constants(self) -> None:
        """Outputs of Constant nodes whose value is a tiny scalar (Dropout's training_mode)."""
        for node in self.g.nodes:
            if node.op_type != "Constant" or not node.outputs:
                continue
            attrs = node.attributes
            if "value" in attrs and attrs["value"].t is not None:
                self.constants[node.outputs[0]] = attrs["value"].t
            elif "value_int" in attrs and attrs["value_int"].i is not None:
                self.constants[node.outputs[0]] = attrs["value_int"].i
            elif "value_float" in attrs and attrs["value_float"].f is not None:
                self.constants[node.outputs[0]] = attrs["value_float"].f

    # -- layers -----------------------------------------------------------------------------
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

    # -- tensors ----------------------------------------------------------------------------
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

    def _lowered_train_mode(self) -> None:
        """Dropout and batch statistics that the exporter lowered into plain ops."""
        found = find_lowered(self.g.nodes, self.initializers, dict(self.constants))
        records = []
        for item in found:
            location = item.scope or self.node_layer[item.node]
            records.append({"location": location, "kind": item.kind, "evidence": item.evidence})
        if records:
            self.graph.metadata[TRAIN_MODE_OPS] = records

    def _external(self, init: TensorInfo, folder: Path) -> None:
        location = init.external_data.get("location", "")
        if not location:
            raise LoadError(f"initializer {init.name} is stored externally but names no file")
        try:
            offset = int(init.external_data.get("offset", "0") or 0)
            length = init.external_data.get("length")
            length_n = int(length) if length else _payload_size(init)
        except ValueError:
            raise LoadError(f"initializer {init.name} has a non-numeric external-data offset/length") from None
        target = _inside(folder, location)
        if target is None:
            self.graph.notes.append(
                f"initializer {init.name} points at external data {location!r} outside the model's "
                "folder; it was not opened (onnx refuses such paths; a crafted file can use them "
                "to read other files)"
            )
            self.graph.code_references.append(
                CodeReference(target=location, how="external-data-escape", location=init.name)
            )
            return
        if target not in self.external_sizes:
            try:
                self.external_sizes[target] = os.stat(target).st_size
            except OSError as exc:
                self.external_sizes[target] = exc
        size = self.external_sizes[target]
        if isinstance(size, FileNotFoundError):
            raise LoadError(f"external data file {location} (initializer {init.name}) is missing")
        if isinstance(size, OSError):
            raise LoadError(f"external data file {location} cannot be read: {size.strerror}")
        if offset < 0 or (length_n is not None and offset + length_n > size):
            need = offset + (length_n or 0)
            raise LoadError(
                f"external data file {location} is too short: initializer {init.name} needs bytes "
                f"up to {need}, the file has {size}"
            )
        self.graph.metadata.setdefault("external_data", [])
        files = self.graph.metadata["external_data"]
        if isinstance(files, list) and location not in files:
            files.append(location)

    # -- kinds and modes --------------------------------------------------------------------
    def _kinds_and_modes(self) -> None:
        graph = self.graph
        node_layers, mode_nodes = self.node_layers, self.mode_nodes
        singles: dict[str, tuple[LayerKind | None, Fact]] = {}  # op -> kind, fact of a lone op
        folded = False  # whether a node layer is a batch norm by its class (see below)
        for path, layer in graph.layers.items():
            ops: list[str] | None = layer.attrs.get("ops")  # type: ignore[assignment]
            if ops is None:  # a layer without nodes of its own
                if layer.class_name:
                    self._kind(layer, [])
                if layer.kind is LayerKind.OTHER and layer.children and path not in node_layers:
                    layer.kind = LayerKind.CONTAINER if path else LayerKind.MODEL
                continue
            if len(ops) == 1 and not layer.class_name:  # _kind's common case, inline
                single = singles.get(ops[0])
                if single is None:
                    single = singles[ops[0]] = (OP_KINDS.get(ops[0]), self._op_fact(ops[0]))
                if single[0] is not None:
                    layer.kind = single[0]
                layer.kind_fact = single[1]
            else:
                self._kind(layer, ops)
                folded = folded or (layer.kind is LayerKind.BATCHNORM and bool(layer.class_name))
            if path not in mode_nodes:
                continue
            bn = None
            for node in mode_nodes[path]:
                if bn is None and node.op_type == "BatchNormalization":
                    bn = node
                mode, fact = self._node_mode(node)
                if mode is Mode.UNKNOWN and fact is None:
                    continue
                if layer.mode is Mode.TRAIN:
                    continue
                if mode is Mode.TRAIN or layer.mode is Mode.UNKNOWN:
                    layer.mode, layer.mode_fact = mode, fact or Fact()
            if bn is not None:
                for attr in ("epsilon", "momentum"):
                    if attr in bn.attributes:
                        layer.attrs[attr] = bn.attributes[attr].value()
        for path in node_layers if folded else ():
            layer = graph.layers[path]
            if layer.kind is not LayerKind.BATCHNORM or not layer.class_name:
                continue
            ops = layer.attrs.get("ops") or []
            if "BatchNormalization" not in ops and "Conv" in ops:
                graph.notes.append(
                    f"{path}: the {layer.class_name.rsplit('.', 1)[-1]} was folded into a Conv by "
                    "the exporter (inference graph); its running statistics are gone"
                )

    def _kind(self, layer: Layer, ops: list[str]) -> None:
        """The layer's kind from its recorded class, else from its nodes' op types."""
        if layer.class_name:
            kind = classify(layer.class_name)
            if kind is not LayerKind.OTHER:
                layer.kind = kind
                layer.kind_fact = Fact(
                    Source.STORED, "module class recorded by the exporter (pkg.torch.onnx.class_hierarchy)"
                )
                return
        if len(ops) == 1:  # the common case, without the priority search
            if ops[0] in OP_KINDS:
                layer.kind = OP_KINDS[ops[0]]
            layer.kind_fact = self._op_fact(ops[0])
            return
        kinds = {OP_KINDS[op]: op for op in ops if op in OP_KINDS}
        if kinds:
            kind = min(kinds, key=KIND_PRIORITY.index)
            layer.kind = kind
            layer.kind_fact = self._op_fact(kinds[kind])
        elif ops:
            layer.kind_fact = self._op_fact(ops[0])

    def _op_fact(self, op_type: str) -> Fact:
        """The fact "ONNX op X", one shared instance per op type (Fact is frozen)."""
        fact = self.op_facts.get(op_type)
        if fact is None:
            fact = self.op_facts[op_type] = Fact(Source.STORED, f"ONNX op {op_type}")
        return fact

    def _node_mode(self, node: NodeInfo) -> tuple[Mode, Fact | None]:
        if node.op_type == "BatchNormalization" and node.domain in ("", "ai.onnx"):
            return _bn_mode(node)
        if node.op_type == "Dropout" and node.domain in ("", "ai.onnx"):
            return self._dropout_mode(node)
        return Mode.UNKNOWN, None

    def _dropout_mode(self, node: NodeInfo) -> tuple[Mode, Fact | None]:
        if "is_test" in node.attributes:  # opset < 7
            test = node.attributes["is_test"].i
            mode = Mode.EVAL if test else Mode.TRAIN
            return mode, Fact(Source.STORED, f"is_test={test} in the ONNX Dropout node")
        if len(node.inputs) < 3 or not node.inputs[2]:
            if self.opset and self.opset < 12:
                return Mode.EVAL, Fact(
                    Source.INFERRED, f"opset {self.opset} Dropout has no training input (inference)"
                )
            return Mode.EVAL, Fact(Source.STORED, "Dropout without a training_mode input (default false)")
        name = node.inputs[2]
        value = self._scalar(name)
        if value is None:
            return Mode.UNKNOWN, Fact(
                Source.UNKNOWN, f"Dropout training_mode comes from {name!r}, which is not a constant"
            )
        where = "a Constant node" if name in self.constants else "an initializer"
        if value:
            return Mode.TRAIN, Fact(Source.STORED, f"Dropout training_mode input {name} is true ({where})")
        return Mode.EVAL, Fact(Source.STORED, f"Dropout training_mode input {name} is false ({where})")

    def _scalar(self, name: str) -> float | int | bool | None:
        value = self.constants.get(name)
        if value is None:
            value = self.initializers.get(name)
        if isinstance(value, TensorInfo):
            return value.scalar()
        return value

    # -- dataflow ---------------------------------------------------------------------------
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


# -- helpers ----------------------------------------------------------------------------------
def _bn_mode(node: NodeInfo) -> tuple[Mode, Fact]:
    attr = node.attributes.get("training_mode")
    if attr is not None and attr.i is not None:
        if attr.i:
            return Mode.TRAIN, Fact(Source.STORED, "training_mode=1 in the ONNX node")
        return Mode.EVAL, Fact(Source.STORED, "training_mode=0 in the ONNX node")
    extra = [o for o in node.outputs[1:] if o]
    if extra:
        return Mode.TRAIN, Fact(
            Source.STORED, f"the ONNX BatchNormalization node outputs running statistics ({len(extra)} extra outputs)"
        )
    test = node.attributes.get("is_test")
    if test is not None and test.i is not None:
        mode = Mode.EVAL if test.i else Mode.TRAIN
        return mode, Fact(Source.STORED, f"is_test={test.i} in the ONNX node")
    return Mode.EVAL, Fact(Source.STORED, "single-output ONNX BatchNormalization without training_mode")


def _payload_size(init: TensorInfo) -> int | None:
    entry = DATA_TYPES.get(init.data_type)
    if entry is None or not entry[1]:
        return None
    numel = 1
    for d in init.dims:
        numel *= d
    return (numel * entry[1] + 7) // 8


def _inside(folder: Path, location: str) -> Path | None:
    """``folder/location`` if it stays inside ``folder`` (lexically and after symlinks)."""
    if (
        not location
        or "\x00" in location
        or os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", location)
    ):
        return None
    candidate = os.path.normpath(os.path.join(folder, location))
    if os.path.commonpath([candidate, str(folder)]) != str(folder):
        return None
    real = os.path.realpath(candidate)
    if os.path.commonpath([real, os.path.realpath(folder)]) != os.path.realpath(folder):
        return None
    return Path(candidate)


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
