"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

One ``reportingDescriptor`` per rule (from :class:`~paraminspect.reporters.RuleInfo`: the registry
plus the rule's document), one result per finding. A result points at the checkpoint file
(``physicalLocation``; ``region.startLine`` 1, since a binary file has no lines and GitHub needs a
line to show the alert) and at the layer path as a ``logicalLocation``. ``partialFingerprints``
carry paraminspect's own stable fingerprint, so GitHub never tries to hash a binary file's lines.
"""

from __future__ import annotations

import json

from ..findings import FileReport, Finding, Report, Severity
from . import REPOSITORY_URL, Options, RuleInfo, repo_path
from .style import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "paraminspect/v1"


def sarif_level(severity: Severity) -> str:
    """The one place severities map to SARIF levels."""
    return {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}[
        severity
    ]


def _descriptor(rule: RuleInfo) -> dict[str, object]:
    short = rule.summary or rule.name
    descriptor: dict[str, object] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": rule.description or short},
        "defaultConfiguration": {"level": sarif_level(rule.severity)},
        "properties": {"tags": ["paraminspect", "checkpoint"]},
    }
    if rule.help_uri:
        descriptor["helpUri"] = rule.help_uri
    if rule.doc or rule.fix:
        descriptor["help"] = {"text": rule.fix or short, "markdown": rule.doc or rule.fix}
    return descriptor


def _rules(report: Report, options: Options) -> list[RuleInfo]:
    """The catalog, plus a bare descriptor for any finding's rule the catalog lacks."""
    rules = {rule.code: rule for rule in options.rules}
    for finding in report.findings:
        rules.setdefault(finding.code, RuleInfo(finding.code, finding.name, finding.severity))
    return [rules[code] for code in sorted(rules)]


def artifact_uri(path: str) -> str:
    """A relative URI for ``path``: percent-encoded bytes, so a file name that is not UTF-8 (or
    holds spaces) is still a valid URI."""
    from urllib.parse import quote

    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def _result(file: FileReport, finding: Finding, index: int) -> dict[str, object]:
    uri = repo_path(file.path)
    location: dict[str, object] = {
        "physicalLocation": {
            "artifactLocation": {"uri": artifact_uri(uri), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": 1},
        }
    }
    if any(finding.all_locations):
        location["logicalLocations"] = [
            {"fullyQualifiedName": loc, "name": loc.rsplit(".", 1)[-1], "kind": "module"}
            for loc in finding.all_locations
            if loc
        ]
    where = finding.location or "(model)"
    if finding.count > 1:
        where += f" and {finding.count - 1} more"
    text = f"{where}: {finding.message}"
    result: dict[str, object] = {
        "ruleId": finding.code,
        "ruleIndex": index,
        "level": sarif_level(finding.severity),
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint(uri)},
    }
    if finding.fix or finding.paths or finding.evidence or finding.count > 1:
        result["properties"] = {
            "fix": finding.fix,
            "paths": list(finding.paths),
            "evidence": finding.evidence,
            "locations": list(finding.all_locations),
        }
    return result


def sarif_log(report: Report, options: Options) -> dict[str, object]:
    from .. import __version__

    rules = _rules(report, options)
    index = {rule.code: i for i, rule in enumerate(rules)}
    results = [
        _result(file, finding, index[finding.code])
        for file in report.files
        for finding in file.findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{printable(repo_path(file.path))}: cannot be read: {file.error}"},
            "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(repo_path(file.path)),
                                                          "uriBaseId": "%SRCROOT%"}}}
            ],
        }
        for file in report.files
        if file.error
    ] + [
        {"level": "note",
         "message": {"text": f"{printable(repo_path(file.path))}: skipped: {file.skipped}"}}
        for file in report.files
        if file.skipped
    ]
    invocation: dict[str, object] = {"executionSuccessful": not report.has_errors}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "paraminspect",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": REPOSITORY_URL,
                        "rules": [_descriptor(rule) for rule in rules],
                    }
                },
                "invocations": [invocation],
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def render(report: Report, stream: TextIO, options: Options) -> None:
    json.dump(sarif_log(report, options), stream, indent=2)
    stream.write("\n")
