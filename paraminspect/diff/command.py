"""The ``diff`` command's body, independent of the CLI toolkit: arguments in, exit code out.

The CLI only parses flags and calls :func:`run`; the report goes through the same reporters as
``check`` (the text format is followed by the per-module summary).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..config import ConfigError, load_settings, parse_fail_on, split_codes
from ..record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def run(
    before: Path,
    after: Path,
    output_format: str = "text",
    output: Path | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    jobs: int = 1,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    fail_on: str | None = None,
    config: Path | None = None,
    quiet: bool = False,
    no_color: bool = False,
    err: TextIO | None = None,
) -> int:
    """Compare BEFORE and AFTER, write the report, return the exit code (0 / 1 / 2)."""
    from ..reporters import Options, get_reporter, rule_catalog
    from . import diff_paths
    from .summary import render_modules

    err = err or sys.stderr
    if atol < 0 or rtol < 0 or jobs < 1:
        err.write("paraminspect: error: --atol/--rtol must be >= 0 and --jobs >= 1\n")
        return 2
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.write(f"paraminspect: error: {exc}\n")
        return 2
    settings = settings.with_overrides(
        select=split_codes(select or []) or None, ignore=split_codes(ignore or []) or None
    )
    if fail_on is not None:
        settings = replace(settings, fail_on=parse_fail_on(fail_on))
    report = diff_paths(before, after, settings, atol=atol, rtol=rtol, jobs=jobs)
    try:
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        err.write(f"paraminspect: error: cannot write {output}: {exc.strerror or exc}\n")
        return 2
    try:
        rules = ()
        if output_format in ("sarif", "junit"):
            rules = rule_catalog(lambda code, name: settings.rule_enabled(code, name))
        color = not no_color and "NO_COLOR" not in os.environ and stream.isatty()
        options = Options(color=color, quiet=quiet, fail_on=settings.fail_on, rules=rules)
        get_reporter(output_format)(report, stream, options)
        if output_format == "text" and not quiet:
            render_modules(report.modules, stream)
            for note in report.notes:
                stream.write(f"note: {note}\n")
    finally:
        if output:
            stream.close()
    return report.exit_code(settings.fail_on)
