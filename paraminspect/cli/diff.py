"""``paraminspect diff``: its arguments and the check of its rule selectors; the comparison of
two checkpoints itself is :mod:`paraminspect.diff.command`."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import FAIL_ON, FORMATS, UsageError, color_option, config_option


def diff_arguments(parser: argparse.ArgumentParser) -> None:
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
    color_option(parser)
    config_option(parser)


def diff(args: argparse.Namespace) -> int:
    from ..config import ConfigError, split_codes, validate_selectors
    from ..diff.command import run

    try:
        validate_selectors(split_codes(args.select), "--select")
        validate_selectors(split_codes(args.ignore), "--ignore")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return run(
        args.before, args.after, args.format, args.output, args.atol, args.rtol, args.jobs,
        args.select, args.ignore, args.fail_on, args.config, args.quiet, args.no_color,
    )
