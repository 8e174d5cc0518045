"""``torch.distributed.checkpoint`` folders (``.metadata`` + ``__<rank>_<k>.distcp``), FSDP2 included.

``.metadata`` is a pickle of the checkpoint's ``Metadata``: for every flattened key its size and
dtype, and where its bytes sit (``relative_path``, ``offset``, ``length``). It is walked by the
restricted unpickler. Keys are flattened paths under the caller's top-level keys
(``model.<fqn>``, ``optim.state.<fqn>.<slot>``, ``optim.param_groups.<g>.<hyper>``), and the
optimizer names parameters by their fully qualified names, so coverage is read by name, exactly.

Only a few small items are read from the ``.distcp`` files: each is a ``torch.save`` archive of
its own (the 0-d Adam ``step`` counters, each group's ``params`` list, ``weight_decay``). No
weight bytes are read. DCP stores no ``requires_grad``, no module classes, no train/eval flags:
trainability is inferred from the optimizer alone.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    Tensor,
    TensorRole,
)
from ...kinds import infer_kinds_from_names, is_buffer_name, is_parameter_name
from ..pickle.stubs import GlobalLog, Stub
from ..pickle.tensors import DTYPE_SIZES, TensorRef, as_shape, dtype_name
from ..pickle.unpickler import unpickle
from . import optimizer as torch_optim
from .saved_files import decode_scalar
from .saved_objects import FLOAT_DTYPES, record_code_references

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

METADATA = ".metadata"
MAX_METADATA_BYTES = 256 * 1024 * 1024
#: the largest item read from a .distcp file (a step counter, a group's params list)
MAX_ITEM_BYTES = 16 * 1024 * 1024
MAX_GROUPS = 4096
#: group hyperparameters worth reading (one small archive each)
READ_HYPERS = ("lr", "weight_decay", "decoupled_weight_decay")
FORMAT = "pytorch-dcp"


def is_dcp_folder(path: Path) -> bool:
    """A folder written by ``torch.distributed.checkpoint.save``."""
    return (path / METADATA).is_file() and any(
        p.is_file() for p in path.glob("*.distcp")
    )


class _Items:
    """Reads small items of the checkpoint by their flattened key, bounded, never weights."""

    def __init__(self, folder: Path, storage: dict[str, dict[str, Any]]) -> None:
        self.folder = folder
        self.storage = storage

    def load(self, key: str) -> tuple[Any, bytes | None, zipfile.ZipFile | None]:
        info = self.storage.get(key)
        if info is None:
            return None, None, None
        name, offset, length = info.get("relative_path"), info.get("offset"), info.get("length")
        if (
            not isinstance(name, str)
            or not isinstance(offset, int)
            or not isinstance(length, int)
            or "/" in name
            or "\\" in name
            or name in ("", ".", "..")
            or offset < 0
            or not 0 < length <= MAX_ITEM_BYTES
        ):
            return None, None, None
        file = self.folder / name
        if not file.is_file():
            raise LoadError(f"{name}, named by .metadata for {key}, is missing")
        with open(file, "rb") as handle:
            handle.seek(offset)
            blob = handle.read(length)
        if len(blob) != length:
            raise LoadError(f"{name} is truncated: {key} lies past its end")
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            obj, _ = unpickle(archive.read(pkl), GlobalLog())
        except (StopIteration, zipfile.BadZipFile, OSError, zlib.error, LoadError, KeyError):
            return None, None, None
        return obj, pkl[: -len("data.pkl")].encode(), archive

    def value(self, key: str) -> Any:
        obj, _, _ = self.load(key)
        return obj

    def scalar(self, key: str) -> float | None:
        obj, prefix, archive = self.load(key)
        if not isinstance(obj, TensorRef) or obj.storage is None or archive is None:
            return None
        if obj.dtype not in DTYPE_SIZES or obj.shape not in ((), (1,)):
            return None
        size = DTYPE_SIZES[obj.dtype]
        try:
            raw = archive.read(f"{prefix.decode()}data/{obj.storage.key}")  # type: ignore[union-attr]
        except KeyError:
            return None
        return decode_scalar(raw[obj.offset * size : (obj.offset + 1) * size], obj.dtype)


def load_dcp(folder: Path) -> ModelGraph:
    meta_file = folder / METADATA
    if meta_file.stat().st_size > MAX_METADATA_BYTES:
        raise LoadError(".metadata is larger than any checkpoint index should be")
    log = GlobalLog()
    meta, _ = unpickle(meta_file.read_bytes(), log)
    state = meta.state_dict if isinstance(meta, Stub) else {}
    entries = state.get("state_dict_metadata")
    if not isinstance(entries, dict) or not entries:
        # Readable but not a checkpoint index: report what the pickle would run, and no model.
        graph = ModelGraph(path=str(folder), format=FORMAT, content="none", framework="pytorch")
        graph.notes.append(
            "no model found: .metadata holds no state_dict_metadata (not a DCP checkpoint index)"
        )
        record_code_references(graph, log)
        return graph
    planner = state.get("planner_data") if isinstance(state.get("planner_data"), dict) else {}
    items = _Items(folder, _storage_map(state.get("storage_data")))

    graph = ModelGraph(path=str(folder), format=FORMAT, content="checkpoint", framework="pytorch")
    graph.ensure_layer("")
    version = state.get("version")
    if isinstance(version, str):
        graph.metadata["dcp_version"] = version
    graph.metadata["folder"] = "dcp"
    graph.metadata["dcp_files"] = len(list(folder.glob("*.distcp")))

    paths = {key: _path_of(key, planner) for key in entries if isinstance(key, str)}
    optim_roots = sorted(
        {p[: p.index("param_groups")] for p in paths.values() if _is_group_key(p)}
    )
    in_optim = {
        key
        for key, p in paths.items()
        if any(p[: len(r)] == r and len(p) > len(r) for r in optim_roots)
    }
    model_keys = [k for k in paths if k not in in_optim and isinstance(paths[k][-1], str)]
    model_root = _model_root([paths[k] for k in model_keys])
    optimizers = [_read_optimizer(r, paths, entries, items) for r in optim_roots]

    covered = {fqn for _, groups, _ in optimizers for g in groups for fqn in g["params"]}
    for key in model_keys:
        path = paths[key]
        if path[:-1] != model_root:
            continue
        entry = entries[key]
        if not isinstance(entry, Stub) or not entry.target().endswith("TensorStorageMetadata"):
            continue
        name = str(path[-1])
        shape, dtype = _shape_dtype(entry)
        layer, _, local = name.rpartition(".")
        if name in covered:
            role = TensorRole.PARAMETER
        elif is_buffer_name(local) or (dtype is not None and dtype not in FLOAT_DTYPES):
            role = TensorRole.BUFFER
        elif is_parameter_name(local) or not optimizers:
            role = TensorRole.PARAMETER
        else:  # named like neither and not in the optimizer that lists every member by name
            role = TensorRole.BUFFER
        graph.add_tensor(Tensor(name=name, layer=layer, role=role, shape=shape, dtype=dtype))
    if not graph.tensors:
        graph.content = "optimizer" if optimizers else "none"
        graph.notes.append("no model tensors found in the checkpoint")
    elif model_root:
        graph.notes.append(f"model read from checkpoint key {'.'.join(map(str, model_root))!r}")
    infer_kinds_from_names(graph, "a distributed checkpoint stores no layer classes")

    for root, groups, states in optimizers:
        label = ".".join(map(str, root))
        graph.optimizers.append(_align(graph, label, groups, states, entries, items))
    torch_optim.infer_trainability(graph)
    record_code_references(graph, log)
    graph.order = list(graph.layers)
    return graph


def _storage_map(storage_data: Any) -> dict[str, dict[str, Any]]:
    """flattened key -> {relative_path, offset, length} for single-chunk items."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(storage_data, dict):
        return out
    for index, info in storage_data.items():
        if not isinstance(index, Stub) or not isinstance(info, Stub):
            continue
        fqn = index.state_dict.get("fqn")
        if isinstance(fqn, str) and index.state_dict.get("index") in (None, 0):
            out.setdefault(fqn, info.state_dict)
    return out


