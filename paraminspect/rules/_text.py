"""Small wording helpers shared by rule messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..graph import Source, Tensor


def plural(count: int, word: str, plural_form: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural_form or word + 's'}"


def listing(items: Sequence[str], limit: int = 4) -> str:
    """``a, b, c and 2 more``."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


def elements(count: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def numel(tensors: Iterable[Tensor]) -> int:
    return sum(t.numel or 0 for t in tensors)


def provenance(tensors: Iterable[Tensor]) -> str:
    """How the trainability of ``tensors`` is known, for a message's closing parenthesis."""
    facts = [t.trainable_fact for t in tensors]
    if any(f.source is Source.INFERRED for f in facts):
        evidence = next(f.evidence for f in facts if f.source is Source.INFERRED)
        return f"inferred: {evidence}"
    evidence = next((f.evidence for f in facts if f.evidence), "stored in the file")
    return evidence


def group_by_layer(tensors: Iterable[Tensor]) -> dict[str, list[Tensor]]:
    groups: dict[str, list[Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.layer, []).append(tensor)
    return groups
