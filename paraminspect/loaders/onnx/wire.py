"""A protobuf wire-format walker for ONNX ``ModelProto`` files, in pure Python.

It reads the metadata an analyzer needs (nodes, attributes, initializer names/dims/dtypes,
external-data records, opsets, producer, metadata_props) and *skips* bulk tensor payloads
(``raw_data`` and the typed ``*_data`` arrays) by their length varint, so a 1 GB model costs a
few hundred small reads instead of a 2 GB in-memory copy. Only scalar tensors of at most
:data:`SMALL_VALUE_BYTES` bytes keep their value (a Dropout ``training_mode`` constant).

Field numbers follow ``onnx/onnx.proto3`` (IR version 11); unknown fields are skipped, known
fields with the wrong wire type are corruption. Every read is bounds-checked against the
enclosing message, so a truncated or garbage file raises :class:`WireError` with one line.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

#: tensors whose payload is at most this many bytes keep it (scalars only; never weights)
SMALL_VALUE_BYTES = 16
_BLOCK = 64 * 1024

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

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


class WireError(Exception):
    """The bytes are not a well-formed ONNX protobuf message (one-line message)."""


@dataclass
class TensorInfo:
    """A TensorProto without its payload."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    data_location: int = 0  #: 0 DEFAULT, 1 EXTERNAL
    external_data: dict[str, str] = field(default_factory=dict)
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


@dataclass
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


@dataclass
class NodeInfo:
    index: int
    name: str = ""
    op_type: str = ""
    domain: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: dict[str, AttributeInfo] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphInfo:
    name: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    initializers: list[TensorInfo] = field(default_factory=list)
    sparse_initializers: int = 0
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    subgraphs: int = 0


@dataclass
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


#: node metadata_props keys kept (stack traces and the like are skipped)
NODE_METADATA_KEYS = frozenset({
    "namespace", "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy",
    "pkg.torch.onnx.fx_node",
})


class _Reader:
    """Sequential reads over a file through a small window; large skips are seeks."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.pos = 0
        self.buf = b""
        self.buf_start = 0
        self.skipped = 0
        #: window size: a remote stream asks for small reads (it pays per byte transferred)
        self.block = int(getattr(handle, "preferred_block", _BLOCK))

    def _window(self, n: int) -> tuple[bytes, int]:
        """The buffer and the offset of ``pos`` in it, with at least ``n`` bytes available."""
        offset = self.pos - self.buf_start
        if offset < 0 or offset + n > len(self.buf):
            self.handle.seek(self.pos)
            self.buf = self.handle.read(max(n, self.block))
            self.buf_start = self.pos
            offset = 0
            if len(self.buf) < n:
                raise WireError(f"unexpected end of file at byte {self.pos + len(self.buf)}")
        return self.buf, offset

    def varint(self) -> int:
        offset = self.pos - self.buf_start
        buf = self.buf
        if 0 <= offset < len(buf) and buf[offset] < 0x80:  # one-byte varint: most of them
            self.pos += 1
            return buf[offset]
        buf, offset = self._window(min(10, self.size - self.pos) or 1)
        value, end = _varint_at(buf, offset, self.pos)
        self.pos += end - offset
        return value

    def read(self, n: int) -> bytes:
        offset = self.pos - self.buf_start
        if offset >= 0 and offset + n <= len(self.buf):
            self.pos += n
            return self.buf[offset : offset + n]
        buf, offset = self._window(n)
        self.pos += n
        return buf[offset : offset + n]

    def skip(self, n: int, payload: bool = False) -> None:
        if self.pos + n > self.size:
            raise WireError(f"a field at byte {self.pos} runs past the end of the file")
        self.pos += n
        if payload:
            self.skipped += n


def _varint_at(buf: bytes, offset: int, where: int) -> tuple[int, int]:
    """The varint at ``buf[offset]`` and the offset after it (``where``: file position, for errors)."""
    result = shift = 0
    for i in range(10):
        if offset + i >= len(buf):
            raise WireError(f"unexpected end of file in a varint at byte {where}")
        byte = buf[offset + i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset + i + 1
        shift += 7
    raise WireError(f"malformed varint at byte {where}")


#: a field's key, length varint and fixed64 payload fit in this many bytes
_FIELD_HEAD = 21


def _fields(r: _Reader, end: int) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield ``(field_number, wire_type, value, fixed)`` up to ``end``.

    ``value`` is the integer of a VARINT field or the length of a LEN field (the reader is left
    at its first byte: the caller must consume or skip exactly that many); ``fixed`` holds the
    bytes of a FIXED32/FIXED64 field.

    The hot loop of the walker (millions of fields at 100,000 tensors): it decodes straight from
    the reader's window, one-byte varints inline, and refills the window only when a field's head
    may cross its end.
    """
    while r.pos < end:
        start = r.pos
        buf = r.buf
        offset = start - r.buf_start
        if offset < 0 or offset + _FIELD_HEAD > len(buf):
            buf, offset = r._window(min(_FIELD_HEAD, end - start))
        key = buf[offset]
        if key < 0x80:
            offset += 1
        else:
            key, offset = _varint_at(buf, offset, start)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"invalid field number 0 at byte {start}")
        value, fixed = 0, b""
        if wire in (VARINT, LEN):
            if offset >= len(buf):
                raise WireError(f"unexpected end of file in a varint at byte {start}")
            value = buf[offset]
            if value < 0x80:
                offset += 1
            else:
                value, offset = _varint_at(buf, offset, start)
            if wire == LEN and r.buf_start + offset + value > end:
                raise WireError(
                    f"field {number} at byte {start} claims {value} bytes, more than its message "
                    "holds (truncated or corrupt file)"
                )
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            fixed = buf[offset : offset + width]
            if len(fixed) != width:
                raise WireError(f"unexpected end of file at byte {r.buf_start + offset}")
            offset += width
        else:
            raise WireError(f"unsupported wire type {wire} at byte {start} (not protobuf)")
        r.pos = r.buf_start + offset
        yield number, wire, value, fixed
        if wire == LEN and r.pos == start:  # defensive: never loop on a zero-progress field
            raise WireError(f"no progress at byte {start}")
    if r.pos != end:
        raise WireError(f"a field overruns its message at byte {r.pos}")


