"""``paraminspect rules`` and ``paraminspect rule``: the rule list, and one rule's document."""

from __future__ import annotations

import argparse
import sys

from . import UsageError


def list_rules_arguments(parser: argparse.ArgumentParser) -> None:
    """``rules`` takes no options."""


def list_rules(args: argparse.Namespace) -> int:
    from ..docs import rule_doc
    from ..rules import all_rules

    for rule in all_rules():
        doc = rule_doc(rule.code)
        summary = doc.summary.split(". ", 1)[0].rstrip(".") + "." if doc else ""
        sys.stdout.write(f"{rule.code}  {rule.name:<28} {rule.severity.value:<8} {summary}\n")
    return 0


def rule_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", metavar="CODE", help="A rule code (PI201) or name.")


def show_rule(args: argparse.Namespace) -> int:
    from ..docs import rule_doc
    from ..rules import all_rules, get_rule

    rule = get_rule(args.code)
    if rule is None:
        codes = ", ".join(r.code for r in all_rules())
        raise UsageError(f"no rule {args.code!r}; choose one of {codes}")
    doc = rule_doc(rule.code)
    if doc is None:
        raise UsageError(f"the document of {rule.code} is missing from this installation")
    sys.stdout.write(doc.text.rstrip("\n") + "\n")
    return 0
