"""``saved_model.pb`` and ``keras_metadata.pb`` read as data with the protobuf wire reader.

Only the fields the analyzer uses are decoded: the object graph (children, slot references,
user-object identifiers, variables), the signatures, the top-level call nodes, and, lazily, the
nodes of the functions a signature reaches. Field numbers follow TensorFlow's
``saved_model.proto``, ``meta_graph.proto``, ``saved_object_graph.proto``, ``graph.proto``,
``function.proto``, ``node_def.proto``, ``attr_value.proto`` and tf_keras'
``saved_metadata.proto``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .bundle import dtype_name, parse_shape
from .proto import LEN, Field, ProtoError, fields, text

MAX_OBJECTS = 2_000_000
MAX_FUNCTIONS = 500_000
MAX_NODES_PER_FUNCTION = 5_000_000


@dataclass
class SavedVariable:
    name: str = ""
    dtype: str | None = None
    shape: tuple[int, ...] | None = ()
    trainable: bool = False  #: the creation-time tf.Variable flag, never a freeze signal


@dataclass
class SavedObject:
    kind: str = ""  #: user_object | variable | function | bare_concrete_function | ...
    identifier: str = ""  #: SavedUserObject.identifier (``_tf_keras_layer``, ...)
    children: list[tuple[int, str]] = field(default_factory=list)
    slot_variables: list[tuple[int, str, int]] = field(default_factory=list)
    variable: SavedVariable | None = None


@dataclass
class OpNode:
    """A NodeDef: name, op, inputs and the attributes the train-mode checks read."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    funcs: list[str] = field(default_factory=list)  #: functions named by attrs (f, then_branch)
    bools: dict[str, bool] = field(default_factory=dict)


@dataclass
class MetaGraph:
    tags: list[str] = field(default_factory=list)
    tf_version: str = ""
    objects: list[SavedObject] = field(default_factory=list)
    signatures: dict[str, list[str]] = field(default_factory=dict)  #: key -> output tensor names
    graph_nodes: list[OpNode] = field(default_factory=list)
    #: function name -> (start, end) of its FunctionDef, decoded on demand
    function_spans: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class KerasNode:
    """One entry of ``keras_metadata.pb``."""

    node_id: int
    path: str
    identifier: str
    metadata: str


_OBJECT_KINDS = {4: "user_object", 5: "asset", 6: "function", 7: "variable",
                 8: "bare_concrete_function", 9: "constant", 10: "resource",
                 12: "captured_tensor"}


def parse_saved_model(buf: bytes | memoryview) -> MetaGraph:
    """The first meta graph of a SavedModel (the one ``serve`` uses; TF2 writes exactly one)."""
    for f in fields(buf):
        if f.number == 2 and f.wire == LEN:
            return _meta_graph(buf, f)
    raise ProtoError("no meta graph in the SavedModel")


def _meta_graph(buf: bytes | memoryview, m: Field) -> MetaGraph:
    meta = MetaGraph()
    for f in fields(buf, m.start, m.end):
        if f.wire != LEN:
            continue
        if f.number == 1:  # MetaInfoDef
            for g in fields(buf, f.start, f.end):
                if g.number == 4 and g.wire == LEN:
                    meta.tags.append(text(buf, g))
                elif g.number == 5 and g.wire == LEN:
                    meta.tf_version = text(buf, g)
        elif f.number == 2:  # GraphDef
            _graph_def(buf, f, meta)
        elif f.number == 5:  # map<string, SignatureDef>
            key, outputs = "", []
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire == LEN:
                    key = text(buf, g)
                elif g.number == 2 and g.wire == LEN:
                    outputs = _signature_outputs(buf, g)
            meta.signatures[key] = outputs
        elif f.number == 7:  # SavedObjectGraph
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire == LEN:
                    meta.objects.append(_saved_object(buf, g))
                    if len(meta.objects) > MAX_OBJECTS:
                        raise ProtoError(f"more than {MAX_OBJECTS} saved objects")
    return meta


def _signature_outputs(buf: bytes | memoryview, s: Field) -> list[str]:
    out: list[str] = []
    for f in fields(buf, s.start, s.end):
        if f.number == 2 and f.wire == LEN:  # outputs: map<string, TensorInfo>
            for g in fields(buf, f.start, f.end):
                if g.number == 2 and g.wire == LEN:
                    for h in fields(buf, g.start, g.end):
                        if h.number == 1 and h.wire == LEN:
                            out.append(text(buf, h))
    return out


def _graph_def(buf: bytes | memoryview, g: Field, meta: MetaGraph) -> None:
    for f in fields(buf, g.start, g.end):
        if f.number == 1 and f.wire == LEN:
            node = op_node(buf, f)
            if node.funcs:  # only call nodes matter at the top level
                meta.graph_nodes.append(node)
        elif f.number == 2 and f.wire == LEN:  # FunctionDefLibrary
            for h in fields(buf, f.start, f.end):
                if h.number == 1 and h.wire == LEN:
                    name = _function_name(buf, h)
                    meta.function_spans[name] = (h.start, h.end)
                    if len(meta.function_spans) > MAX_FUNCTIONS:
                        raise ProtoError(f"more than {MAX_FUNCTIONS} functions")


