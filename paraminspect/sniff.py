"""Tell a file's format from its bytes, never from its name.

Sniffing reads at most a small header and, for zip files, the central directory. It decides which
loader gets the file; it does not parse the model.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LoadError, NotAModel, Skip
from .io import open_binary
from .other_formats import identify, is_joblib_pickle
from .record import FrozenRecord, assign
from .zipguard import check_zip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

PICKLE_PROTO = b"\x80"
#: torch's legacy (non-zip) files start with a pickled magic number: PROTO n, LONG1 10 bytes, magic.
TORCH_LEGACY_MAGIC = bytes.fromhex("6cfc9c46f9206aa85019")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
#: a zip archive's first bytes: a local file header, or the end record of an empty archive
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


class Sniffed(FrozenRecord):
    """The detected format plus what the sniffer learned on the way (e.g. the zip prefix)."""

    __slots__ = ("format", "detail", "archive")
    _hidden = ('archive',)
    format: str
    detail: dict[str, str]
    #: for zip formats, the archive sniffing opened (directory read once); loaders reuse it and
    #: :func:`paraminspect.loaders.load` closes it
    archive: zipfile.ZipFile | None

    def __init__(
        self, format: str, detail: dict[str, str] | None = None,
        archive: zipfile.ZipFile | None = None,
    ) -> None:
        assign(self, "format", format)
        assign(self, "detail", {} if detail is None else detail)
        assign(self, "archive", archive)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
            handle: Any = self.archive.fp
            if handle is not None:
                handle.close()


def sniff(path: Path | str) -> Sniffed:
    """Detect the format of ``path``. Raises :class:`LoadError` for anything unrecognized."""
    skip_special_file(path)
    handle = zip_handle = None
    try:
        handle = open_binary(path)
        head = handle.read(64)
        size = handle.seek(0, 2)
        if size and head.startswith(ZIP_MAGICS):
            zip_handle, handle = handle, None  # the archive keeps it: one open per file
    except IsADirectoryError:
        raise LoadError("is a directory") from None
    except OSError as exc:
        raise LoadError(f"cannot open: {exc.strerror or exc}") from None
    finally:
        if handle is not None:
            handle.close()
    if size == 0:
        raise LoadError("empty file (0 bytes)")

    if zip_handle is not None:
        return _sniff_zip(zip_handle)
    if head[:1] == PICKLE_PROTO and head[2:4] == b"\x8a\x0a" and head[4:14] == TORCH_LEGACY_MAGIC:
        return Sniffed("pytorch-legacy")
    if head.startswith(HDF5_MAGIC):
        return Sniffed("keras-h5")
    if head.startswith(LFS_POINTER):
        return Sniffed("git-lfs-pointer")
    if head[4:8] == b"ODTC":  # FlatBuffer file_identifier of onnxruntime-training checkpoints
        return Sniffed("ort-training")
    if _looks_like_safetensors(head, size):
        return Sniffed("safetensors")
    if head[:1] == PICKLE_PROTO and 2 <= head[1] <= 5:
        if is_joblib_pickle(path):  # arrays sit raw in the opcode stream: scanned, not walked
            return Sniffed("pickle-carrier")
        return Sniffed("pickle")
    if _looks_like_saved_model(head):  # before ONNX: both start with field 1 = small varint
        return Sniffed("tf-savedmodel")
    if head.startswith(b"\x93NUMPY"):  # may hold pickled object arrays: scanned, not a model
        return Sniffed("pickle-carrier")
    other = identify(path, head, size)  # named, never "not a model file"
    if other is not None:
        return Sniffed(other[0], {"name": other[1]})
    if _looks_like_onnx(head):
        return Sniffed("onnx")
    if _ends_with_table_magic(path, size):
        return Sniffed("tf-bundle-index")
    if _carries_pickles(head):
        return Sniffed("pickle-carrier")
    raise NotAModel("not a model file: the bytes match no supported format")


#: entries a zip may list before sniffing refuses it (the pickle Limits hold the same default):
#: a 100,000-tensor state dict lists 100,006; zipfile holds 300,000 entries in about 170 MB
MAX_ZIP_ENTRIES = 300_000


def skip_special_file(path: Path) -> None:
    """FIFOs, devices and sockets are never opened: opening a FIFO blocks forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # open() reports it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = (
            "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"
        )
        raise Skip(f"{kind}, not a regular file: skipped without opening it")


