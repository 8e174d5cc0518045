"""The bytes an ONNX file is walked over, and the protobuf field heads the walker reads there.

A local file is memory-mapped read-only: the walker indexes it like ``bytes`` and the pages of the
tensor payloads it skips are never read. A stream that cannot be mapped (a remote file behind
:class:`~paraminspect.io.BlockCache`) is read through one window that moves to wherever the walker
looks next, so jumping over a payload costs no transfer.

Every position is a file offset. The wire-format primitives themselves are
:mod:`paraminspect.loaders.protobuf`'s; here are the ONNX walker's field heads over a buffer. A
malformed or truncated file raises :class:`~paraminspect.loaders.protobuf.WireError` with one line
naming the byte.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager

from ..protobuf import FIXED32, FIXED64, LEN, VARINT, WireError, varint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

#: bytes read per window of a stream that cannot be mapped, unless it asks for another size
_BLOCK = 64 * 1024


class StreamBuffer:
    """``buf[i]``, ``buf[a:b]`` and ``len(buf)`` over a seekable stream, through one read window.

    A miss refills the window from the position asked for, ``block`` bytes long (a remote stream
    names its own, small, ``preferred_block``: it pays per byte transferred).
    """

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.block = int(getattr(handle, "preferred_block", _BLOCK))
        self.window = b""
        self.start = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            begin, end = key.start, min(key.stop, self.size)
            if end <= begin:
                return b""
            offset = begin - self.start
            if offset < 0 or offset + end - begin > len(self.window):
                self._fill(begin, end - begin)
                offset = 0
            return self.window[offset : offset + end - begin]
        if not 0 <= key < self.size:
            raise IndexError(key)
        offset = key - self.start
        if offset < 0 or offset >= len(self.window):
            self._fill(key, 1)
            offset = 0
        return self.window[offset]

    def _fill(self, pos: int, n: int) -> None:
        self.handle.seek(pos)
        data = self.handle.read(max(n, self.block))
        if len(data) < n:
            raise WireError(f"unexpected end of file at byte {pos + len(data)}")
        self.window, self.start = data, pos


#: what the walker indexes: a memory map, a stream window, or plain bytes
Buffer = mmap.mmap | StreamBuffer | bytes


#: bytes of a mapped file the walker may leave behind it before they are unmapped
RELEASE_STEP = 32 << 20


def release(buf: Buffer, upto: int) -> None:
    """Unmap the pages of ``buf`` before ``upto``, which the walker has passed.

    Reading one byte of a mapped file maps the whole page-cache folio around it: up to 2 MB on
    file systems with large folios, so touching each tensor's header of a 1 GB model left half
    the file resident. The pages stay in the page cache; a later read faults them back in.
    """
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        aligned = upto - upto % mmap.PAGESIZE
        if aligned > 0:
            buf.madvise(mmap.MADV_DONTNEED, 0, aligned)


@contextmanager
def byte_buffer(handle: BinaryIO, size: int) -> Iterator[Buffer]:
    """The ``size`` bytes of ``handle``: memory-mapped when it is a local file, else windowed."""
    try:
        view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # remote or in-memory streams, empty files, special files
        view = None
    if view is None:
        yield StreamBuffer(handle, size)
        return
    try:
        yield view
    finally:
        view.close()


def overclaim(number: int, start: int, length: int) -> WireError:
    """The error for a LEN field longer than the rest of its message."""
    return WireError(
        f"field {number} at byte {start} claims {length} bytes, more than its message holds "
        "(truncated or corrupt file)"
    )


def head(buf: Buffer, start: int, end: int) -> tuple[int, int, int | bytes, int]:
    """The field whose key is at ``start``, in a message ending at ``end``.

    Returns ``(number, wire, value, pos)``: ``value`` is a VARINT's integer, a LEN field's length
    (its payload is ``buf[pos:pos + value]``, checked to end within the message) or the bytes of
    a FIXED32/FIXED64 field; ``pos`` is the position after the value (after the length for LEN).
    """
    key = buf[start]
    if key < 0x80:
        pos = start + 1
    else:
        key, pos = varint(buf, start, end, start)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise WireError(f"invalid field number 0 at byte {start}")
    if wire in (VARINT, LEN):
        if pos >= end:
            raise WireError(f"truncated varint at byte {start}")
        value = buf[pos]
        if value < 0x80:
            pos += 1
        else:
            value, pos = varint(buf, pos, end, start)
        if wire == LEN and pos + value > end:
            raise overclaim(number, start, value)
        return number, wire, value, pos
    if wire in (FIXED64, FIXED32):
        width = 8 if wire == FIXED64 else 4
        fixed = buf[pos : pos + width]
        if len(fixed) != width:
            raise WireError(f"unexpected end of file at byte {pos}")
        return number, wire, fixed, pos + width
    raise WireError(f"unsupported wire type {wire} at byte {start} (not protobuf)")


def overrun(pos: int) -> WireError:
    """The error for a field that ends past the end of its message."""
    return WireError(f"a field overruns its message at byte {pos}")


def fields(buf: Buffer, pos: int, end: int) -> Iterator[tuple[int, int, int | bytes, int]]:
    """:func:`head` of every field of the message ``buf[pos:end]``, in file order; a LEN
    field's payload is skipped whether or not the caller reads it."""
    while pos < end:
        number, wire, value, at = head(buf, pos, end)
        pos = at + value if wire == LEN else at  # type: ignore[operator]
        yield number, wire, value, at
    if pos != end:
        raise overrun(pos)
