"""PyTorch ``torch.save`` files (zip and legacy) and plain pickles, read without torch and without
running them: the loaders' entry points, the unpickled object with the globals it names, the storage
bookkeeping, and a reader for 0-d tensors. What the object means is :mod:`.saved_objects`.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError
from ...graph import ModelGraph
from ...io import open_binary
from ...sniff import Sniffed
from ...zipguard import member_data_offset, open_zip, read_entry
from ..pickle.carriers import walk_zip
from ..pickle.limits import DEFAULT_LIMITS
from ..pickle.scan import with_partial
from ..pickle.stubs import GlobalLog
from ..pickle.tensors import DTYPE_SIZES, ScalarReader, StorageRef, TensorRef
from ..pickle.unpickler import PausedGC, RestrictedUnpickler, load_one, unpickle
from .saved_objects import as_data_unless_model, build_graph

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any



# -- entry points --------------------------------------------------------------------------------
# Loading allocates a few objects per tensor and frees almost none: the cyclic collector is
# paused meanwhile (see PausedGC), or it would re-scan every live object many times over.
def load_zip(path: Path, sniffed: Sniffed) -> ModelGraph:
    notes: list[str] = []
    with PausedGC():
        obj, log, read_scalar = read_zip(path, sniffed.detail["prefix"], notes, sniffed.archive)
        graph = as_data_unless_model(build_graph(path, "pytorch", obj, log, read_scalar), obj)
    graph.notes.extend(notes)
    return graph


def load_legacy(path: Path, sniffed: Sniffed) -> ModelGraph:
    with PausedGC():
        obj, log, read_scalar = _read_legacy(path)
        graph = build_graph(path, "pytorch-legacy", obj, log, read_scalar)
    return as_data_unless_model(graph, obj)


def load_plain_pickle(path: Path, sniffed: Sniffed) -> ModelGraph:
    """A bare pickle (``pickle.dump`` of a model or dict): walked the same way, storages absent."""
    obj, log, read_scalar = _read_plain(path)
    return as_data_unless_model(build_graph(path, "pickle", obj, log, read_scalar), obj)


def read_pickle(path: Path, sniffed: Sniffed) -> tuple[Any, GlobalLog, ScalarReader]:
    """The unpickled object of any ``torch.save``/pickle file (stubs, no tensor bytes), the
    globals it names, and a reader for 0-d tensors such as optimizer ``step`` counters."""
    if sniffed.format == "pytorch":
        return read_zip(path, sniffed.detail["prefix"], archive=sniffed.archive)
    if sniffed.format == "pytorch-legacy":
        return _read_legacy(path)
    if sniffed.format == "pickle":
        return _read_plain(path)
    raise LoadError(f"a {sniffed.format} file, not a torch.save or pickle file")


def read_zip(
    path: Path, prefix: str, notes: list[str] | None = None,
    archive: zipfile.ZipFile | None = None,
) -> tuple[Any, GlobalLog, ScalarReader]:
    """The walked pickle of a torch zip file, its global log and a reader for 0-d tensors.

    ``archive``: the one sniffing opened, reused (one directory read per file); otherwise the
    file is opened here. The archive stays open for the reader of 0-d tensors (one ``step``
    counter per parameter: a new archive per counter would re-read the whole directory).
    Other pickles in the archive are scanned too (their findings land in the log); what could not
    be scanned is added to ``notes``.
    """
    log = GlobalLog()
    graph = ModelGraph(path=str(path), format="pytorch", framework="pytorch")
    try:
        if archive is None:
            source = path if isinstance(path, Path) else open_binary(path)
            archive = open_zip(source, DEFAULT_LIMITS.max_zip_entries)
        # torch reads the FIRST entry of a name; zipfile's getinfo would give the last one
        info = next(
            (i for i in archive.infolist() if i.filename == f"{prefix}/data.pkl"), None
        )
        if info is None:
            raise KeyError(f"{prefix}/data.pkl")
        data = read_entry(
            archive, info, DEFAULT_LIMITS.max_entry_bytes, DEFAULT_LIMITS.max_compression_ratio
        )
        members: dict[str, zipfile.ZipInfo] = {}
        for entry in archive.infolist():
            if entry.filename.startswith(f"{prefix}/data/"):
                members.setdefault(entry.filename[len(prefix) + 6 :], entry)
        # Pickles torch would not read here are still scanned: another loader might.
        try:
            walk_zip(archive, log, DEFAULT_LIMITS, skip=info)
        except LoadError as exc:
            if notes is not None:
                notes.append(f"another entry of the archive could not be scanned: {exc}")
        obj, unpickler = unpickle(data, log)
    except LoadError as exc:
        raise with_partial(exc, graph, log) from None
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError, KeyError) as exc:
        raise with_partial(LoadError(f"corrupt zip archive ({exc})"), graph, log) from None
    check_storages(unpickler.storages, {key: info.file_size for key, info in members.items()})

    def read_scalar(ref: TensorRef) -> float | None:
        if ref.storage is None or ref.dtype not in DTYPE_SIZES:
            return None
        info = members.get(ref.storage.key)
        size = DTYPE_SIZES[ref.dtype]
        if info is None or (ref.offset + 1) * size > info.file_size:
            return None
        try:
            raw = _read_member_bytes(archive, info, ref.offset * size, size)
        except (OSError, zipfile.BadZipFile, ValueError, zlib.error):
            return None
        return decode_scalar(raw, ref.dtype)

    return obj, log, read_scalar


def _read_member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, start: int, size: int) -> bytes:
    """``size`` bytes at ``start`` inside a member. torch stores members uncompressed: then two
    small reads at the member's offset, not a ``ZipFile.open`` (which builds a decoder per call)."""
    handle = archive.fp
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or handle is None:
        with archive.open(info) as member:
            member.seek(start)
            return member.read(size)
    if start < 0 or start + size > info.file_size:
        return b""
    data = member_data_offset(handle, info)
    if data is None:
        raise zipfile.BadZipFile("bad local file header")
    handle.seek(data + start)
    return handle.read(size)


