"""The ``paraminspect`` command: a thin shell over :mod:`paraminspect.api`.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage error or unreadable file,
3 a named folder held no model that could be checked.

Plain :mod:`argparse`, and every other import deferred to the command that needs it, so
``paraminspect check small.pt`` starts in a few tens of milliseconds. This module holds the
parser, the dispatch and what the commands share; each command lives in a module of this package
that is imported only when it runs. A subcommand is one line in :data:`COMMANDS` plus, in its
module, a function running it and a function adding its arguments; an option is one
``add_argument`` line in that function.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO

    from ..config import Settings

PROG = "paraminspect"
DESCRIPTION = "Find freezing mistakes in model checkpoints without executing them."
FORMATS = ("text", "json", "github", "sarif", "markdown", "junit")
FAIL_ON = ("error", "warning", "info", "never")


class UsageError(Exception):
    """A mistake in how paraminspect was called or configured: one line, exit 2."""


class Command:
    """A subcommand: its name, its help line, and the ``module:function`` (in this package) that
    adds its arguments and the one that runs it (``run(args) -> exit code``)."""

    __slots__ = ("name", "help", "arguments", "run")

    def __init__(self, name: str, help: str, arguments: str, run: str) -> None:
        self.name = name
        self.help = help
        self.arguments = arguments
        self.run = run


#: subcommand name -> Command, in the order ``paraminspect -h`` lists them. A command's module is
#: imported only when the command runs: ``check`` never loads the ``show`` or ``diff`` code.
COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("check", "Check model files for freezing mistakes.",
                "check:check_arguments", "check:check"),
        Command("show", "Show the freeze map: modules with trainable / frozen / mixed, train / "
                "eval and counts.", "show:show_arguments", "show:show"),
        Command("diff", "Compare two checkpoints of one run: frozen weights that moved, drifted "
                "BatchNorm statistics, trainable weights that never changed, optimizer step "
                "counters.", "diff:diff_arguments", "diff:diff"),
        Command("rules", "List the rules.", "rules:list_rules_arguments", "rules:list_rules"),
        Command("rule", "Print a rule's document.", "rules:rule_arguments", "rules:show_rule"),
    )
}


def say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")


# -- shared by the commands ----------------------------------------------------------------------
def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="pyproject.toml to read [tool.paraminspect] from (default: the nearest one).",
    )


def color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-color", action="store_true", help="No colors (so does NO_COLOR).")


def build_settings(args: argparse.Namespace) -> Settings:
    """Config file first, flags on top; every selector checked against the rule registry."""
    from ..config import ConfigError, load_settings, parse_fail_on, split_codes, validate_selectors
    from ..record import replace

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


def open_output(path: Path | None, append: bool = False) -> IO[str]:
    if path is None:
        return sys.stdout
    try:
        return open(path, "a" if append else "w", encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- entry point ---------------------------------------------------------------------------------
def _function(target: str) -> Callable:
    """The function a ``module:function`` in this package names, importing its module."""
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module_name}"), function_name)


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
    _function(cmd.arguments)(parser)
    return parser


def run(argv: list[str]) -> int:
    """Parse ``argv`` (without the program name) and run the command; returns the exit code."""
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    top = _top_parser()
    head = top.parse_args(argv[: split + 1])  # -h, --version and the command name
    if head.version:
        from .. import __version__

        sys.stdout.write(f"{PROG} {__version__}\n")
        return 0
    if head.command is None:
        top.print_help()
        return 2
    cmd = COMMANDS[head.command]
    args = _command_parser(cmd).parse_intermixed_args(argv[split + 1:])
    try:
        return _function(cmd.run)(args)
    except UsageError as exc:
        say(f"error: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug of ours is one line, never a traceback
        if os.environ.get("PARAMINSPECT_DEBUG"):
            raise
        say(f"internal error: {type(exc).__name__}: {exc} (PARAMINSPECT_DEBUG=1 shows where)")
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
