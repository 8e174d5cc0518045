"""Opening model files, local or remote, as seekable binary streams.

Loaders call :func:`open_binary` instead of ``open(path, "rb")``. A local path opens the file; a
URL (``https://``, ``s3://``, ``gs://``, ``hf://``, any protocol fsspec knows) opens it through
fsspec, behind a small read-through block cache so that reading a header, a zip directory or a
protobuf's field tags costs a few range requests, never the whole file. fsspec is imported only
when a URL is met (``pip install paraminspect[remote]``).
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

from .errors import LoadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

#: ``scheme://`` at the start of a path marks it as remote (``C:\`` and ``./x`` are local)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_FOLDED_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?=[^/])")
#: smallest and largest range request: check reads headers, directories and field tags only
MIN_FETCH = 2 * 1024
MAX_FETCH = 1024 * 1024
#: fetched ranges kept per open file
CACHE_BLOCKS = 16


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths (opened through fsspec)."""
    return isinstance(path, str) and _URL.match(path) is not None


def restore_url(raw: str | os.PathLike[str]) -> str | None:
    """The URL in ``raw``, or None for a local path. Repairs the ``s3:/bucket`` that ``Path``
    makes of ``s3://bucket`` (a one-letter scheme is a Windows drive, not a URL)."""
    text = os.fspath(raw)
    if _URL.match(text):
        return text
    folded = _FOLDED_URL.match(text)
    if folded and not os.path.exists(text):
        return f"{folded.group(1)}://{text[folded.end():]}"
    return None


def as_path(raw: str | os.PathLike[str]) -> str | Path:
    """A local path as :class:`Path`; a URL kept as a string (``Path`` would fold its ``//``)."""
    url = restore_url(raw)
    return url if url is not None else Path(raw)


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """A seekable binary stream on ``path``. Raises OSError (or LoadError for a missing extra)."""
    if not is_remote(path):
        return open(path, "rb")
    fs, target = _filesystem(str(path))
    # cache_type "none": every read is one range request, and BlockCache decides their size.
    raw = fs.open(target, "rb", block_size=MIN_FETCH, cache_type="none")
    return BlockCache(raw, raw.size)  # type: ignore[return-value]


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise LoadError(
            "remote paths need the optional extra: pip install 'paraminspect[remote]'"
        ) from None
    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as exc:
        raise LoadError(f"cannot open {url}: {exc}") from None


def remote_info(url: str) -> dict[str, Any]:
    """fsspec's ``info`` for a URL (size, ETag or mtime where the server gives them)."""
    fs, target = _filesystem(url)
    return fs.info(target)  # type: ignore[no-any-return]


def remote_walk(url: str) -> list[tuple[str, bool]]:
    """``(url, is_folder)`` for a remote path: itself if it is a file, else its files, sorted."""
    fs, target = _filesystem(url)
    # ``info`` is one HEAD (or metadata) request; ``isdir`` on HTTP would GET the whole body to
    # look for links, so an HTTP folder is a URL ending in "/" (an index page).
    try:
        kind = fs.info(target).get("type")
    except FileNotFoundError:
        kind = "directory" if url.endswith("/") else "file"
    if kind != "directory" and not url.endswith("/"):
        return [(url, False)]
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    out = []
    for name in sorted(fs.find(target)):
        out.append((name if is_remote(name) else f"{protocol}://{name}", False))
    return out


class _Seekable(io.RawIOBase):
    """A read-only stream of known length: position bookkeeping shared by the readers below."""

    _pos = 0

    def _extent(self) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._extent()}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class BlockCache(_Seekable):
    """A read-only, seekable view of an fsspec file: range requests sized by the access pattern.

    A read after a jump fetches a small block (a tag, a header, a zip record: 2 KB); reads that
    continue where the last one ended double the fetch size up to 1 MB, so a walk over a dense
    protobuf costs few requests and a walk that seeks over gigabytes of weights costs a few KB per
    tensor. The last ``CACHE_BLOCKS`` fetched ranges are kept (headers are read twice: by the
    sniffer and by the loader).
    """

    #: readers that keep their own window (the ONNX walker) size it to this
    preferred_block = MIN_FETCH

    def __init__(self, raw: Any, size: int) -> None:
        super().__init__()
        self._raw = raw
        self._size = int(size)
        self._pos = 0
        self._ranges: OrderedDict[int, bytes] = OrderedDict()  # start -> bytes
        self._ahead = MIN_FETCH
        self._last_end = -1
        self._last_fetch_end = -1
        self.requests = 0  #: range requests made (for tests and curiosity)

    def _extent(self) -> int:
        return self._size

    def _cached(self, start: int, end: int) -> bytes | None:
        for begin, data in reversed(self._ranges.items()):
            if begin <= start and end <= begin + len(data):
                return data[start - begin : end - begin]
        return None

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        start = self._pos
        if end <= start:
            return b""
        data = self._cached(start, end)
        if data is None:
            # a read that begins inside the last fetched range continues it: fetch only the rest
            head, fetch_start = b"", start
            if self._ranges:
                last_start, last = next(reversed(self._ranges.items()))
                if last_start <= start < last_start + len(last):
                    head, fetch_start = last[start - last_start :], last_start + len(last)
            sequential = fetch_start == self._last_fetch_end
            self._ahead = min(self._ahead * 2, MAX_FETCH) if sequential else MIN_FETCH
            fetch_end = min(self._size, max(end, fetch_start + self._ahead))
            self._raw.seek(fetch_start)
            fetched = self._raw.read(fetch_end - fetch_start)
            self.requests += 1
            self._last_fetch_end = fetch_start + len(fetched)
            self._ranges[fetch_start] = fetched
            if len(self._ranges) > CACHE_BLOCKS:
                self._ranges.popitem(last=False)
            data = (head + fetched)[: end - start]
        self._pos = start + len(data)
        self._last_end = self._pos
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self._ranges.clear()
        super().close()


class Window(_Seekable):
    """A read-only, seekable view of ``length`` bytes at ``start`` of another seekable stream."""

    def __init__(self, handle: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._handle, self._start, self._length, self._pos = handle, start, length, 0

    def _extent(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        end = self._length if n is None or n < 0 else min(self._length, self._pos + n)
        if end <= self._pos:
            return b""
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(end - self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_member(archive: zipfile.ZipFile, name: str) -> BinaryIO:
    """A seekable stream on one zip member without reading (or checksumming) it whole.

    A stored (uncompressed) member is a window on the archive's own file at the member's data
    offset; a compressed one falls back to ``ZipFile.open`` (seekable, decompressing lazily).
    """
    info = archive.getinfo(name)
    handle = archive.fp
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or handle is None:
        return archive.open(info)  # type: ignore[return-value]
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {name}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    return Window(handle, start, info.file_size)  # type: ignore[return-value]
