"""Plain-text output for terminals and CI logs: ANSI colors only on a color-capable terminal,
terminal width, and paths that are safe to print. No third-party imports, so the check path
starts fast."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

#: style name -> SGR parameters
_SGR = {
    "bold": "1",
    "dim": "2",
    "italic": "3",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def dumb_terminal() -> bool:
    return os.environ.get("TERM") == "dumb"


def use_color(stream: TextIO, wanted: bool) -> bool:
    """Colors when asked for, on a terminal that is not dumb, and without ``NO_COLOR``."""
    if not wanted or "NO_COLOR" in os.environ or dumb_terminal():
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO, width: int | None = None) -> int | None:
    """The width to lay out for: ``width`` if given, the terminal's on a terminal, else None
    (files and CI logs: never fold a line, the viewer wraps)."""
    if width:
        return width
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        try:
            return os.get_terminal_size(stream.fileno()).columns or 80
        except (OSError, AttributeError, ValueError):
            return 80
    return None


class Paint:
    """``paint("PI201", "bold red")`` wraps text in ANSI codes, or returns it unchanged."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str = "") -> str:
        if not self.enabled or not style or not text:
            return text
        codes = ";".join(_SGR[part] for part in style.split() if part in _SGR)
        return f"\x1b[{codes}m{text}\x1b[0m" if codes else text


def printable(text: str) -> str:
    """``text`` with undecodable file-name bytes (surrogate escapes) shown as ``\\xNN``, so any
    stream can write it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def shorten_left(text: str, width: int) -> str:
    """``…/checkpoints/model.pt``: keep the end of a path (the file name) when it is too long."""
    if len(text) <= width or width < 8:
        return text
    return "…" + text[-(width - 1):]
