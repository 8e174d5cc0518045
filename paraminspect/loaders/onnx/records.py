"""What the ONNX wire walker keeps of a ``ModelProto``: plain records without tensor payloads.

:mod:`.wire` fills them; the loader (:mod:`.model`), the lowered-op finder and the diff readers
read them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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


@dataclass(slots=True)
class TensorInfo:
    """A TensorProto without its payload."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    data_location: int = 0  #: 0 DEFAULT, 1 EXTERNAL
    external_data: Mapping[str, str] = field(default_factory=dict)
    payload_bytes: int = 0  #: bytes of raw_data / typed data skipped
    small_raw: bytes | None = None  #: raw_data when at most SMALL_VALUE_BYTES
    small_ints: list[int] | None = None  #: int32_data / int64_data when tiny
    small_floats: list[float] | None = None  #: float_data / double_data when tiny
    raw_offset: int | None = None  #: file offset of raw_data, for readers of the values

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


@dataclass(slots=True)
class AttributeInfo:
    name: str = ""
    type: int = 0
    f: float | None = None
    i: int | None = None
    s: bytes | None = None
    t: TensorInfo | None = None
    floats: list[float] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    graphs: int = 0  #: subgraphs (If/Loop/Scan bodies) seen and skipped
    ref_attr_name: str | None = None

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


@dataclass(slots=True)
class NodeInfo:
    index: int
    name: str = ""
    op_type: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: Mapping[str, AttributeInfo] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GraphInfo:
    name: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    initializers: list[TensorInfo] = field(default_factory=list)
    sparse_initializers: int = 0
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    subgraphs: int = 0


@dataclass(slots=True)
class ModelInfo:
    ir_version: int | None = None
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int | None = None
    graph: GraphInfo | None = None
    opsets: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    training_infos: int = 0
    functions: list[str] = field(default_factory=list)
    skipped_bytes: int = 0  #: tensor payload bytes skipped without reading
