"""What the ONNX wire walker keeps of a ``ModelProto``: plain records without tensor payloads.

:mod:`.wire` fills them; the loader (:mod:`.model`), the lowered-op finder and the diff readers
read them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType

from ...record import Record

#: the attributes, metadata or external-data entries of a record that has none: one shared,
#: read-only mapping instead of an empty dict per node and per tensor
NO_ENTRIES: Mapping = MappingProxyType({})

#: ONNX TensorProto.DataType -> (name, item size in bits)
DATA_TYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 32), 2: ("uint8", 8), 3: ("int8", 8), 4: ("uint16", 16), 5: ("int16", 16),
    6: ("int32", 32), 7: ("int64", 64), 8: ("string", 0), 9: ("bool", 8), 10: ("float16", 16),
    11: ("float64", 64), 12: ("uint32", 32), 13: ("uint64", 64), 14: ("complex64", 64),
    15: ("complex128", 128), 16: ("bfloat16", 16), 17: ("float8_e4m3fn", 8),
    18: ("float8_e4m3fnuz", 8), 19: ("float8_e5m2", 8), 20: ("float8_e5m2fnuz", 8),
    21: ("uint4", 4), 22: ("int4", 4), 23: ("float4_e2m1", 4), 24: ("float8_e8m0", 8),
    25: ("uint2", 2), 26: ("int2", 2),
}


class TensorInfo(Record):
    """A TensorProto without its payload."""

    __slots__ = ("name", "dims", "data_type", "data_location", "external_data", "payload_bytes",
                 "small_raw", "small_ints", "small_floats", "raw_offset")
    name: str
    dims: list[int]
    data_type: int
    data_location: int  #: 0 DEFAULT, 1 EXTERNAL
    external_data: Mapping[str, str]
    payload_bytes: int  #: bytes of raw_data / typed data skipped
    small_raw: bytes | None  #: raw_data when at most SMALL_VALUE_BYTES
    small_ints: list[int] | None  #: int32_data / int64_data when tiny
    small_floats: list[float] | None  #: float_data / double_data when tiny
    raw_offset: int | None  #: file offset of raw_data, for readers of the values

    def __init__(
        self, name: str = "", dims: list[int] | None = None, data_type: int = 0,
        data_location: int = 0, external_data: Mapping[str, str] | None = None,
        payload_bytes: int = 0, small_raw: bytes | None = None,
        small_ints: list[int] | None = None, small_floats: list[float] | None = None,
        raw_offset: int | None = None,
    ) -> None:
        self.name = name
        self.dims = [] if dims is None else dims
        self.data_type = data_type
        self.data_location = data_location
        self.external_data = {} if external_data is None else external_data
        self.payload_bytes = payload_bytes
        self.small_raw = small_raw
        self.small_ints = small_ints
        self.small_floats = small_floats
        self.raw_offset = raw_offset

    @property
    def dtype(self) -> str | None:
        entry = DATA_TYPES.get(self.data_type)
        return entry[0] if entry else None

    def scalar(self) -> float | int | bool | None:
        """The value of a one-element tensor, when it was small enough to keep."""
        numel = 1
        for d in self.dims:
            numel *= d
        if numel != 1:
            return None
        if self.small_ints:
            return self.small_ints[0]
        if self.small_floats:
            return self.small_floats[0]
        raw = self.small_raw
        if raw is None:
            return None
        fmt = {1: "<f", 2: "<B", 3: "<b", 4: "<H", 5: "<h", 6: "<i", 7: "<q", 9: "<?",
               11: "<d", 12: "<I", 13: "<Q", 10: "<e"}.get(self.data_type)
        if fmt is None or len(raw) != struct.calcsize(fmt):
            return None
        return struct.unpack(fmt, raw)[0]


class AttributeInfo(Record):
    __slots__ = ("name", "type", "f", "i", "s", "t", "floats", "ints", "strings", "tensors",
                 "graphs", "ref_attr_name")
    name: str
    type: int
    f: float | None
    i: int | None
    s: bytes | None
    t: TensorInfo | None
    floats: list[float]
    ints: list[int]
    strings: list[bytes]
    tensors: list[TensorInfo]
    graphs: int  #: subgraphs (If/Loop/Scan bodies) seen and skipped
    ref_attr_name: str | None

    def __init__(
        self, name: str = "", type: int = 0, f: float | None = None, i: int | None = None,
        s: bytes | None = None, t: TensorInfo | None = None, floats: list[float] | None = None,
        ints: list[int] | None = None, strings: list[bytes] | None = None,
        tensors: list[TensorInfo] | None = None, graphs: int = 0,
        ref_attr_name: str | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.f = f
        self.i = i
        self.s = s
        self.t = t
        self.floats = [] if floats is None else floats
        self.ints = [] if ints is None else ints
        self.strings = [] if strings is None else strings
        self.tensors = [] if tensors is None else tensors
        self.graphs = graphs
        self.ref_attr_name = ref_attr_name

    def value(self) -> object:
        """A plain Python value for reports (tensors as their metadata)."""
        for single in (self.i, self.f):
            if single is not None:
                return single
        if self.s is not None:
            return self.s.decode("utf-8", "replace")
        if self.t is not None:
            return {"tensor": self.t.name, "dims": self.t.dims, "dtype": self.t.dtype}
        if self.ints:
            return list(self.ints)
        if self.floats:
            return list(self.floats)
        if self.strings:
            return [s.decode("utf-8", "replace") for s in self.strings]
        if self.graphs:
            return f"<{self.graphs} subgraph(s)>"
        return None


class NodeInfo(Record):
    __slots__ = ("index", "name", "op_type", "domain", "inputs", "outputs", "attributes",
                 "metadata")
    index: int
    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attributes: Mapping[str, AttributeInfo]
    metadata: Mapping[str, str]

    def __init__(
        self, index: int, name: str = "", op_type: str = "", domain: str = "",
        inputs: list[str] | None = None, outputs: list[str] | None = None,
        attributes: Mapping[str, AttributeInfo] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.op_type = op_type
        self.domain = domain
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs
        self.attributes = {} if attributes is None else attributes
        self.metadata = {} if metadata is None else metadata


class GraphInfo(Record):
    __slots__ = ("name", "nodes", "initializers", "sparse_initializers", "inputs", "outputs",
                 "subgraphs")
    name: str
    nodes: list[NodeInfo]
    initializers: list[TensorInfo]
    sparse_initializers: int
    inputs: list[str]
    outputs: list[str]
    subgraphs: int

    def __init__(
        self, name: str = "", nodes: list[NodeInfo] | None = None,
        initializers: list[TensorInfo] | None = None, sparse_initializers: int = 0,
        inputs: list[str] | None = None, outputs: list[str] | None = None, subgraphs: int = 0,
    ) -> None:
        self.name = name
        self.nodes = [] if nodes is None else nodes
        self.initializers = [] if initializers is None else initializers
        self.sparse_initializers = sparse_initializers
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs
        self.subgraphs = subgraphs


class ModelInfo(Record):
    __slots__ = ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                 "graph", "opsets", "metadata", "training_infos", "functions", "skipped_bytes")
    ir_version: int | None
    producer_name: str
    producer_version: str
    domain: str
    model_version: int | None
    graph: GraphInfo | None
    opsets: dict[str, int]
    metadata: dict[str, str]
    training_infos: int
    functions: list[str]
    skipped_bytes: int  #: tensor payload bytes skipped without reading

    def __init__(
        self, ir_version: int | None = None, producer_name: str = "", producer_version: str = "",
        domain: str = "", model_version: int | None = None, graph: GraphInfo | None = None,
        opsets: dict[str, int] | None = None, metadata: dict[str, str] | None = None,
        training_infos: int = 0, functions: list[str] | None = None, skipped_bytes: int = 0,
    ) -> None:
        self.ir_version = ir_version
        self.producer_name = producer_name
        self.producer_version = producer_version
        self.domain = domain
        self.model_version = model_version
        self.graph = graph
        self.opsets = {} if opsets is None else opsets
        self.metadata = {} if metadata is None else metadata
        self.training_infos = training_infos
        self.functions = [] if functions is None else functions
        self.skipped_bytes = skipped_bytes

