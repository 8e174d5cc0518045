"""Showing many locations briefly: ``backbone.blocks.0–5.bn ×6`` instead of six lines."""

from __future__ import annotations

import re

#: a finding with more locations than this folds its list in markdown ``<details>``
GROUP_THRESHOLD = 3
#: how many (folded) locations human-facing reports name before ``+N more``
GROUP_SHOWN = 3

_NUMBER = re.compile(r"^\d+$")


def common_prefix(paths: list[str]) -> str:
    split = [p.split(".") for p in paths if p]
    if not split:
        return ""
    common: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def fold_paths(paths: list[str]) -> list[tuple[str, int]]:
    """Dotted paths that differ only in one numeric part, counting up by one, fold into one
    entry: ``[("blocks.0–5.bn", 6)]``. Order is kept; unfoldable paths stay as they are."""
    out: list[tuple[str, int]] = []
    index = 0
    while index < len(paths):
        parts = paths[index].split(".")
        best = 1
        best_slot = -1
        for slot, part in enumerate(parts):
            if not _NUMBER.match(part):
                continue
            run = 1
            while index + run < len(paths):
                other = paths[index + run].split(".")
                if (
                    len(other) != len(parts)
                    or other[:slot] != parts[:slot]
                    or other[slot + 1:] != parts[slot + 1:]
                    or other[slot] != str(int(part) + run)
                ):
                    break
                run += 1
            if run > best:
                best, best_slot = run, slot
        if best > 1:
            first = int(parts[best_slot])
            folded = [*parts[:best_slot], f"{first}–{first + best - 1}", *parts[best_slot + 1:]]
            out.append((".".join(folded), best))
        else:
            out.append((paths[index] or "(model)", 1))
        index += best
    return out


def brief_locations(paths: list[str], shown: int = GROUP_SHOWN) -> str:
    """``blocks.0–5.bn ×6, head.fc, +2 more``: the first few (folded) locations."""
    folded = fold_paths(paths)
    parts = [f"{text} ×{count}" if count > 1 else text for text, count in folded[:shown]]
    rest = sum(count for _, count in folded[shown:])
    if rest:
        parts.append(f"+{rest} more")
    return ", ".join(parts)
