"""Collapse repeated findings (53 BatchNorm layers under ``backbone``) for human-facing output."""

from __future__ import annotations

from dataclasses import dataclass

from ..findings import Finding

#: more findings than this of one code in one file are shown as a group
GROUP_THRESHOLD = 3
#: how many members of a group are shown by name
GROUP_SHOWN = 3


@dataclass(frozen=True)
class Group:
    code: str
    findings: tuple[Finding, ...]

    @property
    def common_location(self) -> str:
        return common_prefix([f.location for f in self.findings])

    @property
    def hidden(self) -> int:
        return max(0, len(self.findings) - GROUP_SHOWN)


def group_findings(findings: list[Finding]) -> list[Finding | Group]:
    """Findings in order, with runs of one code beyond the threshold folded into a Group."""
    by_code: dict[str, list[Finding]] = {}
    for finding in findings:
        by_code.setdefault(finding.code, []).append(finding)
    out: list[Finding | Group] = []
    emitted: set[str] = set()
    for finding in findings:
        same = by_code[finding.code]
        if len(same) <= GROUP_THRESHOLD:
            out.append(finding)
        elif finding.code not in emitted:
            emitted.add(finding.code)
            out.append(Group(finding.code, tuple(same)))
    return out


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
