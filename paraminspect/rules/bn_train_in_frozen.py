"""PI201 bn-train-in-frozen: BatchNorm in train mode inside a frozen block keeps updating stats."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Layer, LayerKind, Mode, ModelGraph, Tensor, Trainable, subtree_state
from ._text import provenance
from .base import Issue, Rule

RUNNING_STATS = ("running_mean", "running_var", "moving_mean", "moving_variance")


class BnTrainInFrozen(Rule):
    code = "PI201"
    name = "bn-train-in-frozen"
    severity = Severity.WARNING
    fix = (
        "Put frozen BatchNorm layers in eval mode after every model.train() call (e.g. override "
        "train() to call backbone.eval()), or replace them with FrozenBatchNorm2d."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for layer in graph.layers.values():
            if layer.mode is not Mode.TRAIN or not _tracks_running_stats(graph, layer):
                continue
            block, params = _frozen_block(graph, layer)
            if block is None:
                continue
            where = "a frozen block" if block != layer.path else "a frozen layer"
            if not block:
                where = "a fully frozen model"
            cls = (layer.class_name or "BatchNorm").rsplit(".", 1)[-1]
            yield Issue(
                location=layer.path,
                message=(
                    f"{cls} is in train mode inside {where}. Every forward pass still updates "
                    "its running statistics although its weights are frozen, so the frozen "
                    "features drift away from what the rest of the model learned."
                ),
                paths=(layer.path,),
                evidence=(
                    f"mode: {layer.mode_fact.evidence or 'stored'}; frozen: {provenance(params)}"
                    + (f" (frozen block {block})" if block and block != layer.path else "")
                ),
            )


def _tracks_running_stats(graph: ModelGraph, layer: Layer) -> bool:
    if layer.kind not in (LayerKind.BATCHNORM, LayerKind.INSTANCENORM):
        return False
    if layer.attrs.get("track_running_stats") is False:
        return False
    local = {graph.tensors[name].local_name for name in layer.tensors}
    return (
        any(stat in local for stat in RUNNING_STATS)
        or layer.attrs.get("track_running_stats") is True
    )


def _frozen_block(graph: ModelGraph, layer: Layer) -> tuple[str | None, list[Tensor]]:
    """The block whose parameters are all (known) frozen: the layer itself if it has affine
    parameters, else its nearest enclosing block that has any."""
    own = graph.own_parameters(layer.path)
    if own:
        return (layer.path, own) if subtree_state(own) is Trainable.FROZEN else (None, [])
    for ancestor in graph.ancestors(layer.path):
        params = graph.subtree_parameters(ancestor)
        if params:
            return (ancestor, params) if subtree_state(params) is Trainable.FROZEN else (None, [])
    return None, []
