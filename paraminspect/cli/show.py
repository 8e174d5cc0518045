"""``paraminspect show``: the freeze map of one model, as text or as a self-contained HTML
picture, optionally marked with what the freeze policy asks of each layer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import UsageError, build_settings, color_option, config_option, open_output


def show_arguments(parser: argparse.ArgumentParser) -> None:
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
    config_option(parser)
    color_option(parser)


def show(args: argparse.Namespace) -> int:
    from ..errors import LoadError, Skip
    from ..loaders import load
    from ..reporters import Options

    if args.depth is not None and args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    marks = None
    applicable: tuple = ()
    if args.policy:
        settings = build_settings(args)
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
        from ..policy import coverage

        marks = coverage(graph, applicable)
    stream = open_output(args.output)
    try:
        if args.format == "html":
            from ..engine import check_graph
            from ..reporters.freeze_html import render as render_html

            render_html(graph, check_graph(graph, build_settings(args)), stream)
        else:
            from ..reporters.freeze_map import render

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
