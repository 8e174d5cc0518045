"""The fields of a protobuf message over an in-memory (or memory-mapped) buffer, for TensorFlow.

TensorFlow's files (``saved_model.pb``, ``keras_metadata.pb``, tensor-bundle entries, the
checkpointable object graph) are protobuf messages. This reader yields the fields of one message
between two offsets; callers pick the field numbers they need and never materialize the rest.
Every length is checked against the enclosing message, so a truncated or hostile file raises
:class:`WireError` with one line instead of reading past its end.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..protobuf import FIXED32, FIXED64, LEN, VARINT, WireError, varint

#: one field: ``(number, wire type, value, start, end)``; ``value`` is the integer of a VARINT or
#: FIXED field, ``start``/``end`` delimit the payload of a LEN field (plain tuples: this is the
#: hot loop of every TensorFlow reader)
Field = tuple[int, int, int, int, int]


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
            raise WireError(f"invalid field number 0 before byte {pos}")
        if wire == LEN:
            length, pos = varint(buf, pos, end)
            if pos + length > end:
                raise WireError(
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
                raise WireError(f"truncated fixed-width field {number} at byte {pos}")
            yield number, wire, int.from_bytes(buf[pos : pos + width], "little"), pos, pos + width
            pos += width
        else:
            raise WireError(f"unsupported wire type {wire} before byte {pos} (not protobuf)")


def text(buf: bytes | memoryview, start: int, end: int) -> str:
    """A LEN field's payload as UTF-8 text."""
    return bytes(buf[start:end]).decode("utf-8", "replace")
