"""``paraminspect check``: its arguments, the run over the files (with a progress bar when
interactive), the reports it writes and the exit code it returns."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import (
    FAIL_ON,
    FORMATS,
    UsageError,
    build_settings,
    color_option,
    config_option,
    open_output,
    say,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

    from ..config import Settings
    from ..findings import Report

#: more files than this show a progress bar (on an interactive stderr only)
PROGRESS_AFTER = 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(  # kept as strings: a loader may accept more than local paths
        "paths", nargs="*", metavar="PATH",
        help="Model files or folders (default: the current folder).",
    )
    parser.add_argument(
        "-f", "--format", "--output-format", dest="format", choices=FORMATS, default="text",
        help="Report format on stdout (default: text).",
    )
    parser.add_argument(
        "-o", "--output", action="append", default=[], metavar="[FORMAT=]FILE",
        help="Write the report to FILE instead of stdout; FORMAT=FILE (sarif=out.sarif) writes "
        "one more report in FORMAT. Repeatable.",
    )
    parser.add_argument(
        "-j", "--jobs", type=_positive_int, default=None, metavar="N",
        help="Check files in N processes (default: one per core; small runs stay serial). The "
        "report is the same as a serial run's.",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS",
        help="Seconds one file may take; then it is reported timed out (PI001) and the others "
        "go on; 0: no limit (default: 60).",
    )
    parser.add_argument(
        "--select", action="append", default=[], metavar="CODES",
        help="Only these rule codes, prefixes or names (PI2,PI401). Repeatable.",
    )
    parser.add_argument(
        "--ignore", action="append", default=[], metavar="CODES",
        help="Skip these rule codes, prefixes or names (any code, PI001 included). Repeatable.",
    )
    parser.add_argument(
        "--fail-on", choices=FAIL_ON, default=None,
        help="Lowest severity that makes the exit code 1 (default: warning, or the config's "
        "fail-on; the last one given wins).",
    )
    parser.add_argument(
        "--exit-zero", action="store_true",
        help="Exit 0 even with findings (unreadable files still exit 2).",
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="FILE",
        help="Hide the findings recorded in this baseline file.",
    )
    parser.add_argument(
        "--write-baseline", type=Path, metavar="FILE",
        help="Record every current finding in this file and exit 0.",
    )
    parser.add_argument(
        "--statistics", action="store_true",
        help="Print the number of findings per rule and severity instead of the findings.",
    )
    parser.add_argument(
        "--show-evidence", action="store_true",
        help="Show how the file shows each finding (stored or inferred, and from what).",
    )
    parser.add_argument(
        "--non-models", choices=("error", "notice"), default="error",
        help="A named file that is not a model at all (a data file with a model's extension): "
        "an error (default) or a notice that does not fail (the pre-commit hook).",
    )
    parser.add_argument(
        "--freeze-map-link", default="", metavar="TEMPLATE",
        help="Link each file's HTML freeze map from the markdown report (maps/{stem}.html; "
        "write the maps with `paraminspect show MODEL --format html -o ...`).",
    )
    parser.add_argument(
        "--github-summary", action="store_true",
        help="Also append a markdown report to $GITHUB_STEP_SUMMARY (GitHub Actions).",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="Only the findings, one line each."
    )
    color_option(parser)
    config_option(parser)


def _outputs(main_format: str, outputs: list[str]) -> list[tuple[str, Path | None]]:
    """``--output FILE`` sends the ``--format`` report to FILE; ``--output FORMAT=FILE`` adds a
    report in another format. Without a plain FILE the ``--format`` report goes to stdout."""
    plain: list[Path] = []
    extra: list[tuple[str, Path | None]] = []
    for value in outputs:
        name, sep, target = value.partition("=")
        if sep and name in FORMATS:
            if not target:
                raise UsageError(f"--output {value}: give a file after '='")
            extra.append((name, Path(target)))
        else:
            plain.append(Path(value))
    if len(plain) > 1:
        raise UsageError("--output FILE given twice; use --output FORMAT=FILE for more reports")
    return [(main_format, plain[0] if plain else None), *extra]


def _interactive(stream: IO[str]) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def _run(paths: list[str], settings: Settings, progress: bool, jobs: int | None = None) -> Report:
    """Check every file; a transient progress bar on stderr when asked (interactive runs)."""
    from ..engine import iter_model_files
    from ..findings import Report
    from ..parallel import iter_check_files

    try:
        files = list(iter_model_files(paths))
    except OSError as exc:  # an unreadable folder is reported, never skipped silently
        raise UsageError(f"cannot list {exc.filename}: {exc.strerror or exc}") from None
    if not progress or len(files) <= PROGRESS_AFTER:
        return Report(files=list(iter_check_files(files, settings, jobs)))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    results = []
    with Progress(
        TextColumn("checking"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}", style="dim"), console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(files))
        for path, result in zip(files, iter_check_files(files, settings, jobs), strict=True):
            bar.update(task, description=Path(path).name)
            results.append(result)
            bar.advance(task)
    return Report(files=results)


def statistics(report: Report, stream: IO[str]) -> None:
    """ruff-style counts per rule and severity, most frequent first: places, then findings."""
    places: dict[tuple[str, str, str], int] = {}
    findings: dict[tuple[str, str, str], int] = {}
    for finding in report.findings:
        key = (finding.code, finding.name, finding.severity.value)
        places[key] = places.get(key, 0) + finding.count
        findings[key] = findings.get(key, 0) + 1
    for key, count in sorted(places.items(), key=lambda kv: (-kv[1], kv[0])):
        code, name, severity = key
        number = findings[key]
        grouped = f"  ({number} finding{'s' if number != 1 else ''})" if number != count else ""
        stream.write(f"{count:>5}  {code}  {name:<28} {severity:<8}{grouped}\n".rstrip() + "\n")


def check(args: argparse.Namespace) -> int:
    from ..reporters import Options, get_reporter

    settings = build_settings(args)
    targets = _outputs(args.format, args.output)
    if args.non_models == "notice":
        settings = settings.with_overrides(non_models="notice")
    accepted = None
    if args.baseline is not None:
        from ..baseline import BaselineError, load_baseline

        try:
            accepted = load_baseline(args.baseline)
        except BaselineError as exc:
            raise UsageError(str(exc)) from None
    progress = not args.quiet and _interactive(sys.stderr) and "CI" not in os.environ
    report = _run(args.paths or ["."], settings, progress, args.jobs)

    if args.write_baseline is not None:
        from ..baseline import dumps

        try:
            args.write_baseline.write_text(dumps(report, settings.root), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.write_baseline}: {exc.strerror or exc}") from None
        places = sum(f.count for f in report.findings)
        say(f"recorded {places} findings in {args.write_baseline}")
        return 2 if report.has_errors else 0

    hidden = 0
    if accepted is not None:
        from ..baseline import apply_baseline

        report, hidden = apply_baseline(report, accepted, settings.root)

    rules = ()
    if {name for name, _ in targets} & {"sarif", "junit"}:
        from ..reporters import rule_catalog

        rules = rule_catalog(lambda code, name: settings.rule_enabled(code, name))
    color = not args.no_color and "NO_COLOR" not in os.environ
    for name, path in targets:
        if args.statistics and path is None:
            statistics(report, sys.stdout)
            continue
        stream = open_output(path)
        try:
            options = Options(
                color=color and path is None,
                quiet=args.quiet,
                fail_on=settings.fail_on,
                rules=rules,
                show_evidence=args.show_evidence,
                freeze_map_link=args.freeze_map_link,
            )
            get_reporter(name)(report, stream, options)
        finally:
            if stream is not sys.stdout:
                stream.close()
    if args.github_summary:
        _append_step_summary(report, settings, args.freeze_map_link)
    if hidden and not args.quiet:
        say(f"{hidden} findings hidden by the baseline {args.baseline}")

    code = report.exit_code(settings.fail_on)
    if args.exit_zero and code == 1:
        code = 0
    from ..engine import folders_without_models

    empty = folders_without_models(args.paths or ["."], report)
    for folder in empty:
        say(f"no model found in {folder}")
    if empty and code == 0:
        code = 3
    return code


def _append_step_summary(report: Report, settings: Settings, map_link: str = "") -> None:
    from ..reporters import Options, get_reporter

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        say("--github-summary: $GITHUB_STEP_SUMMARY is not set")
        return
    with open_output(Path(target), append=True) as stream:
        get_reporter("markdown")(report, stream, Options(color=False, fail_on=settings.fail_on,
                                                        freeze_map_link=map_link))
