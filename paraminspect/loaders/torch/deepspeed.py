"""DeepSpeed ``save_checkpoint`` tag folders (``global_stepN/``; ``latest`` in the parent names one).

``*model_states.pt`` (a torch zip, walked by the restricted unpickler) holds the module's state
dict and, stored by DeepSpeed itself, what the optimizer owns and what is frozen:

* ``param_shapes``: per optimizer group, the parameter names the optimizer was built with, fixed
  at ``deepspeed.initialize``;
* ``frozen_param_shapes`` (ZeRO >= 2): parameters not optimized at save time (``requires_grad``
  False). A name in both lists was frozen after ``initialize``: the optimizer still steps its
  slice of the flat partition;
* ``buffer_names``, ``shared_params`` (tied aliases), ``global_steps``.

These are stored ground truth, so trainability here is STORED, not inferred. Adam state lives per
flat group, so there are no per-parameter step counters. The optimizer partition file is read
only for its pickle (the optimizer's hyperparameter keys); no tensor bytes are read except the
0-d ``num_batches_tracked`` counters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    TensorRole,
    Trainable,
)
from ...sniff import sniff
from ..pickle.stubs import GlobalLog
from ..pickle.tensors import as_shape
from . import optimizer as torch_optim
from . import state_dict_evidence
from .saved_files import read_zip
from .saved_objects import build_graph, record_code_references

MODEL_STATES = re.compile(r"^(zero_pp_rank_\d+_)?mp_rank_\d+_model_states\.pt$")
OPTIM_STATES = re.compile(r"^(bf16_)?zero_pp_rank_\d+_mp_rank_\d+_optim_states\.pt$")
MAX_LATEST_BYTES = 1024
FORMAT = "deepspeed"

STORED_ONLY_OPTIMIZED = Fact(
    Source.STORED, "DeepSpeed param_shapes: owned by the optimizer, and not in frozen_param_shapes"
)
STORED_FROZEN = Fact(Source.STORED, "DeepSpeed frozen_param_shapes: not optimized at save time")
STORED_TRAINABLE_UNOWNED = Fact(
    Source.STORED,
    "DeepSpeed lists it neither in frozen_param_shapes (so it required grad at save time) nor "
    "in the optimizer's param_shapes",
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
INFERRED_FROZEN = Fact(
    Source.INFERRED,
    "not in the optimizer's param_shapes (ZeRO-1 stores no frozen_param_shapes)",
)


def model_states_files(folder: Path) -> list[Path]:
    return sorted(_files_named(folder, MODEL_STATES))


def checkpoint_files(folder: Path) -> set[Path]:
    """The files of a tag folder that belong to the checkpoint (read together, not alone)."""
    return set(_files_named(folder, MODEL_STATES, OPTIM_STATES))


def _files_named(folder: Path, *patterns: re.Pattern[str]) -> list[Path]:
    """The files of ``folder`` whose name matches a pattern. Names are matched before a Path is
    built or a stat made: every folder scan asks this of folders of thousands of checkpoints."""
    return [
        folder / name for name in os.listdir(folder)
        if any(p.match(name) for p in patterns) and (folder / name).is_file()
    ]


def is_deepspeed_tag_folder(path: Path) -> bool:
    """A ``global_stepN``-style folder holding DeepSpeed ``*model_states.pt`` files."""
    try:
        return bool(model_states_files(path))
    except OSError:
        return False


def tag_folder(path: Path) -> Path | None:
    """The tag folder a run folder's ``latest`` file names, if it exists."""
    latest = path / "latest"
    try:
        if not latest.is_file() or latest.stat().st_size > MAX_LATEST_BYTES:
            return None
        tag = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not tag or "/" in tag or "\\" in tag or tag in (".", ".."):
        return None
    target = path / tag
    return target if target.is_dir() and is_deepspeed_tag_folder(target) else None


def load_deepspeed(folder: Path) -> ModelGraph:
    tag = tag_folder(folder)
    if tag is not None:
        folder = tag
    files = model_states_files(folder)
    if not files:
        raise LoadError("no DeepSpeed *model_states.pt file in the folder")
    states_file = files[0]
    obj, log, read_scalar = _read(states_file)
    graph = build_graph(states_file, FORMAT, obj, log, read_scalar)
    graph.path = str(folder)
    if not isinstance(obj, dict) or "module" not in obj:
        graph.content = "none"  # what the pickle would run is still reported
        graph.notes.insert(0, f"no model found: {states_file.name} holds no 'module' state dict")
        return graph
    graph.framework = "deepspeed"
    graph.content = "checkpoint"
    graph.metadata["folder"] = "deepspeed"
    graph.metadata["model_states_file"] = states_file.name
    for key, meta in (("global_steps", "global_step"), ("skipped_steps", "skipped_steps")):
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            graph.metadata[meta] = value
    if isinstance(obj.get("ds_version"), str):
        graph.framework_version = f"deepspeed {obj['ds_version']}"
    stage = _zero_stage(obj.get("ds_config"))
    if stage is not None:
        graph.metadata["zero_stage"] = stage

    _apply_stored_lists(graph, obj)
    optimizer_type = _optimizer_type(folder, graph, obj)
    _add_optimizer(graph, obj, optimizer_type, stage)
    state_dict_evidence.infer_bn_train_mode(graph, read_scalar)
    return graph


