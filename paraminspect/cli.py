"""The ``paraminspect`` command: a thin shell over :mod:`paraminspect.api`.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage error or unreadable file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import IO, Annotated

import typer

from . import __version__
from .config import ConfigError, Settings, load_settings, parse_fail_on, split_codes
from .engine import check_paths
from .errors import LoadError, Skip
from .reporters import Options, get_reporter

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


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


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
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8")
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


@app.command()
def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Model files or folders (default: the current folder)."),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Report format.")
    ] = OutputFormat.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the findings, one line each.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colors.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="pyproject.toml to read [tool.paraminspect] from."),
    ] = None,
) -> None:
    """Check model files for freezing mistakes."""
    settings = _settings(config, select, ignore, fail_on)
    report = check_paths(paths or [Path(".")], settings)
    renderer = get_reporter(output_format.value)
    with _output(output) as stream:
        color = not no_color and output is None and stream.isatty()
        renderer(report, stream, Options(color=color, quiet=quiet))
    raise typer.Exit(report.exit_code(settings.fail_on))


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="A model file.")],
    no_color: Annotated[bool, typer.Option("--no-color", help="No colors.")] = False,
) -> None:
    """Show the freeze map: modules with trainable / frozen / mixed, train / eval and counts."""
    from .loaders import load
    from .reporters.freeze_map import render

    try:
        graph = load(path)
    except (LoadError, Skip) as exc:
        raise _die(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a loader bug is reported in one line
        raise _die(f"{path}: internal error while reading ({type(exc).__name__}: {exc})") from None
    render(graph, sys.stdout, Options(color=not no_color and sys.stdout.isatty()))


@app.command("rules")
def list_rules() -> None:
    """List the rules."""
    from .docs import rule_doc
    from .rules import all_rules

    for rule in all_rules():
        doc = rule_doc(rule.code)
        summary = doc.summary if doc else ""
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
