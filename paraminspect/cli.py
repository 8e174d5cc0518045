"""The ``paraminspect`` command: a thin shell over :mod:`paraminspect.api`.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage error or unreadable file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import IO, Annotated

import typer

from . import __version__
from .baseline import BaselineError, apply_baseline, load_baseline
from .baseline import dumps as baseline_dumps
from .config import ConfigError, Settings, load_settings, parse_fail_on, split_codes
from .engine import iter_model_files
from .errors import LoadError, Skip
from .findings import Report
from .reporters import REPORTERS, Options, RuleInfo, get_reporter, rule_catalog

app = typer.Typer(
    name="paraminspect",
    help="Find freezing mistakes in model checkpoints without executing them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"
    markdown = "markdown"
    junit = "junit"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


#: more files than this show a progress bar (on an interactive stderr only)
PROGRESS_AFTER = 1


def _die(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"paraminspect: error: {message}", err=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paraminspect {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Find freezing mistakes in model checkpoints without executing them."""


@contextmanager
def _output(path: Path | None, append: bool = False) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = open(path, "a" if append else "w", encoding="utf-8")
    except OSError as exc:
        raise _die(f"cannot write {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _settings(
    config: Path | None, select: list[str], ignore: list[str], fail_on: FailOn | None
) -> Settings:
    """Config file first, flags on top."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise _die(str(exc)) from None
    settings = settings.with_overrides(
        select=split_codes(select) or None, ignore=split_codes(ignore) or None
    )
    if fail_on is not None:
        settings = replace(settings, fail_on=parse_fail_on(fail_on.value))
    return settings


def _outputs(main_format: str, outputs: list[str]) -> list[tuple[str, Path | None]]:
    """``--output FILE`` sends the ``--format`` report to FILE; ``--output FORMAT=FILE`` adds a
    report in another format. Without a plain FILE the ``--format`` report goes to stdout."""
    plain: list[Path] = []
    extra: list[tuple[str, Path | None]] = []
    for value in outputs:
        name, sep, target = value.partition("=")
        if sep and name in REPORTERS:
            if not target:
                raise _die(f"--output {value}: give a file after '='")
            extra.append((name, Path(target)))
        else:
            plain.append(Path(value))
    if len(plain) > 1:
        raise _die("--output FILE given twice; use --output FORMAT=FILE for more reports")
    return [(main_format, plain[0] if plain else None), *extra]


def _run(paths: list[Path], settings: Settings, progress: bool, jobs: int | None = None) -> Report:
    """Check every file; a transient progress bar on stderr when asked (interactive runs)."""
    from .parallel import iter_check_files

    files = list(iter_model_files(paths))
    if not progress or len(files) <= PROGRESS_AFTER:
        return Report(files=list(iter_check_files(files, settings, jobs)))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    results = []
    with Progress(
        TextColumn("checking"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}", style="dim"), console=console, transient=True,
    ) as bar:
        task = bar.add_task("", total=len(files))
        for path, result in zip(files, iter_check_files(files, settings, jobs), strict=True):
            bar.update(task, description=Path(path).name)
            results.append(result)
            bar.advance(task)
    return Report(files=results)


def _interactive(stream: IO[str]) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def _statistics(report: Report, stream: IO[str]) -> None:
    """ruff-style counts per rule, most frequent first."""
    counts: dict[tuple[str, str], int] = {}
    severities: dict[str, str] = {}
    for finding in report.findings:
        counts[(finding.code, finding.name)] = counts.get((finding.code, finding.name), 0) + 1
        severities[finding.code] = finding.severity.value
    for (code, name), count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        stream.write(f"{count:>5}  {code}  {name:<28} {severities[code]}\n")


@app.command()
def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Model files or folders (default: the current folder)."),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", "--output-format", "-f", help="Report format."),
    ] = OutputFormat.text,
    output: Annotated[
        list[str],
        typer.Option(
            "--output", "-o",
            help="Write the report to FILE instead of stdout; FORMAT=FILE (sarif=out.sarif) "
            "writes one more report in FORMAT. Repeatable.",
        ),
    ] = [],  # noqa: B006 - typer needs a literal default
    select: Annotated[
        list[str], typer.Option("--select", help="Only these rule codes or prefixes (PI2, PI201).")
    ] = [],  # noqa: B006 - typer needs a literal default
    ignore: Annotated[
        list[str], typer.Option("--ignore", help="Skip these rule codes or prefixes.")
    ] = [],  # noqa: B006
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on", help="Lowest severity that makes the exit code 1 [default: error]."
        ),
    ] = None,
    exit_zero: Annotated[
        bool,
        typer.Option(
            "--exit-zero", help="Exit 0 even with findings (unreadable files still exit 2)."
        ),
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Hide the findings recorded in this baseline file."),
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(
            "--write-baseline", help="Record every current finding in this file and exit 0."
        ),
    ] = None,
    statistics: Annotated[
        bool, typer.Option("--statistics", help="Print the number of findings per rule.")
    ] = False,
    github_summary: Annotated[
        bool,
        typer.Option(
            "--github-summary",
            help="Also append a markdown report to $GITHUB_STEP_SUMMARY (GitHub Actions).",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the findings, one line each.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colors.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="pyproject.toml to read [tool.paraminspect] from."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1,
            help="Check files in N processes [default: one per core; small runs stay serial]. "
            "The report is the same as a serial run's.",
        ),
    ] = None,
) -> None:
    """Check model files for freezing mistakes."""
    settings = _settings(config, select, ignore, fail_on)
    targets = _outputs(output_format.value, output)
    accepted = None
    if baseline is not None:
        try:
            accepted = load_baseline(baseline)
        except BaselineError as exc:
            raise _die(str(exc)) from None
    progress = not quiet and _interactive(sys.stderr) and "CI" not in os.environ
    report = _run(paths or [Path(".")], settings, progress, jobs)

    if write_baseline is not None:
        try:
            write_baseline.write_text(baseline_dumps(report, settings.root), encoding="utf-8")
        except OSError as exc:
            raise _die(f"cannot write {write_baseline}: {exc.strerror or exc}") from None
        typer.echo(
            f"paraminspect: recorded {len(report.findings)} findings in {write_baseline}", err=True
        )
        raise typer.Exit(2 if report.has_errors else 0)

    hidden = 0
    if accepted is not None:
        report, hidden = apply_baseline(report, accepted, settings.root)

    rules: tuple[RuleInfo, ...] = ()
    if {name for name, _ in targets} & {"sarif", "junit"}:
        rules = rule_catalog(lambda code, name: settings.rule_enabled(code, name))
    color = not no_color and "NO_COLOR" not in os.environ
    for name, path in targets:
        if statistics and path is None:
            _statistics(report, sys.stdout)
            continue
        with _output(path) as stream:
            options = Options(
                color=color and path is None and stream.isatty(),
                quiet=quiet,
                fail_on=settings.fail_on,
                rules=rules,
            )
            get_reporter(name)(report, stream, options)
    if github_summary:
        _append_step_summary(report, settings)
    if hidden and not quiet:
        typer.echo(f"paraminspect: {hidden} findings hidden by the baseline {baseline}", err=True)

    code = report.exit_code(settings.fail_on)
    if exit_zero and code == 1:
        code = 0
    raise typer.Exit(code)


def _append_step_summary(report: Report, settings: Settings) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        typer.echo("paraminspect: --github-summary: $GITHUB_STEP_SUMMARY is not set", err=True)
        return
    with _output(Path(target), append=True) as stream:
        get_reporter("markdown")(report, stream, Options(color=False, fail_on=settings.fail_on))


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="A model file.")],
    policy: Annotated[
        bool,
        typer.Option("--policy", help="Mark the layers a [[tool.paraminspect.policy]] covers."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="pyproject.toml to read [tool.paraminspect] from."),
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colors.")] = False,
) -> None:
    """Show the freeze map: modules with trainable / frozen / mixed, train / eval and counts."""
    from .loaders import load
    from .reporters.freeze_map import render

    marks = None
    applicable = ()
    if policy:
        settings = _settings(config, [], [], None)
        applicable = tuple(p for p in settings.policies if p.applies_to(str(path), settings.root))
    try:
        graph = load(path)
    except (LoadError, Skip) as exc:
        raise _die(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a loader bug is reported in one line
        raise _die(f"{path}: internal error while reading ({type(exc).__name__}: {exc})") from None
    if policy:
        from .policy import coverage

        marks = coverage(graph, applicable)
    color = not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    render(graph, sys.stdout, Options(color=color), marks=marks)
    if policy:
        if applicable:
            labels = ", ".join(p.label for p in applicable)
            typer.echo(f"[policy: ...] marks what {labels} asks of a layer; "
                       f"`paraminspect check` reports where the file disagrees (PI401)")
        else:
            typer.echo("no [[tool.paraminspect.policy]] applies to this file")


@app.command("rules")
def list_rules() -> None:
    """List the rules."""
    from .docs import rule_doc
    from .rules import all_rules

    for rule in all_rules():
        doc = rule_doc(rule.code)
        summary = doc.summary.split(". ", 1)[0].rstrip(".") + "." if doc else ""
        typer.echo(f"{rule.code}  {rule.name:<28} {rule.severity.value:<8} {summary}")


@app.command("rule")
def show_rule(code: Annotated[str, typer.Argument(help="A rule code (PI201) or name.")]) -> None:
    """Print a rule's document."""
    from .docs import rule_doc
    from .rules import get_rule

    rule = get_rule(code)
    if rule is None:
        raise _die(f"no rule {code!r}; see `paraminspect rules`")
    doc = rule_doc(rule.code)
    if doc is None:
        raise _die(f"the document of {rule.code} is missing from this installation")
    typer.echo(doc.text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
