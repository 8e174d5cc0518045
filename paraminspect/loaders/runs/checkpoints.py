"""Single-file training checkpoints whose framework says how the optimizer was built.

The torch reader finds the model and the optimizers in a checkpoint dict; this module recognizes
the framework that wrote the dict and, where it knows how that framework built its optimizer,
names the optimizer's slots before the generic alignment runs:

* Lightning ``.ckpt``: a ``BaseFinetuning`` callback (``BackboneFinetuning``...) stores every
  param group with parameter *names*; groups it appended later (staged unfreezing) start late by
  design, so their lower step counts are not a freeze.
* timm ``CheckpointSaver`` (``arch``, ``state_dict``, ``optimizer``, ``state_dict_ema``):
  ``create_optimizer_v2`` puts ``named_parameters()`` with ``requires_grad`` into a no-weight-decay
  group (1-d tensors, ``.bias``) and a decay group, empty groups dropped. The EMA copy is not the
  trained model.
* ultralytics (``ema``, ``train_args``, ``optimizer``): the saved module is the EMA copy, frozen and
  in eval mode by design; what trained is every float parameter outside ``train_args['freeze']``.
"""

from __future__ import annotations

from ...graph import Fact, Mode, ModelGraph, Source, TensorRole, Trainable
from ..pickle.stubs import Stub
from ..pickle.tensors import ScalarReader
from ..torch import optimizer as torch_optim
from ..torch.optimizer import RawOptimizer
from . import fuse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FINETUNING_KEY = "internal_optimizer_metadata"


