"""What a plain state dict proves once its optimizer is read beside it.

A state dict stores parameters and buffers alike, detached, with no module classes and no
``training`` flags. Two facts can still be recovered from the bytes:

* **parameter or buffer**: a float tensor named neither like a parameter (``weight``, ``bias``)
  nor like a buffer (``running_mean``, ``window``) is a parameter when an exactly aligned optimizer
  covers it, and a buffer when every optimizer is exact and none covers it (an analysis window, a
  filterbank, an averaging counter): never a "frozen parameter";
* **BatchNorm left in train mode**: ``num_batches_tracked`` counts the forward passes made in
  train mode. When it equals the optimizer's step count (or the trainer's global step) while the
  block's parameters were never trained, or stopped earlier, the running statistics kept updating
  while the weights were frozen.
"""

from __future__ import annotations

from ...graph import Fact, LayerKind, Mode, ModelGraph, Source, Tensor, TensorRole, Trainable
from ..pickle.tensors import ScalarReader, TensorRef
from .optimizer import max_step


def settle_roles(graph: ModelGraph, undecided: set[str]) -> None:
    """Turn undecided tensors that no exact optimizer covers into buffers."""
    if not undecided or not graph.optimizers or not all(o.exhaustive for o in graph.optimizers):
        return
    tracked = {name for opt in graph.optimizers for name in opt.tracked}
    buffers = sorted(name for name in undecided if name not in tracked and name in graph.tensors)
    for name in buffers:
        graph.tensors[name].role = TensorRole.BUFFER
    if buffers:
        shown = ", ".join(graph.display(n) for n in buffers[:4])
        more = f" and {len(buffers) - 4} more" if len(buffers) > 4 else ""
        graph.notes.append(
            f"{shown}{more}: read as buffers: the optimizer holds every parameter exactly and "
            "never covers them, and their names are no parameter names"
        )


def infer_bn_train_mode(graph: ModelGraph, read_scalar: ScalarReader) -> None:
    """Mark BatchNorm layers whose ``num_batches_tracked`` grew while their block was frozen."""
    references = _reference_counts(graph)
    for layer in graph.layers.values():
        if layer.kind is not LayerKind.BATCHNORM or layer.mode is not Mode.UNKNOWN:
            continue
        name = f"{layer.path}.num_batches_tracked" if layer.path else "num_batches_tracked"
        counter = graph.tensors.get(name)
        if counter is None or not isinstance(counter.origin, TensorRef):
            continue
        if counter.origin.shape not in ((), (1,)):
            continue
        value = read_scalar(counter.origin)
        if value is None or value < 0:
            continue
        layer.attrs["num_batches_tracked"] = int(value)
        if not references or value <= 0:
            continue
        params = _block_parameters(graph, layer.path)
        if not params or not all(_not_trained(graph, p) for p in params):
            continue
        stopped = _stopped_at(graph, params)
        match = next((label for label, count in references if count == value), None)
        if match is None or value <= stopped:
            continue
        frozen = (
            f"its block's parameters stopped at optimizer step {stopped:g}"
            if stopped
            else "its block's parameters were not trained"
        )
        for param in params:
            if param.trainable is Trainable.UNKNOWN:
                # The block ran forward on every step yet got no gradient: frozen, not unused.
                param.trainable = Trainable.FROZEN
                param.trainable_fact = Fact(
                    Source.INFERRED,
                    "never received a gradient although its block ran forward on every training "
                    f"step (num_batches_tracked = {value:g}): frozen before the first step",
                )
        layer.mode = Mode.TRAIN
        layer.mode_fact = Fact(
            Source.INFERRED,
            f"inferred: num_batches_tracked = {value:g} equals {match}, so every training step "
            f"ran it in train mode, while {frozen}",
        )


def _reference_counts(graph: ModelGraph) -> list[tuple[str, float]]:
    """Step counts a BatchNorm counter can be compared with, labelled for the message."""
    counts: list[tuple[str, float]] = []
    for opt in graph.optimizers:
        top = max_step(opt)
        if top:
            counts.append((f"the optimizer's step count ({opt.name})", top))
    global_step = graph.metadata.get("global_step")
    if isinstance(global_step, int) and not isinstance(global_step, bool) and global_step > 0:
        counts.append(("the trainer's global_step", float(global_step)))
    return counts


def _not_trained(graph: ModelGraph, param: Tensor) -> bool:
    """Frozen, or an optimizer member that never received a gradient."""
    if param.trainable is Trainable.FROZEN:
        return True
    entries = [o.tracked[param.name] for o in graph.optimizers if param.name in o.tracked]
    return param.trainable is Trainable.UNKNOWN and bool(entries) and not any(
        e.has_state for e in entries
    )


def _block_parameters(graph: ModelGraph, path: str) -> list[Tensor]:
    own = graph.own_parameters(path)
    if own:
        return own
    for ancestor in graph.ancestors(path):
        params = graph.subtree_parameters(ancestor)
        if params:
            return params
    return []


def _stopped_at(graph: ModelGraph, params: list[Tensor]) -> float:
    """The last optimizer step any of ``params`` took (0 when none was ever stepped)."""
    steps = [
        entry.step
        for opt in graph.optimizers
        for p in params
        if (entry := opt.tracked.get(p.name)) is not None and entry.step is not None
    ]
    return max(steps, default=0.0)
