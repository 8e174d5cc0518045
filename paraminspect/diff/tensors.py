"""Where each tensor's bytes live, per format, and windows onto them.

The loaders say what a file holds (names, shapes, dtypes, trainability); this module adds, for
``diff`` only, where the bytes are: a torch zip member at its data offset, a safetensors data
range, an HDF5 dataset, an ONNX ``raw_data`` field. Contiguous bytes in a plain file are read
through short-lived memory maps of one window each, so memory stays bounded by the window size
however large the tensor is; nothing is unpickled and no framework is imported.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LoadError
from ..graph import ModelGraph
from ..zipguard import member_data_offset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: dtype name (as the loaders spell it) -> numpy dtype of the raw element. Types numpy lacks are
#: read as same-width unsigned integers: exact comparison is on bits, tolerances decode them.
RAW_DTYPES: dict[str, str] = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1", "uint8": "u1", "bool": "u1",
    "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "complex64": "<c8", "complex128": "<c16",
    "float8_e4m3fn": "u1", "float8_e5m2": "u1", "float8_e4m3fnuz": "u1", "float8_e5m2fnuz": "u1",
    "qint8": "i1", "quint8": "u1", "qint32": "<i4",
}
#: elements per window when reading (bytes = this x itemsize); bounds memory per reader
WINDOW_BYTES = 16 << 20

Reader = Callable[[int, int], np.ndarray]
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


@dataclass
class TensorData:
    """One stored tensor: its dtype, shape and a reader of ``count`` elements from ``start``
    (in C order). The array a reader returns may be a view on a memory map: use it, drop it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    read: Reader

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return np.dtype(RAW_DTYPES[self.dtype]).itemsize


def open_tensors(path: Path, graph: ModelGraph) -> dict[str, TensorData]:
    """The readable tensors of ``graph`` (loaded from ``path``), by the graph's tensor names.

    Tensors whose bytes this reader cannot reach (legacy torch files, tensors without storage,
    dtypes numpy cannot hold) are left out; the caller reports them as not compared.
    """
    if path.is_dir():
        return _folder(path, graph)
    fmt = graph.format
    if fmt == "pytorch":
        return _torch_zip(path, graph)
    if fmt == "safetensors":
        return _safetensors(path, graph)
    if fmt in ("keras", "keras-h5"):
        return _hdf5(path, graph)
    if fmt == "onnx":
        return _onnx(path, graph)
    raise LoadError(f"diff cannot read the tensors of {fmt} files yet")


# -- plain files: windows of a byte range -----------------------------------------------------
def _file_reader(path: Path, start: int, dtype: str, numel: int) -> Reader:
    """Elements of a contiguous run of ``numel`` items of ``dtype`` at byte ``start``."""
    raw = np.dtype(RAW_DTYPES[dtype])

    def read(first: int, count: int) -> np.ndarray:
        if first < 0 or count < 0 or first + count > numel:
            raise ValueError("read past the tensor")
        if count == 0:
            return np.empty(0, raw)
        begin = start + first * raw.itemsize
        aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
        length = begin - aligned + count * raw.itemsize
        with open(path, "rb") as handle:
            # MAP_POPULATE maps the whole window in one call instead of one fault per page
            window = mmap.mmap(handle.fileno(), length, flags=_MAP_FLAGS, prot=mmap.PROT_READ,
                               offset=aligned)
        # the array keeps the map alive; the map is released when the caller drops the array
        return np.frombuffer(window, dtype=raw, count=count, offset=begin - aligned)

    return read


