"""PI601 frozen-param-has-grad (live guards): a frozen parameter that still has a gradient or
optimizer state after the first step, or whose values moved."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Trainable
from ._text import group_by_layer, listing, plural
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..guards.live import LiveState


class FrozenParamHasGrad(Rule):
    code = "PI601"
    name = "frozen-param-has-grad"
    severity = Severity.ERROR
    fix = (
        "Rebuild the optimizer after freezing (only parameters with requires_grad=True), and "
        "zero gradients with set_to_none=True; in Keras, compile() again after changing trainable."
    )

    def check_live(self, live: LiveState) -> Iterator[Issue]:
        graph = live.graph
        frozen = [p for p in graph.parameters() if p.trainable is Trainable.FROZEN]
        hits, why = [], {}
        for param in frozen:
            reasons = []
            if live.has_grad is not None and live.has_grad.get(param.name):
                reasons.append("a gradient")
            if live.opt_state.get(param.name):
                reasons.append("optimizer state")
            if live.updated is not None and live.updated.get(param.name):
                reasons.append("an update")
            if reasons:
                hits.append(param)
                why[param.name] = " and ".join(reasons)
        for layer, params in group_by_layer(hits).items():
            kinds = sorted({why[p.name] for p in params})
            if live.updated is not None:
                consequence = (
                    "the compiled train step still updates them (trainable changed after "
                    "compile(): compile() again)"
                )
            else:
                consequence = (
                    "the optimizer still holds them, so momentum and weight decay move them "
                    "whenever a gradient is present (zero_grad(set_to_none=False) keeps one)"
                )
            yield Issue(
                location=layer,
                message=(
                    f"{plural(len(params), 'frozen parameter')} of {layer or 'the model'} "
                    f"({listing([p.local_name for p in params])}) "
                    f"{'has' if len(params) == 1 else 'have'} {' / '.join(kinds)} before step "
                    f"{live.step}: {consequence}"
                ),
                paths=tuple(p.name for p in params),
            )
