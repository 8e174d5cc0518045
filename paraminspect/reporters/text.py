"""The human report: one block per finding (a repeated mistake is one finding with its
locations folded), then one summary table.

Off a terminal (CI logs, files, pipes) every finding is one long line, so ``grep`` finds it and
the log viewer wraps. On a terminal, lines are wrapped between words at the terminal's width and
a path too long for a line gets its own line, shortened from the left: nothing is cut mid-word.
Plain Python only: the check path must start fast.
"""

from __future__ import annotations

import re

from ..findings import FileReport, Finding, Report, Severity
from . import Options
from .grouping import brief_locations
from .style import Paint, printable, shorten_left, terminal_width, use_color

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
INDENT = "    "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Out:
    """Writes lines, wrapped between words when a width is known."""

    def __init__(self, stream: TextIO, options: Options) -> None:
        self.stream = stream
        self.paint = Paint(use_color(stream, options.color))
        self.width = terminal_width(stream, options.width)

    def line(self, text: str = "", style: str = "") -> None:
        self.stream.write(self.paint(text, style) + "\n")

    def wrapped(self, text: str, indent: str = "", style: str = "", first: str = "") -> None:
        """``first`` (already painted) + ``text``, wrapped at word boundaries with ``indent``."""
        plain_first = _strip(first)
        if self.width is None:
            self.line(first + self.paint(indent + text if not first else text, style))
            return
        import textwrap  # only on a terminal: CI logs never wrap

        lines = textwrap.wrap(
            plain_first + text, width=max(self.width, 20), initial_indent="" if first else indent,
            subsequent_indent=indent, break_long_words=False, break_on_hyphens=False,
        ) or [plain_first]
        head = lines[0]
        if first and head.startswith(plain_first):
            self.line(first + self.paint(head[len(plain_first):], style))
        else:
            self.line(head, style)
        for rest in lines[1:]:
            self.line(rest, style)


def _strip(painted: str) -> str:
    return _ANSI.sub("", painted)


def render(report: Report, stream: TextIO, options: Options) -> None:
    out = _Out(stream, options)
    for file in report.files:
        _render_file(out, file, options)
    if not options.quiet:
        _render_summary(out, report)


def location_label(finding: Finding) -> str:
    label = finding.location or "(model)"
    if finding.count > 1:
        label += f" (+{finding.count - 1} more)"
    return label


def _head(out: _Out, path: str, finding: Finding) -> tuple[str, str]:
    """(``path:location: ``, ``PI201 [warning] name: ``), painted."""
    p = out.paint
    where = p(f"{path}:{location_label(finding)}:", "bold")
    rule = (
        p(f"{finding.code} [{finding.severity.value}]", STYLES[finding.severity])
        + " " + p(f"{finding.name}:", "dim") + " "
    )
    return where, rule


def finding_line(path: str, finding: Finding) -> str:
    """The one-line form (``--quiet``, pre-commit): ``path:location: CODE [sev] name: message``."""
    return (
        f"{path}:{location_label(finding)}: {finding.code} [{finding.severity.value}] "
        f"{finding.name}: {finding.message}"
    )


def _render_finding(out: _Out, path: str, finding: Finding, options: Options) -> None:
    where, rule = _head(out, path, finding)
    if out.width is None or len(_strip(where + " " + rule)) + 20 <= out.width:
        out.wrapped(finding.message, indent=INDENT, first=where + " " + rule)
    else:  # a long path gets its own line, shortened from the left if need be
        out.line(shorten_left(_strip(where), out.width), "bold")
        out.wrapped(finding.message, indent=INDENT, first=INDENT + rule)
    if options.quiet:
        return
    if finding.count > 1:
        out.wrapped(
            f"at {brief_locations(list(finding.all_locations))}", indent=INDENT + "   ",
            first=INDENT,
        )
    if finding.fix:
        out.wrapped(f"fix: {finding.fix}", indent=INDENT + "     ", style="green", first=INDENT)
    if options.show_evidence and finding.evidence:
        out.wrapped(f"evidence: {finding.evidence}", indent=INDENT + "          ", style="dim",
                    first=INDENT)


