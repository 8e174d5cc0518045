"""PI503 trainable-param-unchanged (diff): trainable parameters whose bits did not change."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Trainable
from ._text import listing, plural
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..diff.model import Diff


class TrainableParamUnchanged(Rule):
    code = "PI503"
    name = "trainable-param-unchanged"
    severity = Severity.WARNING
    fix = (
        "Make sure the parameters are in the optimizer and receive gradients (check "
        "requires_grad, the param groups, and that the layer is used in forward)."
    )

    def check_diff(self, diff: Diff) -> Iterator[Issue]:
        compared = [d for d in diff.deltas.values() if d.status in ("changed", "unchanged")]
        params = [d for d in compared if diff.intent(d.name).state is Trainable.TRAINABLE]
        if not params or not any(d.status == "changed" for d in compared):
            # Nothing at all moved: the same weights twice, not a training bug to locate.
            return
        groups: dict[str, list] = {}
        for delta in params:
            if delta.identical and delta.status == "unchanged" and delta.numel:
                tensor = diff.tensor(delta.name)
                groups.setdefault(tensor.layer if tensor is not None else "", []).append(delta)
        for layer, deltas in groups.items():
            locals_ = [diff.tensor(d.name).local_name for d in deltas]  # type: ignore[union-attr]
            shown = diff.after.display(layer) if layer else "the model"
            yield Issue(
                location=layer,
                message=(
                    f"{plural(len(deltas), 'trainable parameter')} of {shown} ({listing(locals_)}) "
                    f"did not change at all while other tensors did: no update ever reached "
                    f"{'it' if len(deltas) == 1 else 'them'} (not in the optimizer, no gradient, "
                    f"or a zero-initialized adapter that never trained); trainable: "
                    f"{diff.intent(deltas[0].name).evidence}"
                ),
                paths=tuple(d.name for d in deltas),
            )
