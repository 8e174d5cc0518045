"""accelerate ``Accelerator.save_state(dir)`` folders.

Files: ``model.safetensors`` (``pytorch_model.bin`` with ``safe_serialization=False``;
``model_1.safetensors``... for further prepared models), ``optimizer.bin`` (``optimizer_1.bin``...),
``scheduler*.bin``, ``random_states_<process>.pkl``, ``scaler.pt``, ``custom_checkpoint_<i>.pkl``
(objects registered with ``register_for_checkpointing``: read safely, kept as parts of the run);
every ``.bin``/``.pkl`` is a ``torch.save`` file. The optimizer is the user's own, so there is no
group convention: its slots are matched over all parameters of the first model by shape (and by
registration order when the weights keep it). No global step is stored: ``random_states`` counts
gradient-accumulation micro-steps, so the optimizer's own step counters are the only clock.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...graph import ModelGraph
from . import weights

MODEL_FILES = ("model.safetensors", "pytorch_model.bin")
OPTIMIZER = re.compile(r"optimizer(_\d+)?\.bin$")
SIDE = re.compile(r"(scheduler(_\d+)?\.bin|random_states_\d+\.pkl|scaler\.pt|sampler(_\d+)?\.bin"
                  r"|dl_state_dict(_\d+)?\.bin|custom_checkpoint_\d+\.pkl)$")


def kind(path: Path) -> str | None:
    if not weights.has_weights(path) or not any(
            (path / n).is_file() for n in (*MODEL_FILES, "model.safetensors.index.json",
                                           "pytorch_model.bin.index.json")):
        return None
    names = [p.name for p in path.iterdir() if p.is_file()]
    if any(OPTIMIZER.match(n) for n in names) or any(
            n.startswith("random_states_") and n.endswith(".pkl") for n in names):
        return "accelerate"
    return None


def _optimizers(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_file() and OPTIMIZER.match(p.name)),
                  key=lambda p: (len(p.name), p.name))


def _side(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and SIDE.match(p.name))


def files(path: Path) -> set[Path]:
    return weights.weights_files(path) | set(_optimizers(path)) | set(_side(path))


def load(path: Path) -> ModelGraph:
    from . import fuse, parts  # the readers load only when a run folder is met

    graph = weights.load(path)
    graph.path = str(path)
    graph.metadata["run_layout"] = "accelerate"
    graph.content = "training-checkpoint"
    others = sorted(p.name for p in path.glob("model_*.safetensors")) + sorted(
        p.name for p in path.glob("pytorch_model_*.bin"))
    if others:
        graph.notes.append(
            f"further prepared models ({', '.join(others)}) are checked as files of their own; "
            "the optimizers are matched to the first model")
    for file in _side(path):
        kind_, _ = parts.read_side_file(graph, file)
        graph.metadata.setdefault("companions", {})[file.name] = kind_  # type: ignore[index]
    ordered = graph.format != "safetensors" and bool(graph.order)
    ambiguous: list[str] = []
    for file in _optimizers(path):
        raws, read_scalar = parts.read_optimizers(graph, file)
        for raw in raws:
            bucket = fuse.Bucket(list(range(len(raw.groups))), [p.name for p in graph.parameters()])
            how = ("matched the user-built optimizer over the model's parameters"
                   + (" in registration order" if ordered else ""))
            opt, unclear = fuse.fuse(graph, raw, read_scalar, [bucket], ordered, how)
            graph.optimizers.append(opt)
            ambiguous.extend(unclear)
            if not opt.aligned:
                graph.notes.append(f"{file.name} not matched to the weights: "
                                   f"{opt.alignment_fact.evidence}")
            elif unclear:
                graph.notes.append(f"{file.name}: {opt.alignment_fact.evidence}")
    fuse.infer_with_ambiguity(graph, ambiguous)
    return graph
