"""TensorFlow tensor bundles: ``<prefix>.index`` + ``<prefix>.data-<s>-of-<n>``.

The index is a LevelDB-style sorted table (SSTable). Its last 48 bytes are a footer holding the
block handles of the metaindex and index blocks and a fixed magic number; the index block maps
keys to data blocks; each data block holds prefix-compressed ``key -> value`` entries followed by
restart offsets. Every value is a serialized ``BundleEntryProto`` (dtype, shape, shard, offset,
size) except the one under the empty key, the ``BundleHeaderProto`` (number of shards,
endianness). Only names, dtypes and shapes are read here; the one value ever read from a data
shard is the checkpointable object graph (a small serialized proto stored as a string tensor).
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path

from ...errors import LoadError
from ...record import Record
from ..protobuf import LEN, WireError, packed_varints, signed, varint
from .proto import fields

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
#: the index of a healthy checkpoint is small (a few hundred bytes per tensor)
MAX_INDEX_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 5_000_000
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024
MAX_RANK = 64
#: upper bound on the object-graph proto read from a data shard
MAX_OBJECT_GRAPH_BYTES = 64 * 1024 * 1024
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

#: TensorFlow DataType enum -> name
DTYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64", 24: "float8_e5m2",
    25: "float8_e4m3fn", 29: "int4", 30: "uint4",
}


class BundleEntry(Record):
    """One tensor of the bundle, without its bytes."""

    __slots__ = ("key", "dtype", "shape", "shard_id", "offset", "size", "sliced")
    key: str
    dtype: str | None
    shape: tuple[int, ...] | None
    shard_id: int
    offset: int
    size: int
    sliced: bool

    def __init__(
        self, key: str, dtype: str | None, shape: tuple[int, ...] | None, shard_id: int = 0,
        offset: int = 0, size: int = 0, sliced: bool = False,
    ) -> None:
        self.key = key
        self.dtype = dtype
        self.shape = shape
        self.shard_id = shard_id
        self.offset = offset
        self.size = size
        self.sliced = sliced


class Bundle(Record):
    """What a ``.index`` file says about its tensors."""

    __slots__ = ("prefix", "num_shards", "entries")
    prefix: Path
    num_shards: int
    entries: dict[str, BundleEntry]

    def __init__(
        self, prefix: Path, num_shards: int = 1, entries: dict[str, BundleEntry] | None = None,
    ) -> None:
        self.prefix = prefix
        self.num_shards = num_shards
        self.entries = {} if entries is None else entries

    def data_file(self, shard: int) -> Path:
        return self.prefix.with_name(
            f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")

    def missing_shards(self) -> list[str]:
        return [self.data_file(s).name for s in range(self.num_shards)
                if not self.data_file(s).is_file()]


def is_table(head_tail: bytes) -> bool:
    """True when the last 8 bytes of a file are the sorted-table magic number."""
    return len(head_tail) >= 8 and int.from_bytes(head_tail[-8:], "little") == TABLE_MAGIC


def dtype_name(code: int) -> str | None:
    return DTYPES.get(code, f"dtype{code}" if code else None)


def parse_shape(buf: bytes | memoryview, start: int, end: int) -> tuple[int, ...] | None:
    """A ``TensorShapeProto``; None for an unknown rank or an unknown dimension."""
    dims: list[int] = []
    for fn, fw, fv, fs, fe in fields(buf, start, end):
        if fn == 2 and fw == LEN:
            size = 0
            for gn, _gw, gv, _gs, _ge in fields(buf, fs, fe):
                if gn == 1:
                    size = signed(gv)
            if size < 0:
                return None
            dims.append(size)
            if len(dims) > MAX_RANK:
                raise WireError(f"a shape of more than {MAX_RANK} dimensions")
        elif fn == 3 and fv:
            return None
    return tuple(dims)


def read_index(index: Path) -> Bundle:
    """Read every entry of a tensor-bundle index. Raises LoadError for anything malformed."""
    try:
        info = index.stat()
    except OSError as exc:
        raise LoadError(f"cannot open {index.name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise LoadError(f"{index.name} is not a regular file")
    if info.st_size < FOOTER_BYTES:
        raise LoadError(f"{index.name} is too short to be a tensor-bundle index")
    if info.st_size > MAX_INDEX_BYTES:
        raise LoadError(f"{index.name} is larger than {MAX_INDEX_BYTES >> 20} MB: refused")
    bundle = Bundle(prefix=index.with_suffix("") if index.suffix == ".index" else index)
    try:
        with open(index, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            _read_table(buf, index.name, bundle)
    except WireError as exc:
        raise LoadError(f"{index.name}: corrupt tensor-bundle index ({exc})") from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {index.name}: {exc}") from None
    return bundle


def _block(buf: mmap.mmap, offset: int, size: int, what: str) -> tuple[int, int]:
    if size > MAX_BLOCK_BYTES or offset + size + 5 > len(buf):
        raise WireError(f"{what} block at {offset} (+{size} bytes) lies outside the file")
    compression = buf[offset + size]
    if compression != 0:
        raise WireError(f"{what} block uses compression type {compression} (only 0 is written "
                         "by TensorFlow)")
    return offset, offset + size


def _entries(buf: mmap.mmap, start: int, end: int):
    """``(key, value_start, value_end)`` of one block."""
    if end - start < 4:
        raise WireError(f"block at {start} is too short")
    restarts = int.from_bytes(buf[end - 4 : end], "little")
    limit = end - 4 - 4 * restarts
    if restarts == 0 or limit < start:
        raise WireError(f"block at {start} has an invalid restart array")
    pos, key = start, b""
    while pos < limit:
        shared, pos = varint(buf, pos, limit)
        unshared, pos = varint(buf, pos, limit)
        length, pos = varint(buf, pos, limit)
        if shared > len(key) or unshared > MAX_KEY_BYTES or pos + unshared + length > limit:
            raise WireError(f"entry at byte {pos} runs past its block")
        key = key[:shared] + buf[pos : pos + unshared]
        if len(key) > MAX_KEY_BYTES:
            raise WireError(f"a key longer than {MAX_KEY_BYTES} bytes at byte {pos}")
        pos += unshared
        yield key, pos, pos + length
        pos += length


def _handle(buf: mmap.mmap, pos: int, end: int) -> tuple[int, int, int]:
    offset, pos = varint(buf, pos, end)
    size, pos = varint(buf, pos, end)
    return offset, size, pos


def _read_table(buf: mmap.mmap, name: str, bundle: Bundle) -> None:
    footer = len(buf) - FOOTER_BYTES
    if int.from_bytes(buf[len(buf) - 8 :], "little") != TABLE_MAGIC:
        raise WireError("no sorted-table magic number at the end")
    _meta_offset, _meta_size, pos = _handle(buf, footer, len(buf) - 8)
    index_offset, index_size, _ = _handle(buf, pos, len(buf) - 8)
    start, end = _block(buf, index_offset, index_size, "index")
    count, has_header = 0, False
    for _key, vstart, vend in _entries(buf, start, end):
        offset, size, _ = _handle(buf, vstart, vend)
        dstart, dend = _block(buf, offset, size, "data")
        for key, kstart, kend in _entries(buf, dstart, dend):
            count += 1
            if count > MAX_ENTRIES:
                raise WireError(f"more than {MAX_ENTRIES} entries")
            text = key.decode("utf-8", "replace")
            if not text:
                _header(buf, kstart, kend, bundle)
                has_header = True
            else:
                bundle.entries[text] = _entry(buf, text, kstart, kend)
    if not has_header:  # other sorted tables (LevelDB .ldb files) share the magic number
        raise WireError("a sorted table without a tensor-bundle header")


def _header(buf: mmap.mmap, start: int, end: int, bundle: Bundle) -> None:
    for fn, fw, fv, _fs, _fe in fields(buf, start, end):
        if fn == 1 and fw != LEN:
            if not 1 <= fv <= 100_000:
                raise WireError(f"implausible shard count {fv}")
            bundle.num_shards = fv
        elif fn == 2 and fw != LEN and fv != 0:
            raise WireError("big-endian bundles are not supported")


def _entry(buf: mmap.mmap, key: str, start: int, end: int) -> BundleEntry:
    entry = BundleEntry(key=key, dtype=None, shape=())
    for fn, fw, fv, fs, fe in fields(buf, start, end):
        if fn == 1 and fw != LEN:
            entry.dtype = dtype_name(fv)
        elif fn == 2 and fw == LEN:
            entry.shape = parse_shape(buf, fs, fe)
        elif fn == 3:
            entry.shard_id = (packed_varints(buf, fs, fe) or [0])[0] if fw == LEN else fv
        elif fn == 4:
            entry.offset = fv
        elif fn == 5:
            entry.size = fv
        elif fn == 7:
            entry.sliced = True
    return entry


def read_scalar_string(bundle: Bundle, key: str, limit: int = MAX_OBJECT_GRAPH_BYTES) -> bytes:
    """The value of one scalar string tensor (the object graph), read by offset from its shard.

    A string tensor is stored as one varint length per element, a 4-byte checksum of those
    lengths, then the bytes.
    """
    entry = bundle.entries.get(key)
    if entry is None or entry.dtype != "string" or entry.shape not in ((), None):
        raise LoadError(f"{key} is not a scalar string tensor")
    if entry.size > limit:
        raise LoadError(f"{key} claims {entry.size} bytes (limit {limit}): refused")
    if entry.shard_id >= bundle.num_shards:
        raise LoadError(f"{key} names shard {entry.shard_id} of {bundle.num_shards}")
    data = bundle.data_file(entry.shard_id)
    try:
        with open(data, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise LoadError(f"{data.name} is not a regular file")
            handle.seek(entry.offset)
            raw = handle.read(entry.size)
    except OSError as exc:
        raise LoadError(f"cannot read {data.name}: {exc.strerror or exc}") from None
    if len(raw) != entry.size:
        raise LoadError(f"{data.name} is truncated ({key} runs past its end)")
    try:
        length, pos = varint(raw, 0, len(raw))
    except WireError as exc:
        raise LoadError(f"{key} in {data.name} is corrupt ({exc})") from None
    if pos + 4 + length != len(raw):
        raise LoadError(f"{key} in {data.name} is corrupt (length {length} does not fit "
                        f"{len(raw)} stored bytes)")
    return raw[pos + 4 :]
