"""What an ONNX graph's ops say about their layers: the layer kind an op implies, and the
train/eval mode that BatchNormalization, Dropout and training ops lowered into plain ops record."""

from __future__ import annotations

from ...graph import Fact, Layer, LayerKind, Mode, ModelGraph, Source
from ...kinds import classify
from .lowered import find_lowered
from .records import GraphInfo, NodeInfo, TensorInfo

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
#: graph.metadata key: training-mode layers lowered into plain ops (read by train-mode rules)
TRAIN_MODE_OPS = "train_mode_ops"
#: ops whose node decides its layer's train/eval mode
MODE_OPS = frozenset({"BatchNormalization", "Dropout"})


class OpSteps:
    """The graph builder's steps that read layer kinds and train/eval modes from the ops (its
    state is set up by ``model._Builder``)."""

    graph: ModelGraph
    g: GraphInfo
    node_layer: list[str]
    node_layers: set[str]
    mode_nodes: dict[str, list[NodeInfo]]
    initializers: dict[str, TensorInfo]
    constants: dict[str, TensorInfo | int | float]
    opset: int
    op_facts: dict[str, Fact]

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

    def _lowered_train_mode(self) -> None:
        """Dropout and batch statistics that the exporter lowered into plain ops."""
        found = find_lowered(self.g.nodes, self.initializers, dict(self.constants))
        records = []
        for item in found:
            location = item.scope or self.node_layer[item.node]
            records.append({"location": location, "kind": item.kind, "evidence": item.evidence})
        if records:
            self.graph.metadata[TRAIN_MODE_OPS] = records


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
