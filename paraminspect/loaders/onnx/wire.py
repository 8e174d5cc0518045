"""A protobuf wire-format walker for ONNX ``ModelProto`` files, in pure Python.

It reads the metadata an analyzer needs (nodes, attributes, initializer names/dims/dtypes,
external-data records, opsets, producer, metadata_props) and *skips* bulk tensor payloads
(``raw_data`` and the typed ``*_data`` arrays) by their length varint, so a 1 GB model touches a
few hundred small ranges instead of making a 2 GB in-memory copy. Only scalar tensors of at most
:data:`SMALL_VALUE_BYTES` bytes keep their value (a Dropout ``training_mode`` constant).

The walker indexes a byte buffer (:mod:`.buffer`): a read-only memory map of a local file, whose
skipped payloads are never paged in, or a read window over a remote stream.

Field numbers follow ``onnx/onnx.proto3`` (IR version 11); unknown fields are skipped, known
fields with the wrong wire type are corruption. Every read is bounds-checked against the
enclosing message, so a truncated or garbage file raises :class:`WireError` with one line.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from ..protobuf import FIXED32, FIXED64, LEN, VARINT, WireError, packed_varints, signed, varint
from .buffer import RELEASE_STEP, Buffer, byte_buffer, fields, head, overclaim, overrun, release
from .records import NO_ENTRIES, AttributeInfo, GraphInfo, ModelInfo, NodeInfo, TensorInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

#: tensors whose payload is at most this many bytes keep it (scalars only; never weights)
SMALL_VALUE_BYTES = 16
#: node metadata_props keys kept (stack traces and the like are skipped)
NODE_METADATA_KEYS = frozenset({
    "namespace", "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy",
    "pkg.torch.onnx.fx_node",
})
#: longest attribute string (``s``, ``strings``) kept; longer ones are skipped and described
MAX_ATTRIBUTE_STRING = 4096


def read_model(handle: BinaryIO, size: int) -> ModelInfo:
    """Walk a serialized ``ModelProto``. Raises :class:`WireError` for malformed bytes."""
    with byte_buffer(handle, size) as buf:
        return _Walker(buf).model(size)


class _Walker:
    """One walk over the bytes of a ``ModelProto``; counts the payload bytes it skips unread.

    Nodes and tensors are the hot messages (100,000s of each in a large model): their loops
    decode the common field head (a one-byte key and a one-byte length or value) inline and hand
    anything else to :func:`.buffer.head`, which also produces every error. The other messages
    are few and read through :func:`.buffer.fields`. Value names and op types are decoded once
    per distinct byte string (a name is written by its producer, its readers and its
    initializer), so repeats share one ``str``.
    """

    def __init__(self, buf: Buffer) -> None:
        self.buf = buf
        self.skipped = 0
        self.strings: dict[bytes, str] = {}  #: decoded names and op types by their bytes
        self.attribute_graphs = 0  #: subgraphs met in node attributes (kept or not)
        self.release_at = RELEASE_STEP  #: the position past which the pages behind are unmapped

    def text(self, pos: int, n: int) -> str:
        return self.buf[pos : pos + n].decode("utf-8", "replace")  # type: ignore[union-attr]

    def skip(self, n: int) -> None:
        self.skipped += n

    # -- ModelProto -------------------------------------------------------------------------
    def model(self, size: int) -> ModelInfo:
        m = ModelInfo()
        for number, wire, v, at in fields(self.buf, 0, size):
            if number == 1:
                _expect(number, wire, VARINT, "ModelProto.ir_version")
                m.ir_version = v  # type: ignore[assignment]
            elif number == 5 and wire == VARINT:
                m.model_version = v  # type: ignore[assignment]
            elif wire != LEN:
                if number in (2, 3, 4, 7, 8, 14):
                    raise WireError(f"ModelProto field {number} has wire type {wire} (not ONNX)")
            elif number == 2:
                m.producer_name = self.text(at, v)  # type: ignore[arg-type]
            elif number == 3:
                m.producer_version = self.text(at, v)  # type: ignore[arg-type]
            elif number == 4:
                m.domain = self.text(at, v)  # type: ignore[arg-type]
            elif number == 7:
                if m.graph is not None:
                    raise WireError("ModelProto holds more than one graph")
                m.graph = self.graph(at, at + v)  # type: ignore[operator]
            elif number == 8:
                domain, version = self.opset(at, at + v)  # type: ignore[operator]
                m.opsets[domain] = version
            elif number == 14:
                key, value = self.string_entry(at, at + v)  # type: ignore[operator]
                m.metadata[key] = value
            elif number == 20:
                m.training_infos += 1
                self.skip(v)  # type: ignore[arg-type]
            elif number == 25:
                m.functions.append(self.name_field(at, at + v))  # type: ignore[operator]
        m.skipped_bytes = self.skipped
        return m

    def opset(self, pos: int, end: int) -> tuple[str, int]:
        domain, version = "", 0
        for number, wire, v, at in fields(self.buf, pos, end):
            if number == 1 and wire == LEN:
                domain = self.text(at, v)  # type: ignore[arg-type]
            elif number == 2 and wire == VARINT:
                version = v  # type: ignore[assignment]
        return domain, version

    def string_entry(self, pos: int, end: int) -> tuple[str, str]:
        """A ``StringStringEntryProto``: (key, value)."""
        key = value = ""
        for number, wire, v, at in fields(self.buf, pos, end):
            if number == 1 and wire == LEN:
                key = self.text(at, v)  # type: ignore[arg-type]
            elif number == 2 and wire == LEN:
                value = self.text(at, v)  # type: ignore[arg-type]
        return key, value

    def name_field(self, pos: int, end: int) -> str:
        """Field 1 (``name``) of a ValueInfoProto or FunctionProto."""
        name = ""
        for number, wire, v, at in fields(self.buf, pos, end):
            if number == 1 and wire == LEN:
                name = self.text(at, v)  # type: ignore[arg-type]
        return name

    # -- GraphProto and NodeProto -----------------------------------------------------------
    def graph(self, pos: int, end: int) -> GraphInfo:
        buf = self.buf
        g = GraphInfo()
        nodes, initializers, node, tensor = g.nodes, g.initializers, self.node, self.tensor
        while pos < end:
            start = pos
            key = buf[pos]
            if key & 0x87 == LEN and key > 7 and pos + 1 < end:  # one-byte key, LEN
                n = buf[pos + 1]
                if n < 0x80:
                    pos += 2
                else:
                    n, pos = varint(buf, pos + 1, end, start)
                number = key >> 3
                if pos + n > end:
                    raise overclaim(number, start, n)
            else:
                number, wire, n, pos = head(buf, pos, end)  # type: ignore[assignment]
                if wire != LEN:
                    continue
            stop = pos + n
            if number == 1:
                nodes.append(node(pos, stop, len(nodes)))
            elif number == 5:
                initializers.append(tensor(pos, stop))
            elif number == 2:
                g.name = self.text(pos, n)
            elif number == 15:
                g.sparse_initializers += 1
                self.skip(n)
            elif number == 11:
                g.inputs.append(self.name_field(pos, stop))
            elif number == 12:
                g.outputs.append(self.name_field(pos, stop))
            pos = stop  # doc_string, value_info, quantization_annotation, metadata_props: skipped
            if pos >= self.release_at:  # initializers and Constant nodes hold the payloads
                release(buf, pos)
                self.release_at = pos + RELEASE_STEP
        if pos != end:
            raise overrun(pos)
        if self.attribute_graphs:  # else no attribute held one: skip the pass over the nodes
            g.subgraphs = sum(a.graphs for n in g.nodes for a in n.attributes.values())
        return g

    def node(self, pos: int, end: int, index: int) -> NodeInfo:
        buf, strings = self.buf, self.strings
        known = strings.get
        inputs: list[str] = []
        outputs: list[str] = []
        name = op_type = domain = ""
        attributes: Mapping[str, AttributeInfo] = NO_ENTRIES
        metadata: Mapping[str, str] = NO_ENTRIES
        while pos < end:
            key = buf[pos]
            if key & 0x87 == LEN and key > 7 and pos + 1 < end and (n := buf[pos + 1]) < 0x80:
                stop = pos + 2 + n  # one-byte key of a LEN field, one-byte length
                if stop > end:
                    raise overclaim(key >> 3, pos, n)
                pos += 2
            else:
                number, wire, n, pos = head(buf, pos, end)  # type: ignore[assignment]
                if wire != LEN:
                    continue
                stop = pos + n
                key = number << 3 | LEN  # the one-byte key of fields 1-15; >= 0x80 past them
            # dispatched on the key byte: 0x0A input, 0x12 output, 0x1A name, 0x22 op_type,
            # 0x2A attribute, 0x3A domain, 0x4A metadata_props
            if key == 0x0A:
                raw = buf[pos:stop]
                text = known(raw)
                if text is None:
                    text = strings[raw] = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
                inputs.append(text)
            elif key == 0x12:
                raw = buf[pos:stop]
                text = known(raw)
                if text is None:
                    text = strings[raw] = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
                outputs.append(text)
            elif key == 0x1A:
                name = buf[pos:stop].decode("utf-8", "replace")  # type: ignore[union-attr]
            elif key == 0x22 or key == 0x3A:
                raw = buf[pos:stop]
                text = known(raw)
                if text is None:
                    text = strings[raw] = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
                if key == 0x22:
                    op_type = text
                else:
                    domain = text
            elif key == 0x2A:
                attr = self.attribute(pos, stop)
                if attributes is NO_ENTRIES:
                    attributes = {}
                attributes[attr.name] = attr  # type: ignore[index]
            elif key == 0x4A:
                entry, value = self.string_entry(pos, stop)
                if entry in NODE_METADATA_KEYS:
                    if metadata is NO_ENTRIES:
                        metadata = {}
                    metadata[entry] = value  # type: ignore[index]
            pos = stop
        if pos != end:
            raise overrun(pos)
        return NodeInfo(index, name, op_type, domain, inputs, outputs, attributes, metadata)

    def attribute(self, pos: int, end: int) -> AttributeInfo:
        buf = self.buf
        a = AttributeInfo()
        for number, wire, v, at in fields(buf, pos, end):
            if wire == LEN:
                stop = at + v  # type: ignore[operator]
                if number == 1:
                    a.name = self.text(at, v)  # type: ignore[arg-type]
                elif number == 4:
                    a.s = self.long_string(at, v)  # type: ignore[arg-type]
                elif number == 5:
                    a.t = self.tensor(at, stop)
                elif number == 7:
                    raw = buf[at:stop]
                    a.floats.extend(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
                elif number == 8:
                    a.ints.extend(map(signed, packed_varints(buf, at, stop)))
                elif number == 9:
                    a.strings.append(self.long_string(at, v))  # type: ignore[arg-type]
                elif number == 10:
                    a.tensors.append(self.tensor(at, stop))
                elif number in (6, 11):  # subgraphs: counted, not walked
                    a.graphs += 1
                    self.attribute_graphs += 1
                    self.skip(v)  # type: ignore[arg-type]
                elif number == 21:
                    a.ref_attr_name = self.text(at, v)  # type: ignore[arg-type]
            elif number == 20 and wire == VARINT:
                a.type = v  # type: ignore[assignment]
            elif number == 2 and wire == FIXED32:
                a.f = struct.unpack("<f", v)[0]  # type: ignore[arg-type]
            elif number == 3 and wire == VARINT:
                a.i = signed(v)  # type: ignore[arg-type]
            elif number == 7 and wire == FIXED32:
                a.floats.append(struct.unpack("<f", v)[0])  # type: ignore[arg-type]
            elif number == 8 and wire == VARINT:
                a.ints.append(signed(v))  # type: ignore[arg-type]
        return a

    def long_string(self, pos: int, n: int) -> bytes:
        """An attribute string, or a description of it when it is too long to keep."""
        if n > MAX_ATTRIBUTE_STRING:
            self.skip(n)
            return f"<{n} bytes>".encode()
        return self.buf[pos : pos + n]  # type: ignore[return-value]

    # -- TensorProto ------------------------------------------------------------------------
    def tensor(self, pos: int, end: int) -> TensorInfo:
        buf, strings = self.buf, self.strings
        t = TensorInfo("", [], 0, 0, NO_ENTRIES)
        while pos < end:
            key = buf[pos]
            if key & 0x85 == 0 and key > 7 and pos + 1 < end and (v := buf[pos + 1]) < 0x80:
                # one-byte key and value or length, VARINT or LEN; the usual fields of a
                # weight inline: 0x08 dims, 0x10 data_type, 0x42 name, 0x4A raw_data
                if key & LEN:
                    stop = pos + 2 + v
                    if stop > end:
                        raise overclaim(key >> 3, pos, v)
                    pos += 2
                    if key == 0x42:
                        raw = buf[pos:stop]
                        name = strings.get(raw)
                        if name is None:
                            name = strings[raw] = raw.decode("utf-8", "replace")  # type: ignore[union-attr]
                        t.name = name
                        pos = stop
                        continue
                    if key == 0x4A and v <= SMALL_VALUE_BYTES:
                        t.payload_bytes += v
                        t.raw_offset = pos
                        t.small_raw = buf[pos:stop]  # type: ignore[assignment]
                        pos = stop
                        continue
                elif key == 0x08:
                    t.dims.append(v)
                    pos += 2
                    continue
                elif key == 0x10:
                    t.data_type = v
                    pos += 2
                    continue
                else:
                    pos += 2
                number, wire = key >> 3, key & 7
            else:
                number, wire, v, pos = head(buf, pos, end)  # type: ignore[assignment]
            pos = self.tensor_field(t, number, wire, v, pos)  # type: ignore[arg-type]
        if pos != end:
            raise overrun(pos)
        return t

    def tensor_field(self, t: TensorInfo, number: int, wire: int, v: int | bytes, pos: int) -> int:
        """Any field of a TensorProto (the loop in :meth:`tensor` does the usual ones inline):
        ``v`` and ``pos`` as :func:`.buffer.head` returns them; returns the position after it."""
        buf = self.buf
        if wire == LEN:
            stop = pos + v  # type: ignore[operator]
            if number == 8:
                raw = buf[pos:stop]
                name = self.strings.get(raw)  # type: ignore[arg-type]
                if name is None:
                    name = self.strings[raw] = raw.decode("utf-8", "replace")  # type: ignore[union-attr,index]
                t.name = name
            elif number == 1:  # dims, packed
                t.dims.extend(map(signed, packed_varints(buf, pos, stop)))
            elif number == 9:  # raw_data: keep scalars only, skip the rest unread
                t.payload_bytes += v  # type: ignore[operator]
                t.raw_offset = pos
                if v <= SMALL_VALUE_BYTES:  # type: ignore[operator]
                    t.small_raw = buf[pos:stop]  # type: ignore[assignment]
                else:
                    self.skipped += v  # type: ignore[operator]
            else:
                self.tensor_bytes(t, number, pos, v)  # type: ignore[arg-type]
            return stop
        if number == 1:
            _expect(number, wire, VARINT, "TensorProto.dims")
            t.dims.append(signed(v))  # type: ignore[arg-type]
        elif number == 2:
            _expect(number, wire, VARINT, "TensorProto.data_type")
            t.data_type = v  # type: ignore[assignment]
        elif number == 14:
            _expect(number, wire, VARINT, "TensorProto.data_location")
            t.data_location = v  # type: ignore[assignment]
        elif number in (8, 9, 13):
            _expect(number, wire, LEN, _TENSOR_LEN_FIELDS[number])
        elif number in (5, 7, 11) and wire == VARINT:
            t.small_ints = [*(t.small_ints or []), signed(v)]  # type: ignore[arg-type]
        elif number == 4 and wire == FIXED32:
            t.small_floats = [*(t.small_floats or []), struct.unpack("<f", v)[0]]  # type: ignore[arg-type]
        elif number == 10 and wire == FIXED64:
            t.small_floats = [*(t.small_floats or []), struct.unpack("<d", v)[0]]  # type: ignore[arg-type]
        return pos

    def tensor_bytes(self, t: TensorInfo, number: int, pos: int, n: int) -> None:
        """A LEN field of a TensorProto other than the name, dims and raw_data: metadata is
        read, payloads are kept only when tiny."""
        buf = self.buf
        if number == 13:
            key, value = self.string_entry(pos, pos + n)
            if t.external_data is NO_ENTRIES:
                t.external_data = {}
            t.external_data[key] = value  # type: ignore[index]
        elif number in (5, 7, 11):  # int32/int64/uint64 data, packed
            t.payload_bytes += n
            if n <= SMALL_VALUE_BYTES:
                t.small_ints = list(map(signed, packed_varints(buf, pos, pos + n)))
            else:
                self.skip(n)
        elif number in (4, 10):  # float/double data, packed
            t.payload_bytes += n
            if n <= SMALL_VALUE_BYTES:
                raw = buf[pos : pos + n]
                fmt = "f" if number == 4 else "d"
                count = len(raw) // struct.calcsize(fmt)
                t.small_floats = list(
                    struct.unpack(f"<{count}{fmt}", raw[: count * struct.calcsize(fmt)])  # type: ignore[index]
                )
            else:
                self.skip(n)
        elif number in (2, 14):
            _expect(number, LEN, VARINT, _TENSOR_VARINT_FIELDS[number])
        elif number == 6:  # string_data
            self.skip(n)
        # segment, doc_string, metadata_props, ...: skipped


#: TensorProto fields whose wire type is checked: their names, for the error
_TENSOR_LEN_FIELDS = {8: "TensorProto.name", 9: "TensorProto.raw_data", 13: "TensorProto.external_data"}
_TENSOR_VARINT_FIELDS = {2: "TensorProto.data_type", 14: "TensorProto.data_location"}


def _expect(number: int, wire: int, wanted: int, what: str) -> None:
    if wire != wanted:
        raise WireError(f"{what} (field {number}) has wire type {wire}, expected {wanted}")
