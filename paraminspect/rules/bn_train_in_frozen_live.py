"""PI602 bn-train-in-frozen-live (live guards): BatchNorm statistics inside a frozen block moved
during the run: the layer is in training mode although its block is frozen."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ._text import listing
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..guards.live import LiveState


class BnTrainInFrozenLive(Rule):
    code = "PI602"
    name = "bn-train-in-frozen-live"
    severity = Severity.WARNING
    fix = (
        "Call backbone.eval() after every model.train() (or override train()), or use "
        "FrozenBatchNorm2d; in Keras, set trainable=False on the BatchNormalization layer and "
        "compile() again."
    )

    def check_live(self, live: LiveState) -> Iterator[Issue]:
        for layer, (names, size) in live.stats_moved.items():
            local = [n.rsplit(".", 1)[-1] for n in names]
            yield Issue(
                location=layer,
                message=(
                    f"{layer} is a BatchNorm layer inside a frozen block, and its running "
                    f"statistics ({listing(local)}) changed by up to {size:.3g} before step "
                    f"{live.step}: it runs in training mode, so the frozen block's normalization "
                    f"drifts"
                ),
                paths=tuple(names),
            )