def _carries_pickles(head: bytes) -> bool:
    """numpy arrays, protocol 0/1 pickles and archives that cannot be read: security scan only."""
    if head.startswith((b"\x93NUMPY", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")):
        return True
    from .loaders.pickle.carriers import looks_like_pickle

    return looks_like_pickle(head)


@contextmanager
def open_archive(path: Path | str, sniffed: Sniffed) -> Iterator[zipfile.ZipFile]:
    """The zip archive of a sniffed file: the one sniffing opened, else a new one (closed after)."""
    if sniffed.archive is not None:
        yield sniffed.archive
        return
    with open_binary(path) as handle, zipfile.ZipFile(handle) as archive:
        yield archive


def _sniff_zip(handle: BinaryIO) -> Sniffed:
    """The format of the zip archive open on ``handle``; the handle is closed on failure, else
    handed to the archive (closed by :meth:`Sniffed.close`)."""
    try:
        check_zip(handle, MAX_ZIP_ENTRIES)  # before zipfile parses a directory of any size
        handle.seek(0)
        archive = zipfile.ZipFile(handle)
    except LoadError:
        handle.close()
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        handle.close()
        raise LoadError(f"corrupt or truncated zip archive ({str(exc)[:120]})") from None
    try:
        found = _zip_format(archive.namelist())
    except LoadError:
        archive.close()
        handle.close()
        raise
    return Sniffed(found.format, found.detail, archive)


def _zip_format(names: list[str]) -> Sniffed:
    name_set = set(names)
    if {"config.json", "metadata.json"} <= name_set or "model.weights.h5" in name_set:
        return Sniffed("keras")
    # torch archives keep everything under one top-level folder of any name (one pass: linear).
    prefixes: set[str] = set()
    export_prefixes: set[str] = set()
    code_prefixes: set[str] = set()
    for n in names:
        prefix, slash, rest = n.partition("/")
        if not slash:
            continue
        prefixes.add(prefix)
        if rest == "archive_format" or (rest.startswith("models/") and rest.endswith(".json")):
            export_prefixes.add(prefix)
        elif rest.startswith("code/") or rest == "constants.pkl":
            code_prefixes.add(prefix)
    if export_prefixes:
        prefix = min(export_prefixes)
        return Sniffed("torch-export", {"prefix": prefix})
    # torch reads the folder named by the archive's FIRST entry, whatever else the zip holds.
    first = names[0].partition("/")[0] if names and "/" in names[0] else ""
    if first and f"{first}/data.pkl" in name_set:
        if first in code_prefixes:
            return Sniffed("torchscript", {"prefix": first})
        return Sniffed("pytorch", {"prefix": first})
    return Sniffed("pickle-carrier")  # any other zip: its pickles are still scanned


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    # No bound against the file size here: a header length past the end is a truncated or corrupt
    # safetensors file, which the loader reports precisely (the '{' is evidence enough).
    return head[8:9] == b"{" and header_len > 0


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with ir_version (field 1, varint): tag byte 0x08, then a small version.
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 30


def _looks_like_saved_model(head: bytes) -> bool:
    # SavedModel: saved_model_schema_version = 1 (08 01), then meta_graphs (12 <len>) whose
    # MetaGraphDef starts with meta_info_def (0a) or graph_def (12).
    if not head.startswith(b"\x08\x01\x12"):
        return False
    pos = 3
    while pos < len(head) and head[pos] & 0x80:
        pos += 1
    return pos + 1 < len(head) and head[pos + 1] in (0x0A, 0x12)


def _ends_with_table_magic(path: Path, size: int) -> bool:
    # TensorFlow tensor-bundle index (LevelDB table): fixed64 magic in the last 8 bytes.
    try:
        with open_binary(path) as handle:
            handle.seek(max(size - 8, 0))
            return size >= 48 and handle.read(8) == (0xDB4775248B80FB57).to_bytes(8, "little")
    except OSError:
        return False
