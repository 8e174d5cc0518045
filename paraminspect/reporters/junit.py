"""JUnit XML as GitLab (``artifacts:reports:junit``) and Jenkins read it.

One ``<testsuite>`` per checked file, one ``<testcase>`` per rule (the rules that ran, from
:class:`~paraminspect.reporters.Options`, plus any rule with findings). A rule fails when it has
a finding at or above ``fail_on``; findings below it pass, listed in ``<system-out>``. An
unreadable file has one erroring "read file" case and its rules skipped (they could not run); a
skipped file (Git LFS pointer) has one skipped case.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..findings import FileReport, Finding, Report
from . import Options, repo_path
from .style import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

#: characters XML 1.0 cannot carry at all
_INVALID_XML = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
READ_CASE = "read file"


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", printable(text))


def _lines(findings: list[Finding]) -> str:
    out = []
    for finding in findings:
        where = ", ".join(loc or "(model)" for loc in finding.all_locations)
        out.append(f"{where}: {finding.code} [{finding.severity.value}] {finding.message}")
        if finding.fix:
            out.append(f"    fix: {finding.fix}")
    return _clean("\n".join(out))


def _fails(finding: Finding, options: Options) -> bool:
    return options.fail_on is not None and finding.severity.rank >= options.fail_on.rank


def _suite(file: FileReport, options: Options) -> ET.Element:
    path = repo_path(file.path)
    suite = ET.Element("testsuite", name=_clean(path))
    if file.format:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="format", value=_clean(str(file.format)))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(name: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=_clean(path), name=_clean(name),
                             file=_clean(path))

    if file.skipped:
        ET.SubElement(case(READ_CASE), "skipped", message=_clean(file.skipped))
        counts["skipped"] += 1
    elif file.error:
        error = ET.SubElement(case(READ_CASE), "error", message=_clean(file.error),
                              type="unreadable")
        error.text = _lines(file.findings) or _clean(file.error)
        counts["errors"] += 1
        for rule in options.rules:
            if rule.code not in {f.code for f in file.findings}:
                ET.SubElement(case(f"{rule.code} {rule.name}"), "skipped",
                              message="not checked: the file could not be read")
                counts["skipped"] += 1
    else:
        by_code: dict[str, list[Finding]] = {rule.code: [] for rule in options.rules}
        names = {rule.code: rule.name for rule in options.rules}
        for finding in file.findings:
            by_code.setdefault(finding.code, []).append(finding)
            names[finding.code] = finding.name
        if not by_code:  # no catalog and nothing found: one passing case, not an empty suite
            case("paraminspect")
        for rule_code in sorted(by_code):
            findings = by_code[rule_code]
            testcase = case(f"{rule_code} {names[rule_code]}")
            failing = [f for f in findings if _fails(f, options)]
            if failing:
                worst = max((f.severity for f in failing), key=lambda s: s.rank)
                failure = ET.SubElement(
                    testcase, "failure", type=worst.value,
                    message=_clean(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}: "
                                   f"{findings[0].message}")[:500],
                )
                failure.text = _lines(findings)
                counts["failures"] += 1
            elif findings:
                ET.SubElement(testcase, "system-out").text = _lines(findings)
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def junit_tree(report: Report, options: Options) -> ET.ElementTree:
    root = ET.Element("testsuites", name="paraminspect")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for file in report.files:
        suite = _suite(file, options)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.ElementTree(root)


def render(report: Report, stream: TextIO, options: Options) -> None:
    tree = junit_tree(report, options)
    ET.indent(tree)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    stream.write(ET.tostring(tree.getroot(), encoding="unicode"))
    stream.write("\n")
