"""A minimal protobuf wire-format reader over an in-memory (or memory-mapped) buffer.

TensorFlow's files (``saved_model.pb``, ``keras_metadata.pb``, tensor-bundle entries, the
checkpointable object graph) are protobuf messages. This reader yields the fields of one message
between two offsets; callers pick the field numbers they need and never materialize the rest.
Every length is checked against the enclosing message, so a truncated or hostile file raises
:class:`ProtoError` with one line instead of reading past its end.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class ProtoError(Exception):
    """The bytes are not a well-formed protobuf message (one-line message)."""


#: one field: ``(number, wire type, value, start, end)``; ``value`` is the integer of a VARINT or
#: FIXED field, ``start``/``end`` delimit the payload of a LEN field (plain tuples: this is the
#: hot loop of every TensorFlow reader)
Field = tuple[int, int, int, int, int]


def varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return ``(value, next position)``."""
    if pos < end:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
    result = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise ProtoError(f"truncated varint at byte {pos}")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos + i + 1
        shift += 7
    raise ProtoError(f"malformed varint at byte {pos}")


def fields(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, in file order."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError(f"invalid field number 0 before byte {pos}")
        if wire == LEN:
            length, pos = varint(buf, pos, end)
            if pos + length > end:
                raise ProtoError(
                    f"field {number} at byte {pos} claims {length} bytes, more than its message "
                    "holds (truncated or corrupt file)"
                )
            yield number, wire, 0, pos, pos + length
            pos += length
        elif wire == VARINT:
            value, pos = varint(buf, pos, end)
            yield number, wire, value, pos, pos
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if pos + width > end:
                raise ProtoError(f"truncated fixed-width field {number} at byte {pos}")
            yield number, wire, int.from_bytes(buf[pos : pos + width], "little"), pos, pos + width
            pos += width
        else:
            raise ProtoError(f"unsupported wire type {wire} before byte {pos} (not protobuf)")


def text(buf: bytes | memoryview, start: int, end: int) -> str:
    """A LEN field's payload as UTF-8 text."""
    return bytes(buf[start:end]).decode("utf-8", "replace")


def packed_ints(buf: bytes | memoryview, start: int, end: int) -> list[int]:
    """The values of a packed repeated integer field."""
    out: list[int] = []
    pos = start
    while pos < end:
        value, pos = varint(buf, pos, end)
        out.append(value)
    return out


def signed(value: int) -> int:
    """A varint read as int64."""
    return value - (1 << 64) if value >= 1 << 63 else value