def _strided_reader(base: Reader, storage_numel: int, offset: int, shape: tuple[int, ...],
                    stride: tuple[int, ...], dtype: str) -> Reader:
    """A non-contiguous view (a transposed tensor saved as is): rows of the first dimension
    are gathered window by window from the storage."""
    numel = math.prod(shape)
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    raw = np.dtype(RAW_DTYPES[dtype])

    def rows(first_row: int, last_row: int) -> np.ndarray:
        sub_shape = (last_row - first_row, *shape[1:])
        lo = offset + first_row * stride[0]
        span = 1 + sum((n - 1) * s for n, s in zip(sub_shape, stride) if n > 0)
        window = base(lo, min(span, storage_numel - lo))
        view = np.lib.stride_tricks.as_strided(
            window, sub_shape, tuple(s * raw.itemsize for s in stride), writeable=False
        )
        return np.ascontiguousarray(view).reshape(-1)

    def read(first: int, count: int) -> np.ndarray:
        if count == 0:
            return np.empty(0, raw)
        if first + count > numel:
            raise ValueError("read past the tensor")
        if not shape:
            return base(offset, 1)
        r0, r1 = first // row, -(-(first + count) // row)
        flat = rows(r0, r1)
        skip = first - r0 * row
        return flat[skip : skip + count]

    return read


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride)):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


# -- torch zip ------------------------------------------------------------------------------
def _member_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Byte offset of a member's data: after its local header (whose extra field may differ
    from the central directory's)."""
    with open(path, "rb") as handle:
        start = member_data_offset(handle, info)
    if start is None:
        raise LoadError(f"corrupt zip archive: bad local header for {info.filename}")
    return start


def _torch_zip(path: Path, graph: ModelGraph) -> dict[str, TensorData]:
    from ..loaders.pickle.tensors import TensorRef

    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"corrupt zip archive ({exc})") from None
    prefixes = {name.split("/", 1)[0] for name in infos if name.endswith("/data.pkl")}
    out: dict[str, TensorData] = {}
    storages: dict[str, tuple[Reader, int]] = {}
    for name, tensor in graph.tensors.items():
        ref = tensor.origin
        if not isinstance(ref, TensorRef) or ref.storage is None or ref.shape is None:
            continue
        dtype = ref.dtype or ref.storage.dtype
        if dtype not in RAW_DTYPES:
            continue
        key = ref.storage.key
        if key not in storages:
            info = next((infos[f"{p}/data/{key}"] for p in sorted(prefixes)
                         if f"{p}/data/{key}" in infos), None)
            if info is None:
                continue
            itemsize = np.dtype(RAW_DTYPES[dtype]).itemsize
            count = info.file_size // itemsize
            if info.compress_type == zipfile.ZIP_STORED:
                reader = _file_reader(path, _member_offset(path, info), dtype, count)
            else:
                reader = _compressed_reader(path, info.filename, dtype, count)
            storages[key] = (reader, count)
        base, storage_numel = storages[key]
        shape = tuple(ref.shape)
        stride = ref.stride or ()
        numel = math.prod(shape)
        if ref.offset + numel > storage_numel:
            continue
        if not stride or len(stride) != len(shape) or _contiguous(shape, stride):
            out[name] = TensorData(name, dtype, shape, _shifted(base, ref.offset))
        elif any(s < 0 for s in stride) or numel and ref.offset + sum(
                (n - 1) * s for n, s in zip(shape, stride)) >= storage_numel:
            continue  # a view reaching outside its storage: corrupt, never read
        else:
            out[name] = TensorData(
                name, dtype, shape,
                _strided_reader(base, storage_numel, ref.offset, shape, stride, dtype),
            )
    return out


def _shifted(base: Reader, offset: int) -> Reader:
    return lambda first, count: base(offset + first, count)


def _compressed_reader(path: Path, member: str, dtype: str, numel: int) -> Reader:
    """A deflated member (rare for torch files): streamed through zipfile, window by window."""
    raw = np.dtype(RAW_DTYPES[dtype])

    def read(first: int, count: int) -> np.ndarray:
        with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
            handle.seek(first * raw.itemsize)
            data = handle.read(count * raw.itemsize)
        return np.frombuffer(data, dtype=raw, count=count)

    return read


# -- safetensors ----------------------------------------------------------------------------
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16",
    "U32": "uint32", "U64": "uint64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def _safetensors(path: Path, graph: ModelGraph | None = None) -> dict[str, TensorData]:
    # The loader has validated the header (sizes, tiling) before diff calls this.
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    out: dict[str, TensorData] = {}
    for name, entry in header.items():
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            continue
        shape = tuple(entry["shape"])
        begin = 8 + length + entry["data_offsets"][0]
        out[name] = TensorData(name, dtype, shape, _file_reader(path, begin, dtype,
                                                                 math.prod(shape)))
    return out


