"""PI603 trainable-param-no-grad (live guards): trainable parameters that received no gradient
(or no update) in the first step."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Trainable
from ._text import group_by_layer, listing, plural
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..guards.live import LiveState


class TrainableParamNoGrad(Rule):
    code = "PI603"
    name = "trainable-param-no-grad"
    severity = Severity.WARNING
    fix = (
        "Use the layer in forward (or freeze it), make sure nothing detaches its output, and "
        "check that gradient checkpointing does not cut the graph before it."
    )

    def check_live(self, live: LiveState) -> Iterator[Issue]:
        if live.has_grad is None and live.updated is None:
            return
        graph = live.graph
        dead = []
        for param in graph.parameters():
            if param.trainable is not Trainable.TRAINABLE:
                continue
            if live.has_grad is not None:
                if live.has_grad.get(param.name) is False:
                    dead.append(param)
            elif live.updated is not None and live.updated.get(param.name) is False:
                dead.append(param)
        what = "no gradient" if live.has_grad is not None else "no update"
        for layer, params in group_by_layer(dead).items():
            yield Issue(
                location=layer,
                message=(
                    f"{plural(len(params), 'trainable parameter')} of {layer or 'the model'} "
                    f"({listing([p.local_name for p in params])}) received {what} in the first "
                    f"step: the layer is not used in forward, its output is detached, or it is "
                    f"cut off from the loss"
                ),
                paths=tuple(p.name for p in params),
            )
