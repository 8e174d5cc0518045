"""Formats paraminspect does not read, named from their bytes so they are never silently skipped
and never called corrupt; and companion files (tokenizers, configs, weight blobs of another
file's model) that sit beside models but are not models themselves.

Every check reads a bounded header (at most :data:`PEEK` bytes) and, for two layouts, one small
sibling file. Nothing here parses a model.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

#: the most bytes any check here reads from one file
PEEK = 1024
#: an ultralytics TensorRT engine starts with its JSON metadata; longer prefixes are not believed
MAX_TRT_METADATA = 1 << 20

UNSUPPORTED = "unsupported"
COMPANION = "companion"

#: file names that accompany a model and hold no weights of their own
COMPANION_NAMES = {
    "config.json": "model configuration",
    "generation_config.json": "generation configuration",
    "preprocessor_config.json": "preprocessor configuration",
    "tokenizer.json": "tokenizer",
    "tokenizer_config.json": "tokenizer configuration",
    "special_tokens_map.json": "tokenizer configuration",
    "added_tokens.json": "tokenizer vocabulary",
    "vocab.json": "tokenizer vocabulary",
    "vocab.txt": "tokenizer vocabulary",
    "merges.txt": "tokenizer merges",
    "tokenizer.model": "SentencePiece tokenizer",
    "spiece.model": "SentencePiece tokenizer",
    "sentencepiece.bpe.model": "SentencePiece tokenizer",
    "trainer_state.json": "trainer state",
    "manifest.json": "package manifest",
    "latest": "checkpoint tag",
    "zero_to_fp32.py": "checkpoint conversion script",
}

_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF", "zlib, joblib < 0.10"),
)
_JOBLIB_SUFFIXES = (".joblib", ".jl", ".jbl")
_COREML_WEIGHT_BLOB = struct.pack("<I", 0xDEADBEEF)


def identify(path: Path, head: bytes, size: int) -> tuple[str, str] | None:
    """``(UNSUPPORTED | COMPANION, name)`` for a file whose bytes match no supported format.

    A remote file (a URL string) is judged by its name and first bytes only: the checks that
    look at neighbouring files or further bytes apply to local files."""
    local = isinstance(path, Path)
    name = (path.name if local else str(path).rstrip("/").rsplit("/", 1)[-1]).lower()
    if head[4:8] == b"TFL3":
        return UNSUPPORTED, "TFLite"
    if head.startswith(b"GGUF"):
        return UNSUPPORTED, "GGUF"
    if head.startswith((b"ggjt", b"ggml", b"ggmf", b"tjgg", b"lmgg", b"fmgg")):
        return UNSUPPORTED, "GGML"
    if head.startswith((b"ftrt", b"ptrt")) or (local and _ultralytics_engine(path, head, size)):
        return UNSUPPORTED, "TensorRT engine"
    if head.startswith(b"\x93NUMPY"):
        return UNSUPPORTED, "NumPy .npy array"
    if name.endswith(".mlmodel") and head[:1] == b"\x08":
        return UNSUPPORTED, "Core ML model"
    if name.endswith((".pdmodel", ".pdiparams")) or name == "__model__":
        return UNSUPPORTED, "PaddlePaddle"
    if local and name.endswith(".bin") and _coreml_weights(path, size):
        return COMPANION, "Core ML package weights"
    if name in COMPANION_NAMES:
        return COMPANION, COMPANION_NAMES[name]
    if local and head.lstrip()[:1] == b"<" and _openvino_xml(path):
        return UNSUPPORTED, "OpenVINO IR"
    if local and name.endswith(".bin") and _openvino_xml(path.with_suffix(".xml")):
        return COMPANION, "OpenVINO IR weights"
    if name.endswith(_JOBLIB_SUFFIXES) and _compressed(head):
        return UNSUPPORTED, f"joblib ({_compressed(head)}-compressed)"
    if name.endswith(_JOBLIB_SUFFIXES) and head[:1] == b"\x78" and head[1:2] in b"\x01\x5e\x9c\xda":
        return UNSUPPORTED, "joblib (zlib-compressed)"
    return None


def is_joblib_pickle(path: Path) -> bool:
    """A pickle written by joblib: numpy arrays sit raw inside its opcode stream."""
    return b"joblib.numpy_pickle" in _peek(path, 4096)


def identify_zip(names: list[str]) -> str | None:
    """The name of an unsupported zip-based format, from the member names."""
    if names and all(n.endswith(".npy") for n in names):
        return "NumPy .npz archive"
    return None


def identify_folder(path: Path) -> str | None:
    """The name of an unsupported format stored as a folder (a Core ML package)."""
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        return None
    try:
        with open(manifest, "rb") as handle:
            data = json.loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "itemInfoEntries" in data and "rootModelIdentifier" in data:
        return "Core ML package"
    return None


def _peek(path: Path, count: int = PEEK) -> bytes:
    try:
        if not isinstance(path, Path) or not path.is_file():  # a URL: no second read
            return b""
        with open(path, "rb") as handle:
            return handle.read(count)
    except OSError:
        return b""


def _openvino_xml(path: Path) -> bool:
    if not path.name.lower().endswith(".xml"):
        return False
    text = _peek(path)
    return b"<net " in text and b"version=" in text


def _ultralytics_engine(path: Path, head: bytes, size: int) -> bool:
    # int32 LE length, then that many bytes of JSON metadata, then the TensorRT magic
    if len(head) < 8 or head[4:5] != b"{":
        return False
    (length,) = struct.unpack("<I", head[:4])
    if length > MAX_TRT_METADATA or 4 + length + 4 > size:
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(4 + length)
            return handle.read(4) in (b"ftrt", b"ptrt")
    except OSError:
        return False


def _coreml_weights(path: Path, size: int) -> bool:
    # Core ML weight.bin: a 64-byte header (uint32 blob count, uint32 version 2), then blobs whose
    # metadata starts with the sentinel 0xDEADBEEF.
    if size < 68:
        return False
    head = _peek(path, 68)
    return head[4:8] == struct.pack("<I", 2) and head[64:68] == _COREML_WEIGHT_BLOB


def _compressed(head: bytes) -> str | None:
    for magic, label in _COMPRESSED:
        if head.startswith(magic):
            return label
    return None