# -- model folders (sharded safetensors / torch shards) --------------------------------------
def _folder(path: Path, graph: ModelGraph) -> dict[str, TensorData]:
    from ..loaders import load
    from ..loaders.runs import model_files

    out: dict[str, TensorData] = {}
    for file in sorted(model_files(path)):
        if file.suffix == ".json" or not file.is_file():
            continue
        try:
            part = open_tensors(file, load(file))
        except LoadError:
            continue
        for name, data in part.items():
            if name in graph.tensors or graph.stripped_prefix + name in graph.tensors:
                out.setdefault(name, data)
    return out


# -- Keras (.keras zip with model.weights.h5, legacy .h5) -----------------------------------
def _hdf5(path: Path, graph: ModelGraph) -> dict[str, TensorData]:
    import h5py

    out: dict[str, TensorData] = {}
    opener = _h5_opener(path)
    with opener() as handle:
        for name, tensor in graph.tensors.items():
            where = tensor.origin
            if not isinstance(where, str):
                continue
            dataset = handle.get(where)
            if not isinstance(dataset, h5py.Dataset):
                continue
            dtype = str(dataset.dtype)
            if dtype not in RAW_DTYPES:
                continue
            out[name] = TensorData(name, dtype, tuple(dataset.shape),
                                   _h5_reader(opener, where, tuple(dataset.shape), dtype))
    return out


def _h5_opener(path: Path) -> Callable[[], Any]:
    import h5py

    if not zipfile.is_zipfile(path):
        return lambda: h5py.File(path, "r")

    class _Member:
        """model.weights.h5 inside the .keras zip, opened in place (seekable member)."""

        def __enter__(self) -> Any:
            self.archive = zipfile.ZipFile(path)
            self.member = self.archive.open("model.weights.h5")
            self.file = h5py.File(self.member, "r")
            return self.file

        def __exit__(self, *exc: object) -> None:
            self.file.close()
            self.member.close()
            self.archive.close()

    return _Member


def _h5_reader(opener: Callable[[], Any], where: str, shape: tuple[int, ...],
               dtype: str) -> Reader:
    raw = np.dtype(RAW_DTYPES[dtype])

    def read(first: int, count: int) -> np.ndarray:
        with opener() as handle:
            dataset = handle[where]
            if not shape:
                return np.asarray(dataset[()], dtype=raw).reshape(-1)[first : first + count]
            row = math.prod(shape[1:]) if len(shape) > 1 else 1
            r0, r1 = first // row, -(-(first + count) // row)
            block = np.asarray(dataset[r0:r1], dtype=raw).reshape(-1)
        skip = first - r0 * row
        return block[skip : skip + count]

    return read


# -- ONNX ----------------------------------------------------------------------------------
def _onnx(path: Path, graph: ModelGraph) -> dict[str, TensorData]:
    out: dict[str, TensorData] = {}
    for name, tensor in graph.tensors.items():
        info = tensor.origin
        dtype = getattr(info, "dtype", None)
        if dtype not in RAW_DTYPES:
            continue
        shape = tuple(getattr(info, "dims", ()))
        numel = math.prod(shape)
        nbytes = numel * np.dtype(RAW_DTYPES[dtype]).itemsize
        source, offset = path, getattr(info, "raw_offset", None)
        external = getattr(info, "external_data", None) or {}
        if getattr(info, "data_location", 0) == 1 and external.get("location"):
            # the loader has checked that the file stays inside the model's folder and is long
            # enough; offsets are in bytes from the start of that file
            source = path.parent / external["location"]
            try:
                offset = int(external.get("offset", "0") or 0)
                length = int(external.get("length", nbytes) or nbytes)
            except ValueError:
                continue
            if length != nbytes:
                continue
        elif offset is None or nbytes != info.payload_bytes:
            continue
        out[name] = TensorData(name, dtype, shape, _file_reader(source, offset, dtype, numel))
    return out
