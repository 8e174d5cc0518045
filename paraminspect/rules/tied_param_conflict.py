"""PI105 tied-param-conflict: one shared tensor, frozen for one module and trained for another."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import ModelGraph, Tensor, Trainable, subtree_state
from ._text import listing, provenance
from .base import Issue, Rule


class TiedParamConflict(Rule):
    code = "PI105"
    name = "tied-param-conflict"
    fix = (
        "Decide for the shared tensor as a whole: untie it (give the module that should differ "
        "its own copy, e.g. tie_word_embeddings=False) or freeze/unfreeze every module sharing it."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for tensor in graph.parameters():
            if not tensor.aliases or tensor.trainable is Trainable.UNKNOWN:
                continue
            names = [tensor.name, *tensor.aliases]
            users = {_layer_of(n): n for n in names}
            against = []
            for layer, name in users.items():
                others = [u for u in users if u != layer]
                intent, block = _intent(graph, layer, set(names), others)
                if intent is not None and intent is not tensor.trainable:
                    against.append((layer, name, block))
            if not against:
                continue
            state = "frozen" if tensor.trainable is Trainable.FROZEN else "trainable"
            for layer, name, block in against:
                others = [n for n in names if n != name]
                where = layer or "the root module"
                around = f"{block or 'the model'}" if block != layer else where
                consequence = (
                    f"{where} cannot update it although the rest of {around} trains"
                    if tensor.trainable is Trainable.FROZEN
                    else f"training through {listing(others)} keeps changing it inside {around}, "
                    f"which is otherwise frozen"
                )
                yield Issue(
                    location=layer,
                    message=(
                        f"{name} is one tensor shared with {listing(others)} (tied); it is "
                        f"{state}, so {consequence}: one stored tensor cannot be frozen for one "
                        f"module and trained for another"
                    ),
                    evidence=provenance([tensor]),
                    paths=(name, *others),
                )


def _layer_of(name: str) -> str:
    return name.rpartition(".")[0]


def _intent(
    graph: ModelGraph, layer: str, shared: set[str], others: list[str]
) -> tuple[Trainable | None, str]:
    """What the parameters around ``layer`` say it should be: the uniform state of the nearest
    block (the layer, then its ancestors) holding parameters other than the shared tensor. A
    block that also holds another user of the tensor speaks for both, so it says nothing."""
    for block in [layer, *graph.ancestors(layer)]:
        if any(not block or o == block or o.startswith(block + ".") for o in others):
            return None, block
        if block not in graph.layers:
            continue
        params: list[Tensor] = [
            p for p in graph.subtree_parameters(block) if p.name not in shared
        ]
        if not params:
            continue
        state = subtree_state(params)
        if state in (Trainable.TRAINABLE, Trainable.FROZEN):
            return state, block
        return None, block
    return None, ""
