"""Everything that can carry a pickle, walked for its globals: plain pickles (any protocol),
torch archives and legacy files nested as bytes, numpy ``.npy`` object arrays, ``.npz`` and other
zip archives of pickles, archives inside archives (to a depth bound).

These walks exist for the security scan: they record globals in a :class:`GlobalLog` and keep
nothing else. A file that is not a model is still walked.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

from ...errors import LoadError
from ...zipguard import open_zip, read_entry, read_member
from .limits import DEFAULT_LIMITS, Limits
from .stubs import GlobalLog
from .unpickler import RestrictedUnpickler, load_one

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

NUMPY_MAGIC = b"\x93NUMPY"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
RAR_MAGIC = b"Rar!\x1a\x07"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: zip entry names walked as pickles whatever their first bytes
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".dat", ".p")
#: protocol 0/1 pickles start with one of these opcodes (MARK, GLOBAL, EMPTY_LIST/DICT/TUPLE, ...)
PROTO0_STARTS = b"(c]})"


def looks_like_pickle(head: bytes) -> bool:
    """True for the first bytes of a pickle of any protocol (0-5)."""
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return True
    if not head or head[:1] not in [bytes([b]) for b in PROTO0_STARTS]:
        return False
    import pickletools

    # protocol 0/1: the first opcodes must decode (text files fail within a few bytes)
    count = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name == "STOP" or count >= 4:
                return True
    except Exception as exc:  # noqa: BLE001 - not a pickle, or the head ends inside an opcode
        # an unknown opcode means text or garbage; anything else is the head ending mid-argument
        return "unknown" not in str(exc) and count >= 1
    return count >= 2


def walk_pickles(
    stream: IO[bytes], log: GlobalLog, limits: Limits = DEFAULT_LIMITS, depth: int = 0
) -> Any:
    """Walk one pickle, or a torch legacy file's sequence of pickles; returns the first object."""
    unpickler = RestrictedUnpickler(stream, log, limits, depth)
    first = load_one(unpickler)
    if first == _LEGACY_MAGIC:  # legacy torch.save: protocol, sys_info, object, storage keys
        for _ in range(4):
            load_one(unpickler)
    return first


def walk_bytes(data: bytes, log: GlobalLog, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> None:
    """Walk any pickle carrier held in memory. Raises LoadError; ``log`` keeps what was seen."""
    if depth > limits.max_nesting:
        raise LoadError(f"archives or pickles nested more than {limits.max_nesting} levels deep")
    head = data[:16]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        with open_zip(io.BytesIO(data), limits.max_zip_entries) as archive:
            walk_zip(archive, log, limits, depth)
        return
    if head.startswith(NUMPY_MAGIC):
        walk_npy(io.BytesIO(data), log, limits, depth)
        return
    refuse_unreadable_archive(head)
    walk_pickles(io.BytesIO(data), log, limits, depth)


def refuse_unreadable_archive(head: bytes) -> None:
    if head.startswith(SEVEN_ZIP_MAGIC):
        raise LoadError("7-Zip archive: its contents cannot be read, so they were not scanned")
    if head.startswith(RAR_MAGIC):
        raise LoadError("RAR archive: its contents cannot be read, so they were not scanned")


def walk_zip(
    archive: zipfile.ZipFile,
    log: GlobalLog,
    limits: Limits = DEFAULT_LIMITS,
    depth: int = 0,
    skip: zipfile.ZipInfo | None = None,
) -> None:
    """Walk every pickle-bearing entry; the first failure is raised after all were walked."""
    failure: LoadError | None = None
    for info in archive.infolist():
        if info.is_dir() or info is skip:
            continue
        name = info.filename.lower()
        named = name.endswith(PICKLE_SUFFIXES + (".npy", ".npz", ".zip"))
        try:
            if not named:
                # storages of torch archives are raw bytes; anything else is sniffed by its head
                if "/data/" in name or name.startswith("data/") or info.file_size < 2:
                    continue
                head = read_member(archive, info, 16)
                if not (looks_like_pickle(head) or head.startswith((NUMPY_MAGIC, b"PK\x03\x04"))):
                    refuse_unreadable_archive(head)
                    continue
            data = read_entry(archive, info, limits.max_entry_bytes, limits.max_compression_ratio)
            walk_bytes(data, log, limits, depth + 1)
        except LoadError as exc:
            failure = failure or LoadError(f"{info.filename[:80]}: {exc}")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
            failure = failure or LoadError(f"{info.filename[:80]}: unreadable entry ({exc})")
    if failure is not None:
        raise failure


def read_npy_header(stream: IO[bytes]) -> dict[str, Any]:
    magic = stream.read(8)
    if not magic.startswith(NUMPY_MAGIC) or len(magic) < 8:
        raise LoadError("not a numpy .npy file")
    major = magic[6]
    size_bytes = stream.read(2 if major == 1 else 4)
    if len(size_bytes) not in (2, 4):
        raise LoadError("truncated .npy header")
    (size,) = struct.unpack("<H" if len(size_bytes) == 2 else "<I", size_bytes)
    if size > 1 << 20:
        raise LoadError(f".npy header of {size:,} bytes: corrupt or hostile")
    literal = stream.read(size).decode("latin-1")
    header = _literal(literal)
    if header is None and major == 1:
        # Python 2 wrote long integers with an L suffix (a shape of (2L,)); NumPy still reads them
        import re

        header = _literal(re.sub(r"(?<=\d)L(?=[\s,)])", "", literal))
    if header is None:
        raise LoadError(".npy header is not a valid dict literal")
    if not isinstance(header, dict) or "descr" not in header:
        raise LoadError(".npy header has no 'descr'")
    return header


def _literal(text: str) -> Any:
    """The Python literal ``text`` (a .npy header), or None when it is not one."""
    import ast  # the .npy header is a Python literal; only NumPy files need the parser

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def walk_npy(stream: IO[bytes], log: GlobalLog, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> bool:
    """Walk the pickle of an object array; returns whether there was one."""
    header = read_npy_header(stream)
    if "O" not in str(header.get("descr"))[:10_000]:
        return False  # plain numbers: no pickle
    walk_pickles(stream, log, limits, depth + 1)
    return True


def walk_file(path: Path, log: GlobalLog, limits: Limits = DEFAULT_LIMITS) -> str:
    """Walk a file that is not a model of any supported format; returns what it held."""
    with open(path, "rb") as handle:
        head = handle.read(16)
        handle.seek(0)
        refuse_unreadable_archive(head)
        if head.startswith(NUMPY_MAGIC):
            return "numpy object array" if walk_npy(handle, log, limits) else "numpy array"
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            with open_zip(handle, limits.max_zip_entries) as archive:
                walk_zip(archive, log, limits)
            return "zip archive"
        walk_pickles(handle, log, limits)
        return "pickle"
