"""Model folders: one model stored as several files, recognized from the files present.

One small recognizer per layout, most specific first; each composes the per-file readers and,
for training-run folders, fuses the saved optimizer state with the weights:

* ``trainer``: a transformers ``Trainer`` ``checkpoint-N/`` (weights + ``optimizer.pt`` /
  ``trainer_state.json`` + side files);
* ``accelerate``: an accelerate ``save_state`` folder (``model*.safetensors`` /
  ``pytorch_model*.bin`` + ``optimizer*.bin`` / ``random_states_*.pkl``);
* ``peft``, ``sharded``, ``hf``: weights folders (adapter, shards with an index, config + weights).

A run folder that holds several ``checkpoint-*`` folders is not itself a model: each checkpoint
inside is checked as its own model, so a defect is reported in every checkpoint that shows it.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LoadError
from ...graph import ModelGraph

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Recognizer = tuple[Callable[[Path], str | None], Callable[[Path], set[Path]],
                       Callable[[Path], ModelGraph]]


def recognizers() -> tuple[Recognizer, ...]:
    """(kind function, files function, load function), most specific first. Imported on first
    use: a single checkpoint file that reaches :mod:`.checkpoints` needs none of them."""
    from . import accelerate, trainer, weights

    return (
        (trainer.kind, trainer.files, trainer.load),
        (accelerate.kind, accelerate.files, accelerate.load),
        (weights.folder_kind, weights.model_files, weights.load),
    )


def folder_kind(path: Path) -> str | None:
    """The layout of ``path`` when it is one model stored as a folder, else None."""
    if not path.is_dir():
        return None
    for kind, _, _ in recognizers():
        found = kind(path)
        if found is not None:
            return found
    return None


def model_files(path: Path) -> set[Path]:
    """The files of a model folder that are parts of the model (other files are checked alone)."""
    from . import trainer

    for kind, files, _ in recognizers():
        if kind(path) is not None:
            # a save_model() output folder keeps training_args.bin beside the weights
            return files(path) | trainer.side_files(path)
    return set()


def load_folder(path: Path) -> ModelGraph:
    from . import trainer, weights

    for kind, _, load in recognizers():
        if kind(path) is not None:
            graph = load(path)
            if load is weights.load and trainer.side_files(path):
                trainer.read_companions(graph, path)
            return graph
    from ..torch.deepspeed import tag_folder  # a DeepSpeed run folder: `latest` names the tag

    if tag_folder(path) is not None:
        return weights.load(path)
    checkpoints = sorted(p.name for p in path.glob("checkpoint*") if folder_kind(p))
    if checkpoints:
        raise LoadError(
            f"a training-run folder: check it as a folder to check each of its checkpoints "
            f"({', '.join(checkpoints[:3])}{', ...' if len(checkpoints) > 3 else ''})")
    raise LoadError(
        "a folder that is not a model folder (no weights with optimizer.pt or "
        "trainer_state.json, no accelerate save_state files, no *.index.json, no config.json "
        "beside weights, no adapter_config.json + adapter_model.*)"
    )


__all__ = ["folder_kind", "load_folder", "model_files"]