def _function_name(buf: bytes | memoryview, fn: Field) -> str:
    for f in fields(buf, fn.start, fn.end):
        if f.number == 1 and f.wire == LEN:  # OpDef signature
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire == LEN:
                    return text(buf, g)
    return ""


def function_nodes(buf: bytes | memoryview, span: tuple[int, int]) -> list[OpNode]:
    """The NodeDefs of one FunctionDef."""
    nodes: list[OpNode] = []
    for f in fields(buf, span[0], span[1]):
        if f.number == 3 and f.wire == LEN:
            nodes.append(op_node(buf, f))
            if len(nodes) > MAX_NODES_PER_FUNCTION:
                raise ProtoError("a function with too many nodes")
    return nodes


def op_node(buf: bytes | memoryview, n: Field) -> OpNode:
    node = OpNode(name="", op="")
    for f in fields(buf, n.start, n.end):
        if f.wire != LEN:
            continue
        if f.number == 1:
            node.name = text(buf, f)
        elif f.number == 2:
            node.op = text(buf, f)
        elif f.number == 3:
            node.inputs.append(text(buf, f))
        elif f.number == 5:  # map<string, AttrValue>
            key, value = "", None
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire == LEN:
                    key = text(buf, g)
                elif g.number == 2 and g.wire == LEN:
                    value = g
            if value is not None:
                _attr(buf, value, key, node)
    return node


def _attr(buf: bytes | memoryview, value: Field, key: str, node: OpNode) -> None:
    for f in fields(buf, value.start, value.end):
        if f.number == 5 and f.wire != LEN:
            node.bools[key] = bool(f.value)
        elif f.number == 10 and f.wire == LEN:  # NameAttrList func
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire == LEN:
                    node.funcs.append(text(buf, g))


def _saved_object(buf: bytes | memoryview, o: Field) -> SavedObject:
    obj = SavedObject()
    for f in fields(buf, o.start, o.end):
        if f.wire != LEN:
            continue
        if f.number == 1:
            node_id, name = 0, ""
            for g in fields(buf, f.start, f.end):
                if g.number == 1 and g.wire != LEN:
                    node_id = g.value
                elif g.number == 2 and g.wire == LEN:
                    name = text(buf, g)
            obj.children.append((node_id, name))
        elif f.number == 3:
            ref = [0, "", 0]
            for g in fields(buf, f.start, f.end):
                if g.number in (1, 3) and g.wire != LEN:
                    ref[g.number - 1] = g.value
                elif g.number == 2 and g.wire == LEN:
                    ref[1] = text(buf, g)
            obj.slot_variables.append((int(ref[0]), str(ref[1]), int(ref[2])))
        elif f.number in _OBJECT_KINDS:
            obj.kind = _OBJECT_KINDS[f.number]
            if f.number == 4:
                for g in fields(buf, f.start, f.end):
                    if g.number == 1 and g.wire == LEN:
                        obj.identifier = text(buf, g)
            elif f.number == 7:
                obj.variable = _variable(buf, f)
    return obj


def _variable(buf: bytes | memoryview, v: Field) -> SavedVariable:
    var = SavedVariable()
    for f in fields(buf, v.start, v.end):
        if f.number == 1 and f.wire != LEN:
            var.dtype = dtype_name(f.value)
        elif f.number == 2 and f.wire == LEN:
            var.shape = parse_shape(buf, f.start, f.end)
        elif f.number == 3 and f.wire != LEN:
            var.trainable = bool(f.value)
        elif f.number == 6 and f.wire == LEN:
            var.name = text(buf, f)
    return var


def parse_keras_metadata(buf: bytes | memoryview) -> list[KerasNode]:
    """``SavedMetadata.nodes``: node id, path (``root.layer_with_weights-0``), identifier and
    the per-layer JSON metadata."""
    out: list[KerasNode] = []
    for f in fields(buf):
        if f.number != 1 or f.wire != LEN:
            continue
        node = KerasNode(0, "", "", "")
        for g in fields(buf, f.start, f.end):
            if g.number == 2 and g.wire != LEN:
                node.node_id = g.value
            elif g.number == 3 and g.wire == LEN:
                node.path = text(buf, g)
            elif g.number == 4 and g.wire == LEN:
                node.identifier = text(buf, g)
            elif g.number == 5 and g.wire == LEN:
                node.metadata = text(buf, g)
        out.append(node)
        if len(out) > MAX_OBJECTS:
            raise ProtoError(f"more than {MAX_OBJECTS} metadata nodes")
    return out
