"""Protobuf wire-format primitives shared by the ONNX and TensorFlow readers.

Both walk messages over anything indexed like ``bytes`` (bytes, a memory map, a window over a
remote stream) and decode only the fields they need. A value is checked against the end of the
message that holds it, so a truncated or hostile file raises :class:`WireError` with one line
naming the byte, never reads past its end.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class WireError(Exception):
    """The bytes are not a well-formed protobuf message (one-line message)."""


def varint(buf: Any, pos: int, end: int, where: int = -1) -> tuple[int, int]:
    """The varint at ``pos``, which must end by ``end``, and the position after it.

    Errors name byte ``where`` (the start of the field being read), or ``pos`` when not given.
    """
    if pos < end:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
    result = shift = 0
    for at in range(pos, pos + 10):
        if at >= end:
            raise WireError(f"truncated varint at byte {pos if where < 0 else where}")
        byte = buf[at]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, at + 1
        shift += 7
    raise WireError(f"malformed varint at byte {pos if where < 0 else where}")


def signed(value: int) -> int:
    """A varint read as int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(buf: Any, pos: int, end: int) -> list[int]:
    """The raw values of a packed repeated varint field ``buf[pos:end]``."""
    out: list[int] = []
    while pos < end:
        value = buf[pos]
        if value < 0x80:
            pos += 1
        else:
            value, pos = varint(buf, pos, end)
        out.append(value)
    return out