def _path_of(key: str, planner: dict[Any, Any]) -> tuple[Any, ...]:
    path = planner.get(key)
    if isinstance(path, tuple) and path and all(isinstance(p, (str, int)) for p in path):
        return path
    # No planner data: assume the usual {"model": ..., "optim": ...} layout.
    head, _, rest = key.partition(".")
    if head in ("optim", "optimizer"):
        kind, _, tail = rest.partition(".")
        if kind == "param_groups":
            group, _, hyper = tail.partition(".")
            return (head, kind, int(group) if group.isdigit() else group, hyper)
        if kind == "state":
            fqn, _, slot = tail.rpartition(".")
            return (head, kind, fqn, slot)
    return (head, rest) if rest else (key,)


def _is_group_key(path: tuple[Any, ...]) -> bool:
    if "param_groups" not in path:
        return False
    i = path.index("param_groups")
    return len(path) == i + 3 and isinstance(path[i + 1], int)


def _model_root(paths: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The top-level key holding most model tensors (``("model",)`` usually)."""
    counts: dict[tuple[Any, ...], int] = {}
    for p in paths:
        counts[p[:-1]] = counts.get(p[:-1], 0) + 1
    return max(counts, key=lambda r: (counts[r], r == ("model",))) if counts else ()


def _shape_dtype(entry: Stub) -> tuple[tuple[int, ...] | None, str | None]:
    state = entry.state_dict
    shape = as_shape(state.get("size"))
    props = state.get("properties")
    props_state = props._pi_state if isinstance(props, Stub) else None
    dtype = None
    if isinstance(props_state, tuple) and props_state:
        dtype = dtype_name(props_state[0])
    elif isinstance(props_state, dict):
        dtype = dtype_name(props_state.get("dtype"))
    return shape, dtype


def _read_optimizer(
    root: tuple[Any, ...],
    paths: dict[str, tuple[Any, ...]],
    entries: dict[str, Any],
    items: _Items,
) -> tuple[tuple[Any, ...], list[dict[str, Any]], dict[str, dict[str, str]]]:
    n = len(root)
    group_keys: dict[int, dict[str, str]] = {}
    states: dict[str, dict[str, str]] = {}
    for key, path in paths.items():
        if path[:n] != root or len(path) != n + 3:
            continue
        if path[n] == "param_groups" and isinstance(path[n + 1], int):
            group_keys.setdefault(path[n + 1], {})[str(path[n + 2])] = key
        elif path[n] == "state":
            states.setdefault(str(path[n + 1]), {})[str(path[n + 2])] = key
    groups: list[dict[str, Any]] = []
    for index in sorted(group_keys)[:MAX_GROUPS]:
        keys = group_keys[index]
        group: dict[str, Any] = {hyper: True for hyper in keys if hyper != "params"}
        for hyper in READ_HYPERS:
            if hyper in keys:
                group[hyper] = items.value(keys[hyper])
        params = items.value(keys["params"]) if "params" in keys else None
        group["params"] = (
            [p for p in params if isinstance(p, str)] if isinstance(params, list) else []
        )
        group["_params_read"] = isinstance(params, list)
        groups.append(group)
    return root, groups, states


def _align(
    graph: ModelGraph,
    name: str,
    groups: list[dict[str, Any]],
    states: dict[str, dict[str, str]],
    entries: dict[str, Any],
    items: _Items,
) -> Optimizer:
    """Record the optimizer by name: ``params`` = members, ``state.<fqn>.*`` = stepped ones."""
    opt_type, type_fact = torch_optim.guess_type(
        [{k: v for k, v in g.items() if not k.startswith("_")} for g in groups], {}
    )
    opt = Optimizer(name=name, type=opt_type, type_fact=type_fact)
    for g_index, g in enumerate(groups):
        lr, wd = g.get("lr"), g.get("weight_decay")
        opt.groups.append(
            OptimizerGroup(
                index=g_index,
                lr=_number(lr),
                weight_decay=_number(wd),
                size=len(g["params"]),
            )
        )
    members = [(g_index, fqn) for g_index, g in enumerate(groups) for fqn in g["params"]]
    exact = bool(groups) and all(g["_params_read"] for g in groups)
    if not exact:  # params lists unreadable: the stepped parameters are still named
        members = [(0, fqn) for fqn in states]
    opt.size = len(members)
    names = set(graph.tensors)
    if not members or not all(fqn in names for _, fqn in members):
        opt.alignment_fact = Fact(
            Source.UNKNOWN,
            "the optimizer names parameters the checkpoint's model does not hold",
        )
        return opt
    opt.alignment = "names"
    opt.alignment_fact = Fact(
        Source.STORED, "the distributed checkpoint stores optimizer state under parameter names"
    )
    opt.exhaustive = exact
    for position, (g_index, fqn) in enumerate(members):
        slots = states.get(fqn, {})
        step_key = slots.get("step")
        step = items.scalar(step_key) if step_key else None
        shape = None
        for slot in torch_optim.FULL_SHAPE_SLOTS:
            if slot in slots and isinstance(entries.get(slots[slot]), Stub):
                shape = _shape_dtype(entries[slots[slot]])[0]
                break
        opt.tracked[fqn] = ParamOptState(
            index=position,
            group=g_index,
            has_state=bool(slots),
            slots=tuple(s for s in slots if s != "step"),
            step=step,
            shape=shape,
        )
    return opt


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