def _read_legacy(path: Path) -> tuple[Any, GlobalLog, ScalarReader]:
    log = GlobalLog()
    try:
        handle = open_binary(path)
    except OSError as exc:
        raise LoadError(f"cannot open: {exc.strerror or exc}") from None
    with handle:
        unpickler = RestrictedUnpickler(handle, log)
        try:
            for _ in range(3):  # magic number, protocol version, sys_info
                load_one(unpickler)
            obj = load_one(unpickler)
            keys = load_one(unpickler)
        except LoadError as exc:
            graph = ModelGraph(path=str(path), format="pytorch-legacy", framework="pytorch")
            raise with_partial(exc, graph, log) from None
        data_start = handle.tell()
        file_size = handle.seek(0, 2)
    if not isinstance(keys, list):
        raise LoadError("legacy torch file without its storage key list")
    offsets = _legacy_storage_offsets(path, keys, unpickler.storages, data_start, file_size)
    reader: list[Any] = []  # one handle for every step counter, opened on the first

    def read_scalar(ref: TensorRef) -> float | None:
        if ref.storage is None or ref.dtype not in DTYPE_SIZES:
            return None
        start = offsets.get(ref.storage.key)
        if start is None:
            return None
        size = DTYPE_SIZES[ref.dtype]
        try:
            if not reader:
                reader.append(open_binary(path))
            reader[0].seek(start + ref.offset * size)
            return decode_scalar(reader[0].read(size), ref.dtype)
        except OSError:
            return None

    return obj, log, read_scalar


def _read_plain(path: Path) -> tuple[Any, GlobalLog, ScalarReader]:
    log = GlobalLog()
    try:
        with open_binary(path) as handle:
            obj, _ = unpickle(handle, log)
    except LoadError as exc:
        raise with_partial(exc, ModelGraph(path=str(path), format="pickle"), log) from None
    return obj, log, lambda ref: None


# -- storage bookkeeping -------------------------------------------------------------------------
def check_storages(storages: dict[str, StorageRef], sizes: dict[str, int]) -> None:
    for key, ref in storages.items():
        if key not in sizes:
            raise LoadError(f"archive is missing the data of storage {key}: truncated or corrupt")
        need = (ref.numel or 0) * DTYPE_SIZES.get(ref.dtype or "", 1)
        if ref.numel is not None and ref.dtype in DTYPE_SIZES and sizes[key] < need:
            raise LoadError(
                f"storage {key} holds {sizes[key]} bytes where {need} are expected: corrupt archive"
            )


def _legacy_storage_offsets(
    path: Path, keys: list[Any], storages: dict[str, StorageRef], start: int, file_size: int
) -> dict[str, int]:
    """Byte offset of each storage's data; walks the 8-byte length headers, reads no data."""
    offsets: dict[str, int] = {}
    position = start
    with open_binary(path) as f:
        for key in keys:
            key = str(key)
            f.seek(position)
            header = f.read(8)
            if len(header) < 8:
                raise LoadError("truncated legacy torch file: storage data is missing")
            (numel,) = struct.unpack("<q", header)
            ref = storages.get(key)
            item = DTYPE_SIZES.get(ref.dtype or "", 0) if ref else 0
            offsets[key] = position + 8
            position += 8 + numel * item
            if item == 0 or position > file_size:
                if position > file_size:
                    raise LoadError("truncated legacy torch file: storage data is missing")
                break
    return offsets


def decode_scalar(raw: bytes, dtype: str | None) -> float | None:
    formats = {"float32": "<f", "float64": "<d", "int64": "<q", "int32": "<i", "float16": "<e"}
    fmt = formats.get(dtype or "")
    if fmt is None or len(raw) != struct.calcsize(fmt):
        return None
    return float(struct.unpack(fmt, raw)[0])
