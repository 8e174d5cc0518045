"""Matching optimizer slots to model parameters, shared by every loader that reads optimizers."""

from __future__ import annotations

from collections.abc import Sequence


def unique_shape_embedding(
    wanted: Sequence[tuple[int, ...] | None], available: Sequence[tuple[int, ...] | None]
) -> list[int] | None:
    """The order-preserving match of ``wanted`` into ``available``, if it is the only one.

    The leftmost and rightmost greedy embeddings bound every embedding position by position, so
    the match is unique exactly when the two coincide. ``None`` in ``wanted`` matches any shape.
    """
    if not wanted or len(wanted) > len(available):
        return None

    def fits(w: tuple[int, ...] | None, a: tuple[int, ...] | None) -> bool:
        return w is None or (a is not None and w == a)

    left: list[int] = []
    j = 0
    for w in wanted:
        while j < len(available) and not fits(w, available[j]):
            j += 1
        if j == len(available):
            return None
        left.append(j)
        j += 1
    right: list[int] = []
    j = len(available) - 1
    for w in reversed(wanted):
        while j >= 0 and not fits(w, available[j]):
            j -= 1
        if j < 0:
            return None
        right.append(j)
        j -= 1
    right.reverse()
    return left if left == right else None
