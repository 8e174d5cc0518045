"""What every guard shares: run the rules, remember what was said, warn once or raise."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterable

from ..config import Settings
from ..findings import FileReport, Finding, Report
from ..graph import ModelGraph
from .live import LiveState

logger = logging.getLogger("paraminspect.guard")


class GuardError(RuntimeError):
    """Raised by a strict guard before the optimizer step; ``findings`` says why."""

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


class GuardWarning(UserWarning):
    """Issued (once per finding) by a guard that is not strict."""


def static_findings(graph: ModelGraph, settings: Settings) -> list[Finding]:
    """The ordinary rules, as ``check`` runs them, on the live model's graph."""
    from ..engine import check_graph

    return check_graph(graph, settings)


def live_findings(live: LiveState, settings: Settings) -> list[Finding]:
    """The live-only rules (those with ``check_live``)."""
    from ..rules import all_rules

    findings: list[Finding] = []
    for rule_cls in all_rules():
        check_live = getattr(rule_cls, "check_live", None)
        if check_live is None or not settings.rule_enabled(rule_cls.code, rule_cls.name):
            continue
        findings.extend(rule_cls.finding(i) for i in rule_cls(settings).check_live(live))
    return findings


class Reporter:
    """Says each finding once: a warning (and a log record) by default, an exception if strict."""

    def __init__(self, name: str, strict: bool, settings: Settings | None) -> None:
        self.name = name
        self.strict = strict
        self.settings = settings or Settings()
        self.seen: set[tuple[str, str]] = set()
        #: every finding reported so far, in order
        self.findings: list[Finding] = []

    def emit(self, findings: Iterable[Finding], when: str) -> None:
        new = [f for f in findings if (f.code, f.location) not in self.seen]
        if not new:
            return
        for finding in new:
            self.seen.add((finding.code, finding.location))
        self.findings.extend(new)
        text = self.render(new, when)
        if self.strict:
            raise GuardError(text, new)
        logger.warning(text)
        warnings.warn(text, GuardWarning, stacklevel=4)

    def render(self, findings: list[Finding], when: str) -> str:
        from ..reporters import Options, get_reporter

        stream = io.StringIO()
        report = Report(files=[FileReport(path=self.name, findings=findings)])
        get_reporter("text")(report, stream, Options(color=False, quiet=True, width=400))
        return f"paraminspect guard ({when}):\n{stream.getvalue().rstrip()}"
