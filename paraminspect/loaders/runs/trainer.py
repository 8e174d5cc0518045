"""transformers ``Trainer`` checkpoints: ``checkpoint-<global step>/``.

Files: the weights (``model.safetensors``, ``pytorch_model.bin``, shards, or a PEFT adapter),
``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``, ``scaler.pt``, ``trainer_state.json`` and
``training_args.bin``. ``Trainer.create_optimizer`` builds exactly two groups once, at the start of
``train()``: group 0 = ``named_parameters()`` that take weight decay and had ``requires_grad``,
group 1 = the same without weight decay. Parameters take no weight decay when owned directly by an
``nn.LayerNorm`` or when their lower-cased name matches ``bias``, ``layernorm``, ``rmsnorm``,
``(^|.)norm($|.)`` or ``_norm($|.)``. Replaying that split and matching each group by shape names
the optimizer's slots; a parameter in neither group was frozen when the optimizer was built.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...graph import LayerKind, ModelGraph, Trainable
from . import weights

TYPE_CHECKING = False
if TYPE_CHECKING:  # the readers load only when a run folder is met
    from ..torch.optimizer import RawOptimizer
    from .fuse import Bucket

OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"
SIDE_FILES = ("scheduler.pt", "scaler.pt", "training_args.bin")
RNG_GLOB = "rng_state*.pth"
NO_DECAY = [re.compile(p) for p in
            (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")]


def kind(path: Path) -> str | None:
    if not weights.has_weights(path):
        return None
    if (path / STATE).is_file() or (path / OPTIMIZER).is_file():
        return "trainer"
    return None


def side_files(path: Path) -> set[Path]:
    """Trainer companion files present in ``path`` (also in a ``save_model`` output folder)."""
    found = {path / n for n in (OPTIMIZER, STATE, *SIDE_FILES) if (path / n).is_file()}
    return found | {p for p in path.glob(RNG_GLOB) if p.is_file()}


def files(path: Path) -> set[Path]:
    return weights.weights_files(path) | side_files(path)


def load(path: Path) -> ModelGraph:
    from . import fuse, parts

    graph = weights.load(path)
    graph.path = str(path)
    graph.metadata["run_layout"] = "trainer"
    graph.metadata["weights_folder"] = weights.folder_kind(path) or "single"
    graph.content = "training-checkpoint"
    read_companions(graph, path)
    optimizer = path / OPTIMIZER
    if not optimizer.is_file():
        graph.notes.append(f"no {OPTIMIZER}: trainability cannot be read from the optimizer")
        return graph
    raws, read_scalar = parts.read_optimizers(graph, optimizer)
    ambiguous: list[str] = []
    for raw in raws:
        buckets, how = _buckets(graph, raw)
        opt, unclear = fuse.fuse(graph, raw, read_scalar, buckets, _ordered(graph), how)
        graph.optimizers.append(opt)
        ambiguous.extend(unclear)
        if not opt.aligned:
            graph.notes.append(f"{OPTIMIZER} not matched to the weights: "
                               f"{opt.alignment_fact.evidence}")
        elif unclear:
            graph.notes.append(f"{OPTIMIZER}: {opt.alignment_fact.evidence}")
    fuse.infer_with_ambiguity(graph, ambiguous)
    return graph


def read_companions(graph: ModelGraph, path: Path) -> None:
    """Trainer progress and arguments into ``graph.metadata``; every side pickle read safely."""
    from ..torch.companions import training_args_facts
    from . import parts

    state_file = path / STATE
    if state_file.is_file():
        state = parts.read_json(state_file)
        for key in ("global_step", "max_steps"):
            value = parts.int_field(state, key)
            if value is not None:
                graph.metadata[key] = value
        epoch = state.get("epoch") if isinstance(state, dict) else None
        if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
            graph.metadata["epoch"] = epoch
    for file in sorted(side_files(path) - {state_file, path / OPTIMIZER}):
        kind_, obj = parts.read_side_file(graph, file)
        graph.metadata.setdefault("companions", {})[file.name] = kind_  # type: ignore[index]
        if kind_ == "training-args":
            for key, value in training_args_facts(obj).items():
                graph.metadata[f"args.{key}"] = value


def is_no_decay(graph: ModelGraph, name: str, layernorm_by_name: bool) -> bool:
    """Whether the Trainer puts ``name`` in the no-decay group.

    The type rule (owned by an ``nn.LayerNorm``) needs the layer's class: stored in a module
    pickle; from names only when ``layernorm_by_name`` (an assumption the caller reports).
    """
    if any(p.search(name.lower()) for p in NO_DECAY):
        return True
    layer = graph.layers.get(graph.tensors[name].layer)
    if layer is None or layer.kind is not LayerKind.LAYERNORM:
        return False
    if layer.class_name is not None:
        return layer.class_name.rsplit(".", 1)[-1] == "LayerNorm"
    return layernorm_by_name


def _ordered(graph: ModelGraph) -> bool:
    return graph.format != "safetensors" and bool(graph.order)


def _buckets(graph: ModelGraph, raw: RawOptimizer) -> tuple[list[Bucket], str]:
    from . import fuse

    # Flags stored with the weights describe the end of the run, not the moment the optimizer
    # was built, so every parameter is a candidate.
    candidates = [p.name for p in graph.parameters()]
    if graph.metadata.get("weights_folder") == "peft":
        # PEFT freezes the base model before the Trainer sees it: only adapter weights are listed
        candidates = [p.name for p in graph.parameters() if p.trainable is Trainable.TRAINABLE]
    if len(raw.groups) != 2 or raw.groups[1].get("weight_decay") not in (0, 0.0):
        return [fuse.Bucket(list(range(len(raw.groups))), candidates)], (
            f"a custom optimizer ({len(raw.groups)} groups), matched over all parameters")
    classes = [_split(graph, candidates, by_name) for by_name in (False, True)]
    slots = fuse.read_slots(raw, lambda ref: None)
    fits = []
    for decay, no_decay in classes:
        ok = all(
            not fuse.match_bucket(graph, [s for s, g in zip(slots, raw.key_group) if g == i],
                                  names, _ordered(graph)).failed
            for i, names in enumerate((decay, no_decay)))
        fits.append(ok)
    decay, no_decay = classes[0]
    how = "replayed Trainer.create_optimizer (decay / no-decay split of named_parameters())"
    if not fits[0] and fits[1]:
        decay, no_decay = classes[1]
        how += ", assuming layers named like LayerNorm are nn.LayerNorm"
    elif fits[0] and fits[1] and classes[0] != classes[1]:
        graph.notes.append(
            "the Trainer's decay split depends on which layers are nn.LayerNorm, which these "
            "weights do not store; read by names only")
    return [fuse.Bucket([0], decay), fuse.Bucket([1], no_decay)], how


def _split(graph: ModelGraph, names: list[str], by_name: bool) -> tuple[list[str], list[str]]:
    decay = [n for n in names if not is_no_decay(graph, n, by_name)]
    no_decay = [n for n in names if is_no_decay(graph, n, by_name)]
    return decay, no_decay