def _expect(number: int, wire: int, wanted: int, what: str) -> None:
    if wire != wanted:
        raise WireError(f"{what} (field {number}) has wire type {wire}, expected {wanted}")


def _text(r: _Reader, n: int) -> str:
    return r.read(n).decode("utf-8", "replace")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(r: _Reader, n: int) -> list[int]:
    end = r.pos + n
    out = []
    while r.pos < end:
        out.append(_signed(r.varint()))
    if r.pos != end:
        raise WireError(f"packed integers overrun at byte {r.pos}")
    return out


def _string_entry(r: _Reader, end: int) -> tuple[str, str]:
    key = value = ""
    for number, wire, v, _fixed in _fields(r, end):
        if number in (1, 2) and wire == LEN:
            text = _text(r, v)
            key, value = (text, value) if number == 1 else (key, text)
        elif wire == LEN:
            r.skip(v)
    return key, value


def _tensor(r: _Reader, end: int) -> TensorInfo:
    t = TensorInfo()
    for number, wire, v, fixed in _fields(r, end):
        if number == 1:  # dims
            if wire == LEN:
                t.dims.extend(_packed_varints(r, v))
            else:
                _expect(number, wire, VARINT, "TensorProto.dims")
                t.dims.append(_signed(v))
        elif number == 2:
            _expect(number, wire, VARINT, "TensorProto.data_type")
            t.data_type = v
        elif number == 8:
            _expect(number, wire, LEN, "TensorProto.name")
            t.name = _text(r, v)
        elif number == 9:  # raw_data: keep scalars only, skip the rest unread
            _expect(number, wire, LEN, "TensorProto.raw_data")
            t.payload_bytes += v
            t.raw_offset = r.pos
            if v <= SMALL_VALUE_BYTES:
                t.small_raw = r.read(v)
            else:
                r.skip(v, payload=True)
        elif number == 13:
            _expect(number, wire, LEN, "TensorProto.external_data")
            key, value = _string_entry(r, r.pos + v)
            t.external_data[key] = value
        elif number == 14:
            _expect(number, wire, VARINT, "TensorProto.data_location")
            t.data_location = v
        elif number in (5, 7, 11) and wire == LEN:  # int32/int64/uint64 data, packed
            t.payload_bytes += v
            if v <= SMALL_VALUE_BYTES:
                t.small_ints = _packed_varints(r, v)
            else:
                r.skip(v, payload=True)
        elif number in (5, 7, 11) and wire == VARINT:
            t.small_ints = [*(t.small_ints or []), _signed(v)]
        elif number in (4, 10) and wire == LEN:  # float/double data, packed
            t.payload_bytes += v
            if v <= SMALL_VALUE_BYTES:
                raw = r.read(v)
                fmt = "f" if number == 4 else "d"
                count = len(raw) // struct.calcsize(fmt)
                t.small_floats = list(struct.unpack(f"<{count}{fmt}", raw[: count * struct.calcsize(fmt)]))
            else:
                r.skip(v, payload=True)
        elif number == 4 and wire == FIXED32:
            t.small_floats = [*(t.small_floats or []), struct.unpack("<f", fixed)[0]]
        elif number == 10 and wire == FIXED64:
            t.small_floats = [*(t.small_floats or []), struct.unpack("<d", fixed)[0]]
        elif wire == LEN:  # segment, string_data, doc_string, metadata_props, ...
            r.skip(v, payload=number == 6)
    return t


