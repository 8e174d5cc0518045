"""The ``paraminspect`` command: a thin shell over :mod:`paraminspect.api`.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage error or unreadable file,
3 a named folder held no model that could be checked.

Plain :mod:`argparse`, and every other import deferred to the command that needs it, so
``paraminspect check small.pt`` starts in a few tens of milliseconds. A subcommand is one
``@command`` function plus a function adding its arguments; an option is one ``add_argument``
line in that function.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO

    from .config import Settings
    from .findings import Report

PROG = "paraminspect"
DESCRIPTION = "Find freezing mistakes in model checkpoints without executing them."
FORMATS = ("text", "json", "github", "sarif", "markdown", "junit")
FAIL_ON = ("error", "warning", "info", "never")
#: more files than this show a progress bar (on an interactive stderr only)
PROGRESS_AFTER = 1


class UsageError(Exception):
    """A mistake in how paraminspect was called or configured: one line, exit 2."""


class Command:
    """A subcommand: its name, its help line, what adds its arguments and what runs it."""

    __slots__ = ("name", "help", "arguments", "run")

    def __init__(
        self, name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
    ) -> None:
        self.name = name
        self.help = help
        self.arguments = arguments
        self.run = run


#: subcommand name -> Command, in the order ``paraminspect -h`` lists them
COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``run(args) -> exit code`` as the subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register


def _say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")


# -- shared options ------------------------------------------------------------------------------
def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="pyproject.toml to read [tool.paraminspect] from (default: the nearest one).",
    )


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-color", action="store_true", help="No colors (so does NO_COLOR).")


def _settings(args: argparse.Namespace) -> Settings:
    """Config file first, flags on top; every selector checked against the rule registry."""
    from .config import ConfigError, load_settings, parse_fail_on, split_codes, validate_selectors
    from .record import replace

    try:
        settings = load_settings(getattr(args, "config", None))
        select = split_codes(getattr(args, "select", None) or [])
        ignore = split_codes(getattr(args, "ignore", None) or [])
        validate_selectors(select, "--select")
        validate_selectors(ignore, "--ignore")
        settings = settings.with_overrides(select=select or None, ignore=ignore or None)
        fail_on = getattr(args, "fail_on", None)
        if fail_on is not None:
            settings = replace(settings, fail_on=parse_fail_on(fail_on))
        timeout = getattr(args, "timeout", None)
        if timeout is not None:
            if timeout < 0:
                raise ConfigError("--timeout must be a number of seconds (0: no limit)")
            settings = replace(settings, timeout=timeout)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return settings


def _open_output(path: Path | None, append: bool = False) -> IO[str]:
    if path is None:
        return sys.stdout
    try:
        return open(path, "a" if append else "w", encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


# -- check ---------------------------------------------------------------------------------------
def _check_arguments(parser: argparse.ArgumentParser) -> None:
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
    _color_option(parser)
    _config_option(parser)


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
    from .engine import iter_model_files
    from .findings import Report
    from .parallel import iter_check_files

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


@command("check", "Check model files for freezing mistakes.", _check_arguments)
def check(args: argparse.Namespace) -> int:
    from .reporters import Options, get_reporter

    settings = _settings(args)
    targets = _outputs(args.format, args.output)
    if args.non_models == "notice":
        settings = settings.with_overrides(non_models="notice")
    accepted = None
    if args.baseline is not None:
        from .baseline import BaselineError, load_baseline

        try:
            accepted = load_baseline(args.baseline)
        except BaselineError as exc:
            raise UsageError(str(exc)) from None
    progress = not args.quiet and _interactive(sys.stderr) and "CI" not in os.environ
    report = _run(args.paths or ["."], settings, progress, args.jobs)

    if args.write_baseline is not None:
        from .baseline import dumps

        try:
            args.write_baseline.write_text(dumps(report, settings.root), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.write_baseline}: {exc.strerror or exc}") from None
        places = sum(f.count for f in report.findings)
        _say(f"recorded {places} findings in {args.write_baseline}")
        return 2 if report.has_errors else 0

    hidden = 0
    if accepted is not None:
        from .baseline import apply_baseline

        report, hidden = apply_baseline(report, accepted, settings.root)

    rules = ()
    if {name for name, _ in targets} & {"sarif", "junit"}:
        from .reporters import rule_catalog

        rules = rule_catalog(lambda code, name: settings.rule_enabled(code, name))
    color = not args.no_color and "NO_COLOR" not in os.environ
    for name, path in targets:
        if args.statistics and path is None:
            statistics(report, sys.stdout)
            continue
        stream = _open_output(path)
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
        _say(f"{hidden} findings hidden by the baseline {args.baseline}")

    code = report.exit_code(settings.fail_on)
    if args.exit_zero and code == 1:
        code = 0
    from .engine import folders_without_models

    empty = folders_without_models(args.paths or ["."], report)
    for folder in empty:
        _say(f"no model found in {folder}")
    if empty and code == 0:
        code = 3
    return code


def _append_step_summary(report: Report, settings: Settings, map_link: str = "") -> None:
    from .reporters import Options, get_reporter

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        _say("--github-summary: $GITHUB_STEP_SUMMARY is not set")
        return
    with _open_output(Path(target), append=True) as stream:
        get_reporter("markdown")(report, stream, Options(color=False, fail_on=settings.fail_on,
                                                        freeze_map_link=map_link))


# -- show ----------------------------------------------------------------------------------------
def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="A model file or folder.")
    parser.add_argument(
        "--depth", type=int, default=None, metavar="N",
        help="Show N levels of modules below the model (default: fold what is alike).",
    )
    parser.add_argument(
        "--all", dest="unfold", action="store_true",
        help="Show every module: fold nothing, whatever the depth.",
    )
    parser.add_argument(
        "-f", "--format", choices=("text", "html"), default="text",
        help="text (default) or a self-contained HTML picture of the freeze map.",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="Write to FILE instead of stdout."
    )
    parser.add_argument(
        "--policy", action="store_true",
        help="Mark the layers a [[tool.paraminspect.policy]] covers.",
    )
    _config_option(parser)
    _color_option(parser)


@command(
    "show",
    "Show the freeze map: modules with trainable / frozen / mixed, train / eval and counts.",
    _show_arguments,
)
def show(args: argparse.Namespace) -> int:
    from .errors import LoadError, Skip
    from .loaders import load
    from .reporters import Options

    if args.depth is not None and args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    marks = None
    applicable: tuple = ()
    if args.policy:
        settings = _settings(args)
        applicable = tuple(
            p for p in settings.policies if p.applies_to(str(args.path), settings.root)
        )
    try:
        graph = load(args.path)
    except (LoadError, Skip) as exc:
        raise UsageError(f"{args.path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a loader bug is reported in one line
        raise UsageError(
            f"{args.path}: internal error while reading ({type(exc).__name__}: {exc})"
        ) from None
    if args.policy:
        from .policy import coverage

        marks = coverage(graph, applicable)
    stream = _open_output(args.output)
    try:
        if args.format == "html":
            from .engine import check_graph
            from .reporters.freeze_html import render as render_html

            render_html(graph, check_graph(graph, _settings(args)), stream)
        else:
            from .reporters.freeze_map import render

            color = not args.no_color and args.output is None
            render(graph, stream, Options(color=color), marks=marks, depth=args.depth,
                   unfold=args.unfold)
            if args.policy:
                if applicable:
                    labels = ", ".join(p.label for p in applicable)
                    stream.write(f"[policy: ...] marks what {labels} asks of a layer; "
                                 "`paraminspect check` reports where the file disagrees (PI401)\n")
                else:
                    stream.write("no [[tool.paraminspect.policy]] applies to this file\n")
    finally:
        if stream is not sys.stdout:
            stream.close()
    return 0


# -- rules ---------------------------------------------------------------------------------------
def _diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", type=Path, metavar="BEFORE",
                        help="The earlier checkpoint (file or model folder).")
    parser.add_argument("after", type=Path, metavar="AFTER",
                        help="The later checkpoint of the same model.")
    parser.add_argument("-f", "--format", "--output-format", dest="format", choices=FORMATS,
                        default="text", help="Report format (default: text).")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                        help="Write the report to FILE.")
    parser.add_argument("--atol", type=float, default=0.0, help="Absolute tolerance per element.")
    parser.add_argument("--rtol", type=float, default=0.0, help="Relative tolerance per element.")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="Threads comparing tensors.")
    parser.add_argument("--select", action="append", default=[], metavar="CODES",
                        help="Only these rule codes, prefixes or names. Repeatable.")
    parser.add_argument("--ignore", action="append", default=[], metavar="CODES",
                        help="Skip these rule codes, prefixes or names. Repeatable.")
    parser.add_argument("--fail-on", choices=FAIL_ON, default=None,
                        help="Lowest severity that makes the exit code 1.")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only the findings.")
    _color_option(parser)
    _config_option(parser)


@command(
    "diff",
    "Compare two checkpoints of one run: frozen weights that moved, drifted BatchNorm "
    "statistics, trainable weights that never changed, optimizer step counters.",
    _diff_arguments,
)
def diff(args: argparse.Namespace) -> int:
    from .config import ConfigError, split_codes, validate_selectors
    from .diff.command import run

    try:
        validate_selectors(split_codes(args.select), "--select")
        validate_selectors(split_codes(args.ignore), "--ignore")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return run(
        args.before, args.after, args.format, args.output, args.atol, args.rtol, args.jobs,
        args.select, args.ignore, args.fail_on, args.config, args.quiet, args.no_color,
    )


@command("rules", "List the rules.", lambda parser: None)
def list_rules(args: argparse.Namespace) -> int:
    from .docs import rule_doc
    from .rules import all_rules

    for rule in all_rules():
        doc = rule_doc(rule.code)
        summary = doc.summary.split(". ", 1)[0].rstrip(".") + "." if doc else ""
        sys.stdout.write(f"{rule.code}  {rule.name:<28} {rule.severity.value:<8} {summary}\n")
    return 0


def _rule_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", metavar="CODE", help="A rule code (PI201) or name.")


@command("rule", "Print a rule's document.", _rule_arguments)
def show_rule(args: argparse.Namespace) -> int:
    from .docs import rule_doc
    from .rules import all_rules, get_rule

    rule = get_rule(args.code)
    if rule is None:
        codes = ", ".join(r.code for r in all_rules())
        raise UsageError(f"no rule {args.code!r}; choose one of {codes}")
    doc = rule_doc(rule.code)
    if doc is None:
        raise UsageError(f"the document of {rule.code} is missing from this installation")
    sys.stdout.write(doc.text.rstrip("\n") + "\n")
    return 0


# -- entry point ---------------------------------------------------------------------------------
def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {c.name:<8} {c.help}" for c in COMMANDS.values()]
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROG} [-h] [--version] COMMAND [ARGS]",
        epilog="commands:\n" + "\n".join(lines)
        + f"\n\n`{PROG} COMMAND -h` describes a command's options.",
    )
    parser.add_argument("--version", action="store_true", help="Print the version.")
    parser.add_argument("command", nargs="?", metavar="COMMAND", choices=[*COMMANDS, None])
    return parser


def _command_parser(cmd: Command) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} {cmd.name}", description=cmd.help)
    cmd.arguments(parser)
    return parser


def run(argv: list[str]) -> int:
    """Parse ``argv`` (without the program name) and run the command; returns the exit code."""
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    top = _top_parser()
    head = top.parse_args(argv[: split + 1])  # -h, --version and the command name
    if head.version:
        from . import __version__

        sys.stdout.write(f"{PROG} {__version__}\n")
        return 0
    if head.command is None:
        top.print_help()
        return 2
    cmd = COMMANDS[head.command]
    args = _command_parser(cmd).parse_intermixed_args(argv[split + 1:])
    try:
        return cmd.run(args)
    except UsageError as exc:
        _say(f"error: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug of ours is one line, never a traceback
        if os.environ.get("PARAMINSPECT_DEBUG"):
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (PARAMINSPECT_DEBUG=1 shows where)")
        return 2


def main(argv: list[str] | None = None) -> None:
    """The console script: exits with the command's exit code."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:  # file names that are not UTF-8 print as their bytes
            reconfigure(errors="surrogateescape")
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `paraminspect check | head`
        sys.stderr.close()
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
