"""Bounds checked on a zip archive before anything parses its central directory.

Python's ``zipfile`` builds one object per entry when it opens an archive, so an archive with
millions of entries costs seconds and hundreds of megabytes before a single name is seen. The end
of central directory record states the entry count and directory size up front: read it first.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from .errors import LoadError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
#: bytes of central directory allowed per permitted entry (a name of up to ~200 bytes each)
_BYTES_PER_ENTRY = 256
#: general-purpose flags that need zipfile's own reader: encrypted, patched, strongly encrypted
_NEEDS_ZIPFILE = 0x1 | 0x20 | 0x40
_UTF8_NAME = 0x800
_LOCAL_HEADER = 30


def check_zip(handle: IO[bytes], max_entries: int) -> None:
    """Raise LoadError when the archive declares more entries than ``max_entries``."""
    end = handle.seek(0, 2)
    tail_size = min(end, 65_536 + 22)
    handle.seek(end - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return  # zipfile reports the damage precisely
    entries, cd_size = struct.unpack("<xxxxxxxxxxHI", tail[at : at + 16])
    locator = tail.rfind(_ZIP64_LOCATOR, 0, at)
    if locator >= 0 and len(tail) >= locator + 20:
        (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        if 0 <= offset <= end - 56:
            handle.seek(offset)
            record = handle.read(56)
            if record[:4] == _ZIP64_EOCD:
                entries, cd_size = struct.unpack("<QQ", record[32:48])
    if entries > max_entries or cd_size > max_entries * _BYTES_PER_ENTRY:
        raise LoadError(
            f"zip archive lists {entries:,} entries ({cd_size:,} bytes of directory), more than "
            f"the {max_entries:,} allowed: refused (a resource bomb, or raise the limit)"
        )


def open_zip(source: Path | IO[bytes], max_entries: int) -> zipfile.ZipFile:
    """Open an archive after checking its declared size. Raises LoadError."""
    try:
        if isinstance(source, Path):
            with open(source, "rb") as handle:
                check_zip(handle, max_entries)
            return zipfile.ZipFile(source)
        check_zip(source, max_entries)
        source.seek(0)
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise LoadError(f"corrupt or truncated zip archive ({str(exc)[:120]})") from None


def read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int, max_ratio: int
) -> bytes:
    """Read one entry, refusing encrypted entries, oversized ones and compression bombs."""
    if info.flag_bits & 0x1:
        raise LoadError(
            f"entry {info.filename[:80]!r} is password-protected: its contents cannot be scanned"
        )
    if info.file_size > max_bytes:
        raise LoadError(
            f"entry {info.filename[:80]!r} expands to {info.file_size:,} bytes, over the "
            f"{max_bytes:,} read limit: not scanned"
        )
    if info.compress_size and info.file_size > (1 << 20) and (
        info.file_size / info.compress_size > max_ratio
    ):
        raise LoadError(
            f"entry {info.filename[:80]!r} has a compression ratio over {max_ratio}:1 "
            "(a zip bomb): not scanned"
        )
    try:
        data = read_member(archive, info, max_bytes + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as exc:
        raise LoadError(f"zip entry {info.filename[:80]!r} is unreadable ({str(exc)[:120]})") from None
    except RuntimeError as exc:  # encrypted without a password, in older zipfile versions
        raise LoadError(f"zip entry {info.filename[:80]!r} cannot be read ({exc})") from None
    if len(data) > max_bytes:
        raise LoadError(f"entry {info.filename[:80]!r} expands past the read limit: not scanned")
    return data


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes:
    """What ``archive.open(info).read(size)`` returns, errors included.

    ``ZipFile.open`` builds a shared-file wrapper and a stream per call, most of the cost of
    reading a small member; an uncompressed, unencrypted member whose local header agrees with
    the directory is read here with one seek and one read instead. Anything else (and anything
    odd on the way) goes through ``ZipFile.open``, so damaged archives fail with zipfile's words.
    """
    data = _read_stored(archive, info, size)
    if data is None:
        with archive.open(info) as member:
            data = member.read(size)
    return data


def member_data_offset(
    handle: IO[bytes], info: zipfile.ZipInfo, name_encoding: str | None = None,
) -> int | None:
    """Where a member's bytes start: after its local header, whose extra field may differ from
    the central directory's. None when no local header stands at ``info.header_offset`` or,
    given the archive's ``name_encoding`` (for names not flagged UTF-8), when it names another
    file. Raises OSError / ValueError as the handle does."""
    handle.seek(info.header_offset)
    local = handle.read(_LOCAL_HEADER)
    if len(local) != _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
        return None
    (flags,) = struct.unpack("<H", local[6:8])
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    if name_encoding is not None:
        encoding = "utf-8" if flags & _UTF8_NAME else name_encoding
        if handle.read(name_len).decode(encoding) != info.orig_filename:
            return None
    return info.header_offset + _LOCAL_HEADER + name_len + extra_len


def _read_stored(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes | None:
    handle = archive.fp
    if (
        handle is None or archive.mode != "r" or size < 0
        or info.compress_type != zipfile.ZIP_STORED or info.flag_bits & _NEEDS_ZIPFILE
    ):
        return None
    try:
        start = member_data_offset(  # metadata_encoding: 3.11+
            handle, info, getattr(archive, "metadata_encoding", None) or "cp437")
        if start is None:
            return None
        handle.seek(start)
        # zipfile reads at least MIN_READ_SIZE bytes and checks the CRC when that reaches the end
        want = min(max(size, zipfile.ZipExtFile.MIN_READ_SIZE), info.compress_size)
        raw = handle.read(want)
    except (OSError, ValueError):
        return None
    if len(raw) != want:
        return None
    data = raw[: info.file_size]
    at_end = want == info.compress_size or len(data) >= info.file_size
    if at_end and zlib.crc32(data) != info.CRC:
        return None
    return data[:size]
