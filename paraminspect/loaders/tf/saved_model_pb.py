"""``saved_model.pb`` and ``keras_metadata.pb`` read as data with the protobuf wire reader.

Only the fields the analyzer uses are decoded: the object graph (children, slot references,
user-object identifiers, variables), the signatures, the top-level call nodes, and, lazily, the
nodes of the functions a signature reaches. Field numbers follow TensorFlow's
``saved_model.proto``, ``meta_graph.proto``, ``saved_object_graph.proto``, ``graph.proto``,
``function.proto``, ``node_def.proto``, ``attr_value.proto`` and tf_keras'
``saved_metadata.proto``.
"""

from __future__ import annotations

from ...record import Record
from ..protobuf import LEN, WireError, varint
from .bundle import dtype_name, parse_shape
from .proto import fields, text

MAX_OBJECTS = 2_000_000
MAX_FUNCTIONS = 500_000
MAX_NODES_PER_FUNCTION = 5_000_000


class SavedVariable(Record):
    __slots__ = ("name", "dtype", "shape", "trainable")
    name: str
    dtype: str | None
    shape: tuple[int, ...] | None
    trainable: bool  #: the creation-time tf.Variable flag, never a freeze signal

    def __init__(
        self, name: str = "", dtype: str | None = None, shape: tuple[int, ...] | None = (),
        trainable: bool = False,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.trainable = trainable


class SavedObject(Record):
    __slots__ = ("kind", "identifier", "children", "slot_variables", "variable")
    kind: str  #: user_object | variable | function | bare_concrete_function | ...
    identifier: str  #: SavedUserObject.identifier (``_tf_keras_layer``, ...)
    children: list[tuple[int, str]]
    slot_variables: list[tuple[int, str, int]]
    variable: SavedVariable | None

    def __init__(
        self, kind: str = "", identifier: str = "", children: list[tuple[int, str]] | None = None,
        slot_variables: list[tuple[int, str, int]] | None = None,
        variable: SavedVariable | None = None,
    ) -> None:
        self.kind = kind
        self.identifier = identifier
        self.children = [] if children is None else children
        self.slot_variables = [] if slot_variables is None else slot_variables
        self.variable = variable


class OpNode(Record):
    """A NodeDef: name, op, inputs and the attributes the train-mode checks read."""

    __slots__ = ("name", "op", "inputs", "funcs", "bools")
    name: str
    op: str
    inputs: list[str]
    funcs: list[str]  #: functions named by attrs (f, then_branch)
    bools: dict[str, bool]

    def __init__(
        self, name: str, op: str, inputs: list[str] | None = None, funcs: list[str] | None = None,
        bools: dict[str, bool] | None = None,
    ) -> None:
        self.name = name
        self.op = op
        self.inputs = [] if inputs is None else inputs
        self.funcs = [] if funcs is None else funcs
        self.bools = {} if bools is None else bools


class MetaGraph(Record):
    __slots__ = ("tags", "tf_version", "objects", "signatures", "graph_nodes", "function_spans")
    tags: list[str]
    tf_version: str
    objects: list[SavedObject]
    signatures: dict[str, list[str]]  #: key -> output tensor names
    graph_nodes: list[OpNode]
    #: function name -> (start, end) of its FunctionDef, decoded on demand
    function_spans: dict[str, tuple[int, int]]

    def __init__(
        self, tags: list[str] | None = None, tf_version: str = "",
        objects: list[SavedObject] | None = None, signatures: dict[str, list[str]] | None = None,
        graph_nodes: list[OpNode] | None = None,
        function_spans: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.tags = [] if tags is None else tags
        self.tf_version = tf_version
        self.objects = [] if objects is None else objects
        self.signatures = {} if signatures is None else signatures
        self.graph_nodes = [] if graph_nodes is None else graph_nodes
        self.function_spans = {} if function_spans is None else function_spans


class KerasNode(Record):
    """One entry of ``keras_metadata.pb``."""

    __slots__ = ("node_id", "path", "identifier", "metadata")
    node_id: int
    path: str
    identifier: str
    metadata: str

    def __init__(
        self, node_id: int, path: str, identifier: str, metadata: str,
    ) -> None:
        self.node_id = node_id
        self.path = path
        self.identifier = identifier
        self.metadata = metadata


_OBJECT_KINDS = {4: "user_object", 5: "asset", 6: "function", 7: "variable",
                 8: "bare_concrete_function", 9: "constant", 10: "resource",
                 12: "captured_tensor"}


def parse_saved_model(buf: bytes | memoryview) -> MetaGraph:
    """The first meta graph of a SavedModel (the one ``serve`` uses; TF2 writes exactly one)."""
    for fn, fw, _fv, fs, fe in fields(buf):
        if fn == 2 and fw == LEN:
            return _meta_graph(buf, fs, fe)
    raise WireError("no meta graph in the SavedModel")


def _meta_graph(buf: bytes | memoryview, start: int, end: int) -> MetaGraph:
    meta = MetaGraph()
    graph_def: tuple[int, int] | None = None
    for fn, fw, _fv, fs, fe in fields(buf, start, end):
        if fw != LEN:
            continue
        if fn == 1:  # MetaInfoDef
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 4 and gw == LEN:
                    meta.tags.append(text(buf, gs, ge))
                elif gn == 5 and gw == LEN:
                    meta.tf_version = text(buf, gs, ge)
        elif fn == 2:  # GraphDef
            graph_def = (fs, fe)
        elif fn == 5:  # map<string, SignatureDef>
            key, outputs = "", []
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 1 and gw == LEN:
                    key = text(buf, gs, ge)
                elif gn == 2 and gw == LEN:
                    outputs = _signature_outputs(buf, gs, ge)
            meta.signatures[key] = outputs
        elif fn == 7:  # SavedObjectGraph
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 1 and gw == LEN:
                    meta.objects.append(_saved_object(buf, gs, ge))
                    if len(meta.objects) > MAX_OBJECTS:
                        raise WireError(f"more than {MAX_OBJECTS} saved objects")
    if graph_def is not None:  # after the signatures: they name the top-level nodes to read
        _graph_def(buf, graph_def, meta)
    return meta


def _signature_outputs(buf: bytes | memoryview, start: int, end: int) -> list[str]:
    out: list[str] = []
    for fn, fw, _fv, fs, fe in fields(buf, start, end):
        if fn == 2 and fw == LEN:  # outputs: map<string, TensorInfo>
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 2 and gw == LEN:
                    for hn, hw, _hv, hs, he in fields(buf, gs, ge):
                        if hn == 1 and hw == LEN:
                            out.append(text(buf, hs, he))
    return out


def _graph_def(buf: bytes | memoryview, span: tuple[int, int], meta: MetaGraph) -> None:
    wanted = {t.split(":", 1)[0] for outputs in meta.signatures.values() for t in outputs}
    for fn, fw, _fv, fs, fe in fields(buf, span[0], span[1]):
        if fn == 1 and fw == LEN:
            # only the nodes signatures name matter at the top level; NodeDef.name comes first
            tag = buf[fs] if fs < fe else 0
            if tag == 0x0A:
                length, pos = varint(buf, fs + 1, fe)
                if text(buf, pos, pos + length) not in wanted:
                    continue
            node = op_node(buf, fs, fe)
            if node.name in wanted and node.funcs:
                meta.graph_nodes.append(node)
        elif fn == 2 and fw == LEN:  # FunctionDefLibrary
            for hn, hw, _hv, hs, he in fields(buf, fs, fe):
                if hn == 1 and hw == LEN:
                    name = _function_name(buf, hs, he)
                    meta.function_spans[name] = (hs, he)
                    if len(meta.function_spans) > MAX_FUNCTIONS:
                        raise WireError(f"more than {MAX_FUNCTIONS} functions")


def _function_name(buf: bytes | memoryview, start: int, end: int) -> str:
    for fn, fw, _fv, fs, fe in fields(buf, start, end):
        if fn == 1 and fw == LEN:  # OpDef signature
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 1 and gw == LEN:
                    return text(buf, gs, ge)
    return ""


def function_nodes(buf: bytes | memoryview, span: tuple[int, int]) -> list[OpNode]:
    """The NodeDefs of one FunctionDef."""
    nodes: list[OpNode] = []
    for fn, fw, _fv, fs, fe in fields(buf, span[0], span[1]):
        if fn == 3 and fw == LEN:
            nodes.append(op_node(buf, fs, fe))
            if len(nodes) > MAX_NODES_PER_FUNCTION:
                raise WireError("a function with too many nodes")
    return nodes


def op_node(buf: bytes | memoryview, start: int, end: int) -> OpNode:
    node = OpNode(name="", op="")
    for fn, fw, _fv, fs, fe in fields(buf, start, end):
        if fw != LEN:
            continue
        if fn == 1:
            node.name = text(buf, fs, fe)
        elif fn == 2:
            node.op = text(buf, fs, fe)
        elif fn == 3:
            node.inputs.append(text(buf, fs, fe))
        elif fn == 5:  # map<string, AttrValue>
            key, value = "", None
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 1 and gw == LEN:
                    key = text(buf, gs, ge)
                elif gn == 2 and gw == LEN:
                    value = (gs, ge)
            if value is not None:
                _attr(buf, value, key, node)
    return node


def _attr(buf: bytes | memoryview, value: tuple[int, int], key: str, node: OpNode) -> None:
    for fn, fw, fv, fs, fe in fields(buf, value[0], value[1]):
        if fn == 5 and fw != LEN:
            node.bools[key] = bool(fv)
        elif fn == 10 and fw == LEN:  # NameAttrList func
            for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                if gn == 1 and gw == LEN:
                    node.funcs.append(text(buf, gs, ge))


def _saved_object(buf: bytes | memoryview, start: int, end: int) -> SavedObject:
    obj = SavedObject()
    for fn, fw, _fv, fs, fe in fields(buf, start, end):
        if fw != LEN:
            continue
        if fn == 1:
            obj.children.append(object_reference(buf, fs, fe))
        elif fn == 3:
            obj.slot_variables.append(slot_reference(buf, fs, fe))
        elif fn in _OBJECT_KINDS:
            obj.kind = _OBJECT_KINDS[fn]
            if fn == 4:
                for gn, gw, _gv, gs, ge in fields(buf, fs, fe):
                    if gn == 1 and gw == LEN:
                        obj.identifier = text(buf, gs, ge)
            elif fn == 7:
                obj.variable = _variable(buf, fs, fe)
    return obj


def slot_reference(buf: bytes | memoryview, start: int, end: int) -> tuple[int, str, int]:
    """``SlotVariableReference{original_variable_node_id=1, slot_name=2,
    slot_variable_node_id=3}``: which variable an optimizer slot belongs to."""
    original, name, slot = 0, "", 0
    for gn, gw, gv, gs, ge in fields(buf, start, end):
        if gn == 1 and gw != LEN:
            original = gv
        elif gn == 2 and gw == LEN:
            name = text(buf, gs, ge)
        elif gn == 3 and gw != LEN:
            slot = gv
    return int(original), name, int(slot)


def object_reference(buf: bytes | memoryview, start: int, end: int) -> tuple[int, str]:
    """``ObjectReference{node_id=1, local_name=2}``, the most frequent message of an object graph:
    decoded directly when laid out as TensorFlow writes it, else field by field."""
    if end - start >= 4 and buf[start] == 0x08:
        node_id, pos = varint(buf, start + 1, end)
        if pos < end and buf[pos] == 0x12:
            length, pos = varint(buf, pos + 1, end)
            if pos + length == end:
                return node_id, text(buf, pos, end)
    node_id, name = 0, ""
    for gn, gw, gv, gs, ge in fields(buf, start, end):
        if gn == 1 and gw != LEN:
            node_id = gv
        elif gn == 2 and gw == LEN:
            name = text(buf, gs, ge)
    return node_id, name


def _variable(buf: bytes | memoryview, start: int, end: int) -> SavedVariable:
    var = SavedVariable()
    for fn, fw, fv, fs, fe in fields(buf, start, end):
        if fn == 1 and fw != LEN:
            var.dtype = dtype_name(fv)
        elif fn == 2 and fw == LEN:
            var.shape = parse_shape(buf, fs, fe)
        elif fn == 3 and fw != LEN:
            var.trainable = bool(fv)
        elif fn == 6 and fw == LEN:
            var.name = text(buf, fs, fe)
    return var


def parse_keras_metadata(buf: bytes | memoryview) -> list[KerasNode]:
    """``SavedMetadata.nodes``: node id, path (``root.layer_with_weights-0``), identifier and
    the per-layer JSON metadata."""
    out: list[KerasNode] = []
    for fn, fw, _fv, fs, fe in fields(buf):
        if fn != 1 or fw != LEN:
            continue
        node = KerasNode(0, "", "", "")
        for gn, gw, gv, gs, ge in fields(buf, fs, fe):
            if gn == 2 and gw != LEN:
                node.node_id = gv
            elif gn == 3 and gw == LEN:
                node.path = text(buf, gs, ge)
            elif gn == 4 and gw == LEN:
                node.identifier = text(buf, gs, ge)
            elif gn == 5 and gw == LEN:
                node.metadata = text(buf, gs, ge)
        out.append(node)
        if len(out) > MAX_OBJECTS:
            raise WireError(f"more than {MAX_OBJECTS} metadata nodes")
    return out
