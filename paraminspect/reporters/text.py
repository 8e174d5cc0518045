"""The human report: findings per file (repeated ones grouped), then one summary table."""

from __future__ import annotations

import os
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..findings import FileReport, Finding, Report, Severity
from . import Options
from .grouping import GROUP_SHOWN, Group, group_findings

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def make_console(stream: TextIO, options: Options) -> Console:
    dumb = os.environ.get("TERM") == "dumb"
    no_color = not options.color or "NO_COLOR" in os.environ
    return Console(
        file=stream,
        no_color=no_color,
        highlight=False,
        soft_wrap=True,  # never break a path in the middle: let the terminal wrap
        # Off a terminal (CI logs, files) rich would assume 80 columns and fold table cells.
        width=options.width or (None if stream.isatty() else 400),
        emoji=False,
        legacy_windows=False,
        color_system=None if no_color or dumb else "auto",
        safe_box=True,
    )


def render(report: Report, stream: TextIO, options: Options) -> None:
    console = make_console(stream, options)
    for file in report.files:
        _render_file(console, file, options)
    if not options.quiet:
        _render_summary(console, report)


def location_label(finding: Finding) -> str:
    return finding.location or "(model)"


def _finding_line(path: str, finding: Finding) -> Text:
    line = Text()
    line.append(f"{path}:{location_label(finding)}: ", style="bold")
    line.append(f"{finding.code} ", style=STYLES[finding.severity])
    line.append(f"[{finding.severity.value}] ", style=STYLES[finding.severity])
    line.append(f"{finding.name}: ", style="dim")
    line.append(finding.message)
    return line


def plain_terminal(console: Console) -> bool:
    """True off a terminal or on a dumb one: use ASCII rules, no box drawing."""
    return not console.is_terminal or console.is_dumb_terminal or os.environ.get("TERM") == "dumb"


def _render_file(console: Console, file: FileReport, options: Options) -> None:
    if file.skipped:
        # Shown even with --quiet: a hook that sees a Git LFS pointer must say it checked nothing.
        console.print(Text(f"{file.path}: skipped: {file.skipped}", style="dim"))
        return
    if file.error and not file.findings:  # PI001 ignored: still name the file nobody checked
        console.print(Text(f"{file.path}: unreadable: {file.error}", style="bold red"))
        return
    if options.quiet:  # one line per finding, every finding named (pre-commit, grep)
        for finding in file.findings:
            console.print(_finding_line(file.path, finding))
        return
    for item in group_findings(file.findings):
        if isinstance(item, Group):
            first = item.findings[0]
            head = Text()
            where = item.common_location or "the model"
            head.append(f"{file.path}:{where}: ", style="bold")
            head.append(f"{first.code} ", style=STYLES[first.severity])
            head.append(f"[{first.severity.value}] ", style=STYLES[first.severity])
            head.append(f"{first.name}: ", style="dim")
            head.append(f"{len(item.findings)} findings under {where}")
            console.print(head)
            for finding in item.findings[:GROUP_SHOWN]:
                member = Text(f"    {location_label(finding)}: ", style="bold")
                console.print(member + Text(finding.message))
            if item.hidden:
                console.print(
                    Text(
                        f"    ... and {item.hidden} more (all listed with --format json)",
                        style="dim",
                    )
                )
            if first.fix:
                console.print(Text(f"    fix: {first.fix}", style="green"))
        else:
            console.print(_finding_line(file.path, item))
            if item.fix:
                console.print(Text(f"    fix: {item.fix}", style="green"))


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _render_summary(console: Console, report: Report) -> None:
    if not report.files:
        console.print("No model files found.")
        return
    table = Table(
        box=box.ASCII2 if plain_terminal(console) else box.SIMPLE, show_edge=False, pad_edge=False
    )
    for column, justify in (
        ("file", "left"),
        ("format", "left"),
        ("params", "right"),
        ("trainable", "right"),
        ("frozen", "right"),
        ("errors", "right"),
        ("warnings", "right"),
        ("info", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for file in report.files:
        counts = {s: sum(1 for f in file.findings if f.severity is s) for s in Severity}
        if file.error:
            fmt = Text("unreadable", style="bold red")
        elif file.skipped:
            fmt = Text("skipped", style="dim")
        else:
            fmt = Text(f"{file.format} ({file.content})" if file.content else str(file.format))
        summary = file.summary
        table.add_row(
            file.path,
            fmt,
            "" if file.error or file.skipped else _count(summary.params),
            "" if file.error or file.skipped else _count(summary.trainable_params),
            "" if file.error or file.skipped else _count(summary.frozen_params),
            str(counts[Severity.ERROR] or ""),
            str(counts[Severity.WARNING] or ""),
            str(counts[Severity.INFO] or ""),
        )
    console.print()
    console.print(table)
    totals = report.counts()
    unreadable = sum(1 for f in report.files if f.error)
    parts = [f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} checked"]
    parts += [
        f"{totals[s.value]} {s.value}{'s' if totals[s.value] != 1 and s is not Severity.INFO else ''}"
        for s in Severity
    ]
    if unreadable:
        parts.append(f"{unreadable} unreadable")
    style = (
        "bold red" if totals["error"] or unreadable else "yellow" if totals["warning"] else "green"
    )
    console.print(Text(", ".join(parts), style=style))
    if any(
        f.summary.trainability == "unknown" and not f.error and not f.skipped for f in report.files
    ):
        console.print(
            Text(
                "? = trainability not stored in the file (a plain state dict without optimizer state)",
                style="dim",
            )
        )
