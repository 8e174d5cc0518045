"""Reporters turn a :class:`~paraminspect.findings.Report` into text. They know nothing of
formats or rules beyond what a Finding carries (plus the optional rule catalog in
:class:`Options`). Each is imported only when asked for."""

from __future__ import annotations

import importlib

from ..findings import Severity
from ..record import FrozenRecord, assign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from ..findings import Report

    #: a reporter: writes ``report`` to ``stream``
    Renderer = Callable[[Report, TextIO, "Options"], None]

#: --format name -> "module:function" in this package
REPORTERS: dict[str, str] = {
    "text": "text:render",
    "json": "json_report:render",
    "github": "github:render",
    "sarif": "sarif:render",
    "markdown": "markdown:render",
    "junit": "junit:render",
}

#: where rule documents are published (SARIF helpUri, markdown links)
REPOSITORY_URL = "https://github.com/paraminspect/paraminspect"


class RuleInfo(FrozenRecord):
    """What reports may say about a rule: from the registry and the rule's document."""

    __slots__ = ("code", "name", "severity", "summary", "description", "fix", "help_uri", "doc")
    code: str
    name: str
    severity: Severity
    summary: str  #: first paragraph of "What it does"
    description: str  #: "What it does" + "Why it matters"
    fix: str  #: the "Fix" section
    help_uri: str
    doc: str  #: the whole document (markdown)

    def __init__(
        self, code: str, name: str, severity: Severity, summary: str = "",
        description: str = "", fix: str = "", help_uri: str = "", doc: str = "",
    ) -> None:
        assign(self, "code", code)
        assign(self, "name", name)
        assign(self, "severity", severity)
        assign(self, "summary", summary)
        assign(self, "description", description)
        assign(self, "fix", fix)
        assign(self, "help_uri", help_uri)
        assign(self, "doc", doc)


class Options(FrozenRecord):
    """How a report is shown."""

    __slots__ = ("color", "quiet", "width", "fail_on", "rules", "show_evidence",
                 "freeze_map_link")
    color: bool
    quiet: bool
    width: int | None
    #: lowest severity that fails the run (JUnit failures, annotation wording); None = never
    fail_on: Severity | None
    #: the rules that ran, for reports that list rules (SARIF descriptors, JUnit test cases)
    rules: tuple[RuleInfo, ...]
    #: show each finding's evidence (how the file shows it) in human-facing reports
    show_evidence: bool
    #: where each file's HTML freeze map is published (``maps/{stem}.html``): the markdown
    #: report links to it; ``{path}``, ``{name}`` and ``{stem}`` are filled in per file
    freeze_map_link: str

    def __init__(
        self, color: bool = True, quiet: bool = False, width: int | None = None,
        fail_on: Severity | None = Severity.ERROR, rules: tuple[RuleInfo, ...] = (),
        show_evidence: bool = False, freeze_map_link: str = "",
    ) -> None:
        assign(self, "color", color)
        assign(self, "quiet", quiet)
        assign(self, "width", width)
        assign(self, "fail_on", fail_on)
        assign(self, "rules", rules)
        assign(self, "show_evidence", show_evidence)
        assign(self, "freeze_map_link", freeze_map_link)


def get_reporter(name: str) -> Renderer:
    target = REPORTERS.get(name)
    if target is None:
        raise KeyError(name)
    module_name, function = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    renderer: Renderer = getattr(module, function)
    return renderer


def rule_catalog(enabled: Callable[[str, str], bool] | None = None) -> tuple[RuleInfo, ...]:
    """Every registered rule (those ``enabled(code, name)`` accepts) with its document's prose."""
    from ..docs import rule_doc
    from ..rules import all_rules

    infos = []
    for rule in all_rules():
        if enabled is not None and not enabled(rule.code, rule.name):
            continue
        doc = rule_doc(rule.code)
        if doc is None:
            infos.append(RuleInfo(rule.code, rule.name, rule.severity, fix=rule.fix))
            continue
        description = "\n\n".join(
            part for part in (doc.section("What it does"), doc.section("Why it matters")) if part
        )
        infos.append(
            RuleInfo(
                code=rule.code,
                name=rule.name,
                severity=rule.severity,
                summary=doc.summary,
                description=description,
                fix=doc.section("Fix") or rule.fix,
                help_uri=f"{REPOSITORY_URL}/blob/main/rules/{doc.path.name}",
                doc=doc.text,
            )
        )
    return tuple(infos)


def repo_path(path: str, root: str | None = None) -> str:
    """``path`` relative to ``root`` (default: $GITHUB_WORKSPACE, else the current folder), with
    ``/``: what GitHub annotations, SARIF and CI test reports expect. Unchanged when outside."""
    import os
    from pathlib import Path

    base = Path(root or os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
    candidate = Path(path)
    try:
        return candidate.resolve().relative_to(base.resolve()).as_posix()
    except (ValueError, OSError):
        return candidate.as_posix()