def _read(file: Path) -> tuple[Any, GlobalLog, Any]:
    sniffed = sniff(file)
    if sniffed.format != "pytorch":
        raise LoadError(f"{file.name} is not a torch zip archive ({sniffed.format})")
    try:
        return read_zip(file, sniffed.detail["prefix"])
    except LoadError as exc:
        raise LoadError(f"{file.name}: {exc}") from None


def _zero_stage(config: Any) -> int | None:
    if isinstance(config, dict) and isinstance(config.get("zero_optimization"), dict):
        stage = config["zero_optimization"].get("stage")
        if isinstance(stage, int) and not isinstance(stage, bool):
            return stage
    return None


def _shape_lists(obj: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    groups = obj.get("param_shapes")
    if isinstance(groups, dict):  # very old versions: one mapping
        groups = [groups]
    owned = [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []
    frozen = obj.get("frozen_param_shapes")
    return owned, frozen if isinstance(frozen, dict) else None


def _apply_stored_lists(graph: ModelGraph, obj: dict[str, Any]) -> None:
    owned_groups, frozen = _shape_lists(obj)
    owned = {name: shape for g in owned_groups for name, shape in g.items() if isinstance(name, str)}
    buffers = obj.get("buffer_names")
    buffer_set = {b for b in buffers if isinstance(b, str)} if isinstance(buffers, list) else None
    shared = obj.get("shared_params")
    aliases = {k: v for k, v in shared.items() if isinstance(k, str)} if isinstance(shared, dict) else {}
    if aliases:
        graph.metadata["shared_params"] = dict(aliases)
    for alias, owner in aliases.items():
        if (
            isinstance(owner, str)
            and owner in graph.tensors
            and alias not in graph.tensors
            and alias not in graph.tensors[owner].aliases
        ):
            graph.tensors[owner].aliases.append(alias)
    for tensor in graph.tensors.values():
        name = tensor.name
        if buffer_set is not None:
            stored_buffer = name in buffer_set
            tensor.role = TensorRole.BUFFER if stored_buffer else TensorRole.PARAMETER
        if tensor.role is not TensorRole.PARAMETER:
            continue
        shape = as_shape(owned.get(name)) or as_shape((frozen or {}).get(name))
        if shape is not None:  # ZeRO-3 keeps 0-element placeholders in the module
            tensor.shape = shape
        if name in aliases:
            continue  # an alias follows its owner; the tied-parameter rule reads it
        if frozen is not None and name in frozen:
            tensor.trainable, tensor.trainable_fact = Trainable.FROZEN, STORED_FROZEN
        elif name in owned:
            tensor.trainable, tensor.trainable_fact = Trainable.TRAINABLE, STORED_ONLY_OPTIMIZED
        elif frozen is not None:
            tensor.trainable, tensor.trainable_fact = Trainable.TRAINABLE, STORED_TRAINABLE_UNOWNED
        elif owned:
            tensor.trainable, tensor.trainable_fact = Trainable.FROZEN, INFERRED_FROZEN
    if buffer_set is not None:
        graph.notes.append("parameters and buffers told apart by DeepSpeed's stored buffer_names")


def _optimizer_type(folder: Path, graph: ModelGraph, obj: dict[str, Any]) -> tuple[str | None, Fact]:
    config = obj.get("ds_config")
    if isinstance(config, dict) and isinstance(config.get("optimizer"), dict):
        name = config["optimizer"].get("type")
        if isinstance(name, str):
            return name, Fact(Source.STORED, "ds_config optimizer type")
    optim_files = sorted(_files_named(folder, OPTIM_STATES))
    if not optim_files:
        return None, Fact()
    try:
        state, log, _ = _read(optim_files[0])
    except LoadError as exc:
        graph.notes.append(f"optimizer partition not read: {exc}")
        return None, Fact()
    record_code_references(graph, log)
    inner = state.get("optimizer_state_dict") if isinstance(state, dict) else None
    base = inner.get("base_optimizer_state") if isinstance(inner, dict) else None
    if isinstance(base, dict) and isinstance(base.get("param_groups"), list):
        groups = [g for g in base["param_groups"] if isinstance(g, dict)]
        return torch_optim.guess_type(groups, {})
    return None, Fact()


def _add_optimizer(
    graph: ModelGraph, obj: dict[str, Any], opt_type: tuple[str | None, Fact], stage: int | None
) -> None:
    owned_groups, _ = _shape_lists(obj)
    if not owned_groups:
        return
    label = f"ZeRO-{stage} optimizer" if stage is not None else "optimizer"
    opt = Optimizer(name=label, type=opt_type[0], type_fact=opt_type[1])
    opt.alignment = "names"
    opt.alignment_fact = Fact(Source.STORED, "DeepSpeed stores param_shapes by parameter name")
    stepped = bool(obj.get("global_steps"))
    position = 0
    for index, group in enumerate(owned_groups):
        names = [n for n in group if isinstance(n, str)]
        opt.groups.append(OptimizerGroup(index=index, size=len(names)))
        for name in names:
            opt.tracked[name] = ParamOptState(
                index=position, group=index, has_state=stepped, slots=("flat group state",),
                shape=as_shape(group[name]),
            )
            position += 1
    opt.size = position
    opt.exhaustive = all(name in graph.tensors for name in opt.tracked)
    graph.optimizers.append(opt)
