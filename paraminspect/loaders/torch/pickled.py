"""PyTorch ``torch.save`` files (zip and legacy), read without torch and without running them.

What the pickle holds is interpreted as one of: a state dict (possibly nested under ``model``,
``state_dict``, ...), a whole pickled ``nn.Module``, or a training checkpoint with optimizer state
(plain, or Lightning's ``optimizer_states``).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import LoadError
from ...graph import (
    CodeReference,
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...io import open_binary
from ...kinds import BUFFER_NAMES, classify, infer_kinds_from_names
from ...sniff import Sniffed, open_archive
from ..pickle.unpickler import (
    DTYPE_SIZES,
    GlobalLog,
    RestrictedUnpickler,
    StorageRef,
    Stub,
    TensorRef,
    load_one,
    unpickle,
)
from . import optimizer as torch_optim

#: where checkpoints keep the model, most specific first
MODEL_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "model_state",
    "net",
    "network",
    "module",
    "model_ema",
    "ema",
    "weights",
    "params",
)
#: checkpoint keys copied into graph metadata
META_KEYS = ("epoch", "global_step", "step", "iteration", "iter", "best_score", "best_acc")
FLOAT_DTYPES = frozenset({"float32", "float64", "float16", "bfloat16", "complex64", "complex128"})
#: attributes of torch.nn modules worth keeping for rules and ``show``
MODULE_ATTRS = ("track_running_stats", "momentum", "affine", "eps", "num_features", "p")

ScalarReader = Callable[[TensorRef], "float | None"]


# -- entry points --------------------------------------------------------------------------------
def load_zip(path: Path, sniffed: Sniffed) -> ModelGraph:
    prefix = sniffed.detail["prefix"]
    # One open archive for everything: data.pkl, the storage sizes and every optimizer step
    # counter (a new ZipFile per counter re-reads the whole directory: quadratic in tensors).
    try:
        with open_archive(path, sniffed) as archive:
            data = archive.read(f"{prefix}/data.pkl")
            members = {
                info.filename[len(prefix) + 6 :]: info
                for info in archive.infolist()
                if info.filename.startswith(f"{prefix}/data/")
            }
            sizes = {key: info.file_size for key, info in members.items()}
            log = GlobalLog()
            obj, unpickler = unpickle(data, log)
            del data
            check_storages(unpickler.storages, sizes)

            def read_scalar(ref: TensorRef) -> float | None:
                if ref.storage is None or ref.dtype not in DTYPE_SIZES:
                    return None
                info = members.get(ref.storage.key)
                if info is None:
                    return None
                size = DTYPE_SIZES[ref.dtype]
                try:
                    raw = _read_member_bytes(archive, info, ref.offset * size, size)
                except (KeyError, OSError, zipfile.BadZipFile, ValueError, zlib.error):
                    return None
                return _decode_scalar(raw, ref.dtype)

            return build_graph(path, "pytorch", obj, log, read_scalar)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError, KeyError) as exc:
        raise LoadError(f"corrupt zip archive ({exc})") from None


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
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    handle.seek(info.header_offset + 30 + name_len + extra_len + start)
    return handle.read(size)


def load_legacy(path: Path, sniffed: Sniffed) -> ModelGraph:
    log = GlobalLog()
    try:
        handle = open_binary(path)
    except OSError as exc:
        raise LoadError(f"cannot open: {exc.strerror or exc}") from None
    with handle:
        unpickler = RestrictedUnpickler(handle, log)
        for _ in range(3):  # magic number, protocol version, sys_info
            load_one(unpickler)
        obj = load_one(unpickler)
        keys = load_one(unpickler)
        data_start = handle.tell()
        file_size = handle.seek(0, 2)
    if not isinstance(keys, list):
        raise LoadError("legacy torch file without its storage key list")
    offsets = _legacy_storage_offsets(path, keys, unpickler.storages, data_start, file_size)

    def read_scalar(ref: TensorRef) -> float | None:
        if ref.storage is None or ref.dtype not in DTYPE_SIZES:
            return None
        start = offsets.get(ref.storage.key)
        if start is None:
            return None
        size = DTYPE_SIZES[ref.dtype]
        handle.seek(start + ref.offset * size)
        return _decode_scalar(handle.read(size), ref.dtype)

    with open_binary(path) as handle:  # one handle for every step counter
        return build_graph(path, "pytorch-legacy", obj, log, read_scalar)


def load_plain_pickle(path: Path, sniffed: Sniffed) -> ModelGraph:
    """A bare pickle (``pickle.dump`` of a model or dict): walked the same way, storages absent."""
    log = GlobalLog()
    with open_binary(path) as handle:
        obj, _ = unpickle(handle, log)
    return build_graph(path, "pickle", obj, log, lambda ref: None)


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


def _decode_scalar(raw: bytes, dtype: str | None) -> float | None:
    formats = {"float32": "<f", "float64": "<d", "int64": "<q", "int32": "<i", "float16": "<e"}
    fmt = formats.get(dtype or "")
    if fmt is None or len(raw) != struct.calcsize(fmt):
        return None
    return float(struct.unpack(fmt, raw)[0])


# -- interpretation ------------------------------------------------------------------------------
def is_module(value: Any) -> bool:
    if not isinstance(value, Stub):
        return False
    state = value.state_dict
    return "_parameters" in state and "_modules" in state


def is_state_dict(value: Any) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    tensors = 0
    for key, item in value.items():
        if not isinstance(key, str):
            return False
        if isinstance(item, TensorRef):
            tensors += 1
        elif not key.endswith("_extra_state"):
            return False
    return tensors > 0


def build_graph(
    path: Path, fmt: str, obj: Any, log: GlobalLog, read_scalar: ScalarReader
) -> ModelGraph:
    graph = ModelGraph(path=str(path), format=fmt, framework="pytorch")
    model, model_key, optimizers = _locate(obj, graph)
    if is_module(model):
        _add_module(graph, "", model, set(), {})
        graph.content = graph.content if model_key else "module"
    elif is_state_dict(model):
        _add_state_dict(graph, model)
        graph.content = graph.content if model_key else "state_dict"
    else:
        graph.content = "none"
        graph.notes.append(f"no model found: the file holds {_describe(obj)}")
    if model_key:
        graph.notes.append(f"model read from checkpoint key {model_key!r}")

    for name, value in optimizers:
        raw = torch_optim.parse(name, value)
        graph.optimizers.append(torch_optim.align(raw, graph, read_scalar))
    torch_optim.infer_trainability(graph)
    record_code_references(graph, log)
    graph.order = list(graph.layers)
    return graph


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        return f"a dict with keys {keys}" if obj else "an empty dict"
    if isinstance(obj, Stub):
        return f"a {obj.target()} object"
    return f"a {type(obj).__name__}"


def _locate(obj: Any, graph: ModelGraph) -> tuple[Any, str | None, list[tuple[str, Any]]]:
    """Find the model and the optimizers in whatever was saved."""
    optimizers: list[tuple[str, Any]] = []
    if is_module(obj) or is_state_dict(obj):
        return obj, None, optimizers
    if torch_optim.is_optimizer_object(obj) or torch_optim.is_optimizer_state_dict(obj):
        graph.content = "optimizer"
        return None, None, [("optimizer", obj)]
    if not isinstance(obj, dict):
        return None, None, optimizers

    for key, value in obj.items():
        if torch_optim.is_optimizer_state_dict(value) or torch_optim.is_optimizer_object(value):
            optimizers.append((str(key), value))
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(
                torch_optim.is_optimizer_state_dict(v) or torch_optim.is_optimizer_object(v)
                for v in value
            )
        ):
            optimizers.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
    for key in META_KEYS:
        if isinstance(obj.get(key), (int, float)) and not isinstance(obj.get(key), bool):
            graph.metadata[key] = obj[key]
    if "pytorch-lightning_version" in obj:
        graph.content = "lightning-checkpoint"
        graph.framework_version = f"lightning {obj['pytorch-lightning_version']}"
    else:
        graph.content = "checkpoint"

    candidates = [k for k in MODEL_KEYS if k in obj] + [k for k in obj if k not in MODEL_KEYS]
    for key in candidates:
        value = obj[key]
        if is_module(value) or is_state_dict(value):
            return value, str(key), optimizers
        # one level deeper: {"model": {"state_dict": ...}}
        if isinstance(value, dict) and key in MODEL_KEYS:
            for inner_key in MODEL_KEYS:
                inner = value.get(inner_key)
                if is_module(inner) or is_state_dict(inner):
                    return inner, f"{key}.{inner_key}", optimizers
    if not optimizers:
        graph.content = "none"
    return None, None, optimizers


def _tensor_from_ref(
    graph: ModelGraph, name: str, layer: str, ref: TensorRef, role: TensorRole, role_stored: bool
) -> Tensor:
    tensor = Tensor(name=name, layer=layer, role=role, shape=ref.shape, dtype=ref.dtype)
    tensor.origin = ref  # identity, for optimizers pickled with the model's own tensors
    if role is TensorRole.PARAMETER and role_stored and isinstance(ref.requires_grad, bool):
        tensor.trainable = Trainable.TRAINABLE if ref.requires_grad else Trainable.FROZEN
        tensor.trainable_fact = Fact(Source.STORED, "requires_grad stored with the parameter")
    return graph.add_tensor(tensor)


def _add_state_dict(graph: ModelGraph, state_dict: dict[str, Any]) -> None:
    names = [k for k, v in state_dict.items() if isinstance(v, TensorRef)]
    if names and all(n.startswith("module.") for n in names):
        graph.stripped_prefix = "module."
        graph.notes.append("'module.' prefix of DataParallel/DDP removed from names")
    seen: dict[int, str] = {}
    for key in names:
        ref = state_dict[key]
        name = key[len(graph.stripped_prefix) :]
        if id(ref) in seen:  # tied weights: one tensor, like model.parameters() dedups it
            graph.notes.append(f"{name} is the same tensor as {seen[id(ref)]}")
            continue
        seen[id(ref)] = name
        layer, _, local = name.rpartition(".")
        is_buffer = local in BUFFER_NAMES or (
            ref.dtype is not None and ref.dtype not in FLOAT_DTYPES
        )
        # keep_vars=True state dicts keep Parameters: then the role and requires_grad are stored.
        role = TensorRole.BUFFER if is_buffer and not ref.is_parameter else TensorRole.PARAMETER
        _tensor_from_ref(graph, name, layer, ref, role, role_stored=ref.is_parameter)
    infer_kinds_from_names(graph, "a state dict stores no layer classes")


def _add_module(
    graph: ModelGraph, path: str, module: Stub, seen: set[int], tensors: dict[int, str]
) -> None:
    layer = graph.ensure_layer(path)
    seen.add(id(module))
    state = module.state_dict
    layer.class_name = module.target()
    layer.kind = classify(layer.class_name)
    layer.kind_fact = Fact(Source.STORED, "module class stored in the pickle")
    if layer.kind is LayerKind.OTHER and state.get("_modules"):
        layer.kind = LayerKind.CONTAINER
    training = state.get("training")
    if isinstance(training, bool):
        layer.mode = Mode.TRAIN if training else Mode.EVAL
        layer.mode_fact = Fact(Source.STORED, "module.training stored in the pickle")
    for attr in MODULE_ATTRS:
        value = state.get(attr)
        if isinstance(value, (bool, int, float)) or value is None and attr in state:
            layer.attrs[attr] = value

    for local, ref in _items(state.get("_parameters")):
        if isinstance(ref, TensorRef):
            _add_unique(graph, path, local, ref, TensorRole.PARAMETER, tensors)
    non_persistent = state.get("_non_persistent_buffers_set")
    for local, ref in _items(state.get("_buffers")):
        if isinstance(ref, TensorRef):
            tensor = _add_unique(graph, path, local, ref, TensorRole.BUFFER, tensors)
            if (
                tensor is not None
                and isinstance(non_persistent, (set, frozenset))
                and local in non_persistent
            ):
                layer.attrs.setdefault("non_persistent_buffers", []).append(local)  # type: ignore[union-attr]
    for local, child in _items(state.get("_modules")):
        if not is_module(child):
            continue
        child_path = f"{path}.{local}" if path else str(local)
        if id(child) in seen:
            graph.notes.append(f"{child_path} is the same module object as one seen before")
            continue
        _add_module(graph, child_path, child, seen, tensors)


def _add_unique(
    graph: ModelGraph,
    layer: str,
    local: str,
    ref: TensorRef,
    role: TensorRole,
    seen: dict[int, str],
) -> Tensor | None:
    """Add a tensor once: a tied weight appears once, as in ``model.parameters()``."""
    name = f"{layer}.{local}" if layer else local
    if id(ref) in seen:
        graph.notes.append(f"{name} is the same tensor as {seen[id(ref)]}")
        return None
    seen[id(ref)] = name
    return _tensor_from_ref(graph, name, layer, ref, role, role_stored=True)


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, Stub):  # an OrderedDict subclass pickled by class
        return [(str(k), v) for k, v in value._pi_items.items()]
    return []


def record_code_references(graph: ModelGraph, log: GlobalLog) -> None:
    for target, use in log.uses.items():
        how = "call" if use.calls else "instantiate" if use.instantiations else "reference"
        count = use.calls or use.instantiations or use.references
        graph.code_references.append(CodeReference(target=target, how=how, count=count))
    for name in log.class_sources:
        graph.code_references.append(CodeReference(target=name, how="source"))