def framework(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "pytorch-lightning_version" in obj:
        return "lightning"
    if {"ema", "train_args"} <= set(obj) and "model" in obj:
        return "ultralytics"
    if {"arch", "state_dict", "optimizer"} <= set(obj):
        return "timm"
    return None


def attach_optimizers(
    graph: ModelGraph, obj: Any, optimizers: list[tuple[str, Any]], read_scalar: ScalarReader
) -> bool:
    """Align ``optimizers`` the framework's way. False: not recognized, use the generic path."""
    kind = framework(obj)
    if kind == "lightning":
        return _lightning(graph, obj, optimizers, read_scalar)
    if kind == "timm":
        return _timm(graph, optimizers, read_scalar)
    if kind == "ultralytics":
        return _ultralytics(graph, obj, optimizers, read_scalar)
    return False


# -- Lightning -----------------------------------------------------------------------------------
def _finetuning_state(obj: dict) -> tuple[str, dict] | None:
    callbacks = obj.get("callbacks")
    if not isinstance(callbacks, dict):
        return None
    for key, state in callbacks.items():
        if isinstance(state, dict) and isinstance(state.get(FINETUNING_KEY), dict):
            return str(key).split("{", 1)[0], state[FINETUNING_KEY]
    return None


def _lightning(
    graph: ModelGraph, obj: dict, optimizers: list[tuple[str, Any]], read_scalar: ScalarReader
) -> bool:
    found = _finetuning_state(obj)
    if found is None:
        return False
    callback, metadata = found
    graph.metadata["finetuning_callback"] = callback
    appended: dict[str, int] = {}
    for index, (name, value) in enumerate(optimizers):
        raw = torch_optim.parse(name, value)
        groups = metadata.get(index)
        names = _flat_names(groups)
        if names is not None and len(names) == len(raw.keys) and _same_group_sizes(raw, groups):
            raw.names = [graph_name(graph, n) for n in names]
        opt = torch_optim.align(raw, graph, read_scalar)
        if opt.alignment == "names":
            opt.alignment_fact = Fact(
                Source.STORED, f"{callback} stores the parameter names of every param group")
            appended.update(_late_groups(opt, callback))
        graph.optimizers.append(opt)
    for name, group in appended.items():
        tensor = graph.tensors.get(name)
        if tensor is not None and tensor.trainable is Trainable.UNKNOWN:
            tensor.trainable = Trainable.TRAINABLE
            tensor.trainable_fact = Fact(
                Source.INFERRED,
                f"unfrozen later by {callback} in appended param group {group} (staged "
                "unfreezing starts late by design)")
    torch_optim.infer_trainability(graph)
    return True


def graph_name(graph: ModelGraph, name: str) -> str:
    if name in graph.tensors or not graph.stripped_prefix:
        return name
    return graph.stripped_prefix + name if graph.stripped_prefix + name in graph.tensors else name


def _flat_names(groups: Any) -> list[str] | None:
    if not isinstance(groups, list):
        return None
    names: list[str] = []
    for group in groups:
        params = group.get("params") if isinstance(group, dict) else None
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return None
        names.extend(params)
    return names


def _same_group_sizes(raw: RawOptimizer, groups: list[dict]) -> bool:
    return [len(g.get("params") or []) for g in raw.groups] == [len(g["params"]) for g in groups]


def _late_groups(opt: Any, callback: str) -> dict[str, int]:
    """Names in param groups after the first whose members all share one step count below the
    optimizer's highest: groups the finetuning callback appended when it unfroze them."""
    top = torch_optim.max_step(opt)
    by_group: dict[int, list[tuple[str, Any]]] = {}
    for name, state in opt.tracked.items():
        by_group.setdefault(state.group, []).append((name, state))
    late: dict[str, int] = {}
    for group, entries in by_group.items():
        steps = {s.step for _, s in entries}
        if group >= 1 and len(steps) == 1 and None not in steps and top is not None and (
                steps.pop() < top) and all(s.has_state for _, s in entries):
            late.update({name: group for name, _ in entries})
    return late


# -- timm ----------------------------------------------------------------------------------------
def _timm(graph: ModelGraph, optimizers: list[tuple[str, Any]], read_scalar: ScalarReader) -> bool:
    graph.metadata["framework_layout"] = "timm"
    params = [p.name for p in graph.parameters()]
    no_decay = [n for n in params if _timm_no_decay(graph, n)]
    decay = [n for n in params if not _timm_no_decay(graph, n)]
    ambiguous: list[str] = []
    for name, value in optimizers:
        raw = torch_optim.parse(name, value)
        if any(n is not None for n in raw.names):
            graph.optimizers.append(torch_optim.align(raw, graph, read_scalar))
            continue
        wds = [g.get("weight_decay") for g in raw.groups]
        if len(raw.groups) == 2 and wds[0] in (0, 0.0) and wds[1] not in (0, 0.0):
            buckets = [fuse.Bucket([0], no_decay), fuse.Bucket([1], decay)]
        elif len(raw.groups) == 1:
            buckets = [fuse.Bucket([0], decay if wds[0] not in (0, 0.0) and not no_decay
                                   else params)]
        else:
            buckets = [fuse.Bucket(list(range(len(raw.groups))), params)]
        opt, unclear = fuse.fuse(graph, raw, read_scalar, buckets, True,
                                 "replayed timm create_optimizer_v2 (no-decay group, then decay)")
        graph.optimizers.append(opt)
        ambiguous.extend(unclear)
    fuse.infer_with_ambiguity(graph, ambiguous)
    return True


def _timm_no_decay(graph: ModelGraph, name: str) -> bool:
    shape = graph.tensors[name].shape
    return name.endswith(".bias") or (shape is not None and len(shape) <= 1)


# -- ultralytics ---------------------------------------------------------------------------------
def _ultralytics(
    graph: ModelGraph, obj: dict, optimizers: list[tuple[str, Any]], read_scalar: ScalarReader
) -> bool:
    graph.metadata["framework_layout"] = "ultralytics"
    args = obj.get("train_args")
    args = args.state_dict if isinstance(args, Stub) else args
    freeze = args.get("freeze") if isinstance(args, dict) else None
    prefixes = _freeze_prefixes(freeze)
    graph.metadata["freeze"] = freeze if isinstance(freeze, (int, list)) else None
    # The saved module is the EMA copy: requires_grad False and eval() by design, not the run's.
    for layer in graph.layers.values():
        if layer.mode is not Mode.UNKNOWN:
            layer.mode, layer.mode_fact = Mode.UNKNOWN, Fact(
                Source.UNKNOWN, "the saved module is the EMA copy, kept in eval mode by design")
    for tensor in graph.parameters():
        if ".dfl." in f".{tensor.name}":
            # DFL's 1x1 conv holds the fixed bin indices 0..reg_max-1: a constant, never trained
            tensor.role = TensorRole.BUFFER
            continue
        # the trainer's own test: a substring match on the full parameter name
        frozen = any(p in tensor.name for p in prefixes)
        tensor.trainable = Trainable.FROZEN if frozen else Trainable.TRAINABLE
        tensor.trainable_fact = Fact(
            Source.INFERRED,
            "in train_args['freeze']" if frozen else
            "ultralytics trains every parameter outside train_args['freeze']; the saved EMA "
            "copy's own flags are off by design")
    for name, value in optimizers:
        opt = torch_optim.align(torch_optim.parse(name, value), graph, read_scalar)
        opt.tracked, opt.exhaustive, opt.alignment = {}, False, "unaligned"
        opt.alignment_fact = Fact(
            Source.UNKNOWN, "ultralytics lists frozen parameters in its optimizer too (they never "
            "get state); trainability comes from train_args['freeze']")
        graph.optimizers.append(opt)
    return True


def _freeze_prefixes(freeze: Any) -> list[str]:
    if isinstance(freeze, int) and not isinstance(freeze, bool):
        return [f"model.{i}." for i in range(freeze)]
    if isinstance(freeze, list):
        return [f"model.{x}." for x in freeze if isinstance(x, (int, str))]
    return []
