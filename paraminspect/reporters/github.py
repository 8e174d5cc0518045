"""GitHub Actions workflow commands: one annotation per rule and file, shown on the PR's files.

``::error file=ckpt/a.pt,title=PI201 bn-train-in-frozen::...`` (see "Workflow commands for GitHub
Actions"). Several findings of one rule in one file become one annotation naming every location,
because GitHub shows at most 10 error and 10 warning annotations per step.
"""

from __future__ import annotations

from ..findings import FileReport, Finding, Report, Severity
from . import Options, repo_path
from .style import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, **properties: str) -> str:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{level} {props}::{escape_data(message)}" if props else f"::{level}::{escape_data(message)}"


def _where(finding: Finding) -> str:
    """Every location of the finding, by name."""
    return ", ".join(loc or "(model)" for loc in finding.all_locations)


def _annotation(path: str, findings: list[Finding]) -> str:
    first = findings[0]
    severity = max((f.severity for f in findings), key=lambda s: s.rank)
    if len(findings) == 1:
        body = f"{_where(first)}: {first.message}"
    else:
        lines = [f"{len(findings)} findings:"]
        lines += [f"- {_where(f)}: {f.message}" for f in findings]
        body = "\n".join(lines)
    if first.fix:
        body += f"\nfix: {first.fix}"
    return command(
        LEVELS[severity], body, file=path, title=f"{first.code} {first.name} [{severity.value}]"
    )


def render_file(file: FileReport) -> list[str]:
    path = printable(repo_path(file.path))
    if file.skipped:
        return [command("notice", f"skipped: {file.skipped}", file=path, title="paraminspect")]
    lines = []
    by_code: dict[str, list[Finding]] = {}
    for finding in file.findings:
        by_code.setdefault(finding.code, []).append(finding)
    for findings in by_code.values():
        lines.append(_annotation(path, findings))
    if file.error and not file.findings:  # PI001 ignored: still say the file was not checked
        lines.append(command("error", f"unreadable: {file.error}", file=path, title="paraminspect"))
    return lines


def render(report: Report, stream: TextIO, options: Options) -> None:
    for file in report.files:
        for line in render_file(file):
            stream.write(line + "\n")
    counts = report.counts()
    unreadable = sum(1 for f in report.files if f.error)
    stream.write(
        f"paraminspect: {len(report.files)} files checked, {counts['error']} errors, "
        f"{counts['warning']} warnings, {counts['info']} info, {unreadable} unreadable\n"
    )
