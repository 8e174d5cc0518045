"""PI502 frozen-bn-stats-drifted (diff): BatchNorm running statistics that moved inside frozen
blocks."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ._text import listing
from .base import Issue, Rule
from .frozen_param_changed import size_of_change

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..diff.model import Diff


class FrozenBnStatsDrifted(Rule):
    code = "PI502"
    name = "frozen-bn-stats-drifted"
    severity = Severity.WARNING
    fix = (
        "Put frozen BatchNorm layers in eval mode after every model.train() call (or use "
        "FrozenBatchNorm2d); in Keras, set trainable=False on the BatchNormalization layer."
    )

    def check_diff(self, diff: Diff) -> Iterator[Issue]:
        layers: dict[str, list] = {}
        for name, delta in diff.deltas.items():
            if delta.status != "changed" or not diff.is_running_stat(name):
                continue
            tensor = diff.tensor(name)
            if tensor is not None:
                layers.setdefault(tensor.layer, []).append(delta)
        for layer, deltas in layers.items():
            block, params = diff.frozen_block(layer)
            if block is None:
                continue
            stats = [d for d in deltas if not d.name.endswith("num_batches_tracked")]
            counters = [d for d in deltas if d.name.endswith("num_batches_tracked")]
            locals_ = [diff.tensor(d.name).local_name for d in deltas]  # type: ignore[union-attr]
            where = "its frozen layer" if block == layer else f"the frozen block {block or 'model'}"
            size = size_of_change(stats) if stats else ""
            if counters and counters[0].max_abs is not None:
                size = (size + ", " if size else "") + (
                    f"num_batches_tracked advanced by {counters[0].max_abs:g}"
                )
            yield Issue(
                location=layer,
                message=(
                    f"running statistics of {diff.after.display(layer)} ({listing(locals_)}) "
                    f"changed inside {where} ({size}): the layer ran in train mode, so its "
                    f"normalization drifted from what the frozen weights were trained with "
                    f"(frozen: {diff.intent(params[0]).evidence})"
                ),
                paths=tuple(d.name for d in deltas),
            )