def _attribute(r: _Reader, end: int) -> AttributeInfo:
    a = AttributeInfo()
    for number, wire, v, fixed in _fields(r, end):
        if number == 1 and wire == LEN:
            a.name = _text(r, v)
        elif number == 20 and wire == VARINT:
            a.type = v
        elif number == 2 and wire == FIXED32:
            a.f = struct.unpack("<f", fixed)[0]
        elif number == 3 and wire == VARINT:
            a.i = _signed(v)
        elif number == 4 and wire == LEN:
            if v > 4096:
                r.skip(v, payload=True)
                a.s = f"<{v} bytes>".encode()
            else:
                a.s = r.read(v)
        elif number == 5 and wire == LEN:
            a.t = _tensor(r, r.pos + v)
        elif number == 7:
            if wire == LEN:
                raw = r.read(v)
                a.floats.extend(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
            elif wire == FIXED32:
                a.floats.append(struct.unpack("<f", fixed)[0])
        elif number == 8:
            if wire == LEN:
                a.ints.extend(_packed_varints(r, v))
            elif wire == VARINT:
                a.ints.append(_signed(v))
        elif number == 9 and wire == LEN:
            if v > 4096:
                r.skip(v, payload=True)
                a.strings.append(f"<{v} bytes>".encode())
            else:
                a.strings.append(r.read(v))
        elif number == 10 and wire == LEN:
            a.tensors.append(_tensor(r, r.pos + v))
        elif number in (6, 11) and wire == LEN:  # subgraphs: counted, not walked
            a.graphs += 1
            r.skip(v, payload=True)
        elif number == 21 and wire == LEN:
            a.ref_attr_name = _text(r, v)
        elif wire == LEN:
            r.skip(v)
    return a


def _node(r: _Reader, end: int, index: int) -> NodeInfo:
    n = NodeInfo(index=index)
    for number, wire, v, _fixed in _fields(r, end):
        if wire != LEN:
            continue
        if number == 1:
            n.inputs.append(_text(r, v))
        elif number == 2:
            n.outputs.append(_text(r, v))
        elif number == 3:
            n.name = _text(r, v)
        elif number == 4:
            n.op_type = _text(r, v)
        elif number == 5:
            attr = _attribute(r, r.pos + v)
            n.attributes[attr.name] = attr
        elif number == 7:
            n.domain = _text(r, v)
        elif number == 9:
            entry_end = r.pos + v
            key, value = _string_entry(r, entry_end)
            if key in NODE_METADATA_KEYS:
                n.metadata[key] = value
        else:
            r.skip(v)
    return n


def _name_field(r: _Reader, end: int) -> str:
    """Field 1 (``name``) of a ValueInfoProto or FunctionProto."""
    name = ""
    for number, wire, v, _fixed in _fields(r, end):
        if wire == LEN:
            if number == 1:
                name = _text(r, v)
            else:
                r.skip(v)
    return name


def _graph(r: _Reader, end: int) -> GraphInfo:
    g = GraphInfo()
    for number, wire, v, _fixed in _fields(r, end):
        if wire != LEN:
            continue
        field_end = r.pos + v
        if number == 1:
            g.nodes.append(_node(r, field_end, len(g.nodes)))
        elif number == 2:
            g.name = _text(r, v)
        elif number == 5:
            g.initializers.append(_tensor(r, field_end))
        elif number == 15:
            g.sparse_initializers += 1
            r.skip(v, payload=True)
        elif number == 11:
            g.inputs.append(_name_field(r, field_end))
        elif number == 12:
            g.outputs.append(_name_field(r, field_end))
        else:  # doc_string, value_info, quantization_annotation, metadata_props
            r.skip(v)
    g.subgraphs = sum(a.graphs for n in g.nodes for a in n.attributes.values())
    return g


def _opset(r: _Reader, end: int) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, v, _fixed in _fields(r, end):
        if number == 1 and wire == LEN:
            domain = _text(r, v)
        elif number == 2 and wire == VARINT:
            version = v
        elif wire == LEN:
            r.skip(v)
    return domain, version


def read_model(handle: BinaryIO, size: int) -> ModelInfo:
    """Walk a serialized ``ModelProto``. Raises :class:`WireError` for malformed bytes."""
    r = _Reader(handle, size)
    m = ModelInfo()
    for number, wire, v, _fixed in _fields(r, size):
        if number == 1:
            _expect(number, wire, VARINT, "ModelProto.ir_version")
            m.ir_version = v
        elif number == 5 and wire == VARINT:
            m.model_version = v
        elif wire != LEN:
            if number in (2, 3, 4, 7, 8, 14):
                raise WireError(f"ModelProto field {number} has wire type {wire} (not ONNX)")
            continue
        elif number == 2:
            m.producer_name = _text(r, v)
        elif number == 3:
            m.producer_version = _text(r, v)
        elif number == 4:
            m.domain = _text(r, v)
        elif number == 7:
            if m.graph is not None:
                raise WireError("ModelProto holds more than one graph")
            m.graph = _graph(r, r.pos + v)
        elif number == 8:
            domain, version = _opset(r, r.pos + v)
            m.opsets[domain] = version
        elif number == 14:
            key, value = _string_entry(r, r.pos + v)
            m.metadata[key] = value
        elif number == 20:
            m.training_infos += 1
            r.skip(v, payload=True)
        elif number == 25:
            m.functions.append(_name_field(r, r.pos + v))
        else:
            r.skip(v)
    m.skipped_bytes = r.skipped
    return m
