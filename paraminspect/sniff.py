"""Tell a file's format from its bytes, never from its name.

Sniffing reads at most a small header and, for zip files, the central directory. It decides which
loader gets the file; it does not parse the model.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LoadError
from .io import open_binary

PICKLE_PROTO = b"\x80"
#: torch's legacy (non-zip) files start with a pickled magic number: PROTO n, LONG1 10 bytes, magic.
TORCH_LEGACY_MAGIC = bytes.fromhex("6cfc9c46f9206aa85019")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


@dataclass(frozen=True)
class Sniffed:
    """The detected format plus what the sniffer learned on the way (e.g. the zip prefix)."""

    format: str
    detail: dict[str, str] = field(default_factory=dict)
    #: for zip formats, the archive sniffing opened (directory read once); loaders reuse it and
    #: :func:`paraminspect.loaders.load` closes it
    archive: zipfile.ZipFile | None = field(default=None, compare=False, repr=False)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
            handle: Any = self.archive.fp
            if handle is not None:
                handle.close()


def sniff(path: Path | str) -> Sniffed:
    """Detect the format of ``path``. Raises :class:`LoadError` for anything unrecognized."""
    try:
        with open_binary(path) as handle:
            head = handle.read(64)
            size = handle.seek(0, 2)
    except IsADirectoryError:
        raise LoadError("is a directory") from None
    except OSError as exc:
        raise LoadError(f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise LoadError("empty file (0 bytes)")

    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(path)
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
        return Sniffed("pickle")
    if _looks_like_onnx(head):
        return Sniffed("onnx")
    raise LoadError("not a model file: the bytes match no supported format")


@contextmanager
def open_archive(path: Path | str, sniffed: Sniffed) -> Iterator[zipfile.ZipFile]:
    """The zip archive of a sniffed file: the one sniffing opened, else a new one (closed after)."""
    if sniffed.archive is not None:
        yield sniffed.archive
        return
    with open_binary(path) as handle, zipfile.ZipFile(handle) as archive:
        yield archive


def _sniff_zip(path: Path | str) -> Sniffed:
    handle = open_binary(path)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        handle.close()
        raise LoadError(f"corrupt or truncated zip archive ({exc})") from None
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
    # torch archives keep everything under one top-level folder of any name.
    prefixes = {n.split("/", 1)[0] for n in names if "/" in n}
    for prefix in sorted(prefixes):
        if f"{prefix}/archive_format" in name_set or any(
            n.startswith(f"{prefix}/models/") and n.endswith(".json") for n in names
        ):
            return Sniffed("torch-export", {"prefix": prefix})
    for prefix in sorted(prefixes):
        if f"{prefix}/data.pkl" in name_set:
            if f"{prefix}/constants.pkl" in name_set or any(
                n.startswith(f"{prefix}/code/") for n in names
            ):
                return Sniffed("torchscript", {"prefix": prefix})
            return Sniffed("pytorch", {"prefix": prefix})
    raise LoadError("zip archive that is not a PyTorch, TorchScript, torch.export or Keras file")


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

