"""Markdown for ``$GITHUB_STEP_SUMMARY`` and pull-request comments: a summary table, then the
findings grouped by file and rule, long lists folded into ``<details>``."""

from __future__ import annotations

import re

from ..findings import FileReport, Finding, Report, Severity
from . import Options, repo_path
from .grouping import GROUP_THRESHOLD, brief_locations
from .style import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

#: characters that start markdown or HTML constructs mid-line (``(`` only matters after ``]``)
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def escape(text: str) -> str:
    """Plain text that renders as itself in GitHub-flavoured markdown (tables included)."""
    return _SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def code(text: str, in_table: bool = False) -> str:
    """An inline code span that survives backticks in ``text`` (and pipes, in a table cell)."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if in_table:  # GFM splits cells on | even inside code spans unless it is escaped
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def headline(report: Report) -> str:
    totals = report.counts()
    unreadable = sum(1 for f in report.files if f.error)
    parts = [f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} checked"]
    nouns = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "info"}
    parts += [
        f"{totals[s.value]} {nouns[s]}{'s' if totals[s.value] != 1 and s is not Severity.INFO else ''}"
        for s in Severity
    ]
    if unreadable:
        parts.append(f"{unreadable} unreadable")
    return ", ".join(parts)


def _table(report: Report) -> list[str]:
    lines = [
        "| file | format | params | trainable | frozen | errors | warnings | info |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for file in report.files:
        counts = {s: sum(1 for f in file.findings if f.severity is s) for s in Severity}
        if file.error:
            fmt, numbers = "**unreadable**", ["", "", ""]
        elif file.skipped:
            fmt, numbers = "skipped", ["", "", ""]
        else:
            fmt = escape(f"{file.format} ({file.content})" if file.content else str(file.format))
            s = file.summary
            numbers = [_count(s.params), _count(s.trainable_params), _count(s.frozen_params)]
        row = [code(printable(repo_path(file.path)), in_table=True), fmt, *numbers]
        row += [str(counts[s] or "") for s in Severity]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _finding_item(finding: Finding) -> list[str]:
    locations = [loc or "(model)" for loc in finding.all_locations]
    if len(locations) <= GROUP_THRESHOLD:
        where = ", ".join(code(loc) for loc in locations)
        return [f"- {where}: {escape(finding.message)}"]
    first = code(locations[0])
    return [
        f"- {first} and {len(locations) - 1} more: {escape(finding.message)}",
        "  <details>",
        f"  <summary>all {len(locations)} locations "
        f"({escape(brief_locations(locations))})</summary>",
        "",
        *[f"  {code(loc)}<br>" for loc in locations],
        "",
        "  </details>",
    ]


def _map_link(file: FileReport, template: str) -> list[str]:
    from pathlib import PurePosixPath

    path = PurePosixPath(printable(repo_path(file.path)))
    target = template.format(path=str(path), name=path.name, stem=path.stem)
    return [f"[Freeze map]({target.replace(' ', '%20').replace(')', '%29')})", ""]


def _file_section(file: FileReport, options: Options) -> list[str]:
    lines = [f"### {code(printable(repo_path(file.path)))}", ""]
    if options.freeze_map_link and not (file.error or file.skipped):
        lines += _map_link(file, options.freeze_map_link)
    if file.skipped:
        return [*lines, f"Skipped: {escape(file.skipped)}", ""]
    by_code: dict[str, list[Finding]] = {}
    for finding in file.findings:
        by_code.setdefault(finding.code, []).append(finding)
    for rule_code, findings in by_code.items():
        first = findings[0]
        severity = max((f.severity for f in findings), key=lambda s: s.rank)
        places = sum(f.count for f in findings)
        count = f"{places} location{'s' if places != 1 else ''}"
        lines.append(f"**{rule_code} {escape(first.name)}** ({severity.value}, {count})")
        lines.append("")
        for finding in findings:
            lines += _finding_item(finding)
        if first.fix:
            lines += ["", f"Fix: {escape(first.fix)}"]
        lines.append("")
    if file.error and not file.findings:
        lines += [f"Unreadable: {escape(file.error)}", ""]
    return lines


def render(report: Report, stream: TextIO, options: Options) -> None:
    lines = ["## paraminspect", "", headline(report), ""]
    if report.files:
        lines += [*_table(report), ""]
    else:
        lines += ["No model files found.", ""]
    with_findings = [f for f in report.files if f.findings or f.skipped or f.error]
    if with_findings:
        for file in with_findings:
            lines += _file_section(file, options)
    stream.write("\n".join(lines).rstrip("\n") + "\n")