def _render_file(out: _Out, file: FileReport, options: Options) -> None:
    path = printable(file.path)
    if file.skipped:
        # Shown even with --quiet: a hook that sees a Git LFS pointer must say it checked nothing.
        out.wrapped(f"{path}: skipped: {file.skipped}", style="dim")
        return
    if file.error and not file.findings:  # PI001 ignored: still name the file nobody checked
        out.wrapped(f"{path}: unreadable: {file.error}", style="bold red")
        return
    for finding in file.findings:
        if options.quiet and out.width is None:
            out.line(finding_line(path, finding))
        else:
            _render_finding(out, path, finding, options)


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


HEADERS = ("file", "format", "params", "trainable", "frozen", "errors", "warnings", "info")


def _rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for file in report.files:
        counts = {s: sum(1 for f in file.findings if f.severity is s) for s in Severity}
        if file.error:
            fmt = "unreadable"
        elif file.skipped:
            fmt = "skipped"
        else:
            fmt = f"{file.format} ({file.content})" if file.content else str(file.format)
        blank = bool(file.error or file.skipped)
        summary = file.summary
        rows.append((
            printable(file.path),
            fmt,
            "" if blank else _count(summary.params),
            "" if blank else _count(summary.trainable_params),
            "" if blank else _count(summary.frozen_params),
            str(counts[Severity.ERROR] or ""),
            str(counts[Severity.WARNING] or ""),
            str(counts[Severity.INFO] or ""),
        ))
    return rows


def _table(out: _Out, rows: list[tuple[str, ...]]) -> None:
    """A plain table; when the file column makes it too wide, each file gets its own line."""
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]

    def cells(row: tuple[str, ...], columns: range) -> str:
        return "  ".join(
            row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i]) for i in columns
        ).rstrip()

    full = range(len(HEADERS))
    if out.width is None or sum(widths) + 2 * (len(widths) - 1) <= out.width:
        out.line(cells(HEADERS, full), "bold")
        out.line("  ".join("-" * w for w in widths), "dim")
        for row in rows:
            out.line(cells(row, full))
        return
    rest = range(1, len(HEADERS))
    if sum(widths[i] for i in rest) + 2 * len(rest) > out.width:  # too narrow even so: prose
        for row in rows:
            out.line(shorten_left(row[0], out.width), "bold")
            facts = [row[1]]
            if row[2]:
                facts.append(f"{row[2]} params ({row[3]} trainable, {row[4]} frozen)")
            facts += [f"{row[i]} {HEADERS[i] if row[i] != '1' else HEADERS[i].rstrip('s')}"
                      for i in (5, 6, 7) if row[i]]
            out.wrapped(", ".join(facts), indent="  ", first="  ")
        return
    out.line("file", "bold")
    out.line("  " + cells(HEADERS, rest), "bold")
    out.line("  " + "  ".join("-" * widths[i] for i in rest), "dim")
    for row in rows:
        out.line(shorten_left(row[0], out.width))
        out.line("  " + cells(row, rest))


def headline(report: Report) -> str:
    totals = report.counts()
    unreadable = sum(1 for f in report.files if f.error)
    parts = [f"{len(report.files)} file{'s' if len(report.files) != 1 else ''} checked"]
    parts += [
        f"{totals[s.value]} {s.value}{'s' if totals[s.value] != 1 and s is not Severity.INFO else ''}"
        for s in Severity
    ]
    if unreadable:
        parts.append(f"{unreadable} unreadable")
    return ", ".join(parts)


def _render_summary(out: _Out, report: Report) -> None:
    if not report.files:
        out.line("No model files found.")
        return
    out.line()
    _table(out, _rows(report))
    totals = report.counts()
    unreadable = sum(1 for f in report.files if f.error)
    style = (
        "bold red" if totals["error"] or unreadable else "yellow" if totals["warning"] else "green"
    )
    out.wrapped(headline(report), style=style)
    if any(
        f.summary.trainability == "unknown" and not f.error and not f.skipped for f in report.files
    ):
        formats = sorted({
            str(f.format) for f in report.files
            if f.summary.trainability == "unknown" and not f.error and not f.skipped
        })
        out.wrapped(f"? = trainability not stored in the file ({', '.join(formats)})",
                    style="dim")
