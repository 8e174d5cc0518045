"""PI501 frozen-param-changed (diff): parameters meant to be frozen whose values changed."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import Trainable
from ._text import listing, plural
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..diff.model import Diff


def size_of_change(deltas: list) -> str:
    """``max |change| 3.1e-03, relative 1.2e-03`` over a group of deltas."""
    largest = max((d.max_abs for d in deltas if d.max_abs is not None), default=None)
    sq_diff = sum(d.sq_diff for d in deltas)
    sq_before = sum(d.sq_before for d in deltas)
    parts = []
    if largest is not None:
        parts.append(f"max |change| {largest:.3g}")
    if sq_before > 0:
        parts.append(f"relative change {(sq_diff / sq_before) ** 0.5:.3g}")
    changed = sum(d.changed for d in deltas)
    total = sum(d.numel for d in deltas)
    if total:
        parts.append(f"{changed} of {total} elements")
    return ", ".join(parts)


class FrozenParamChanged(Rule):
    code = "PI501"
    name = "frozen-param-changed"
    severity = Severity.ERROR
    fix = (
        "Build the optimizer over the trainable parameters only (filter on requires_grad), or "
        "rebuild it after freezing, and zero gradients with set_to_none=True."
    )

    def check_diff(self, diff: Diff) -> Iterator[Issue]:
        groups: dict[str, list] = {}
        for name, delta in diff.deltas.items():
            if delta.status != "changed":
                continue
            intent = diff.intent(name)
            if intent.state is not Trainable.FROZEN:
                continue
            tensor = diff.tensor(name)
            groups.setdefault(tensor.layer if tensor is not None else "", []).append(delta)
        for layer, deltas in groups.items():
            locals_ = [diff.tensor(d.name).local_name for d in deltas]  # type: ignore[union-attr]
            evidence = diff.intent(deltas[0].name).evidence
            shown = diff.after.display(layer) if layer else "the model"
            yield Issue(
                location=layer,
                message=(
                    f"{plural(len(deltas), 'frozen parameter')} of {shown} "
                    f"({listing(locals_)}) changed between the checkpoints "
                    f"({size_of_change(deltas)}); frozen: {evidence}. The optimizer still "
                    f"updates them (momentum, weight decay or stale gradients)"
                ),
                paths=tuple(d.name for d in deltas),
            )
