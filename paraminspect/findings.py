"""Findings and reports: what the engine returns and every reporter serializes."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True)
class Finding:
    """One problem at one location. ``paths`` lists every tensor or layer it concerns."""

    code: str
    name: str
    severity: Severity
    location: str
    message: str
    fix: str = ""
    paths: tuple[str, ...] = ()

    def fingerprint(self, path: str) -> str:
        """This finding's stable id in the file at ``path`` (see :func:`fingerprint`)."""
        return fingerprint(path, self.code, self.location)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["paths"] = list(self.paths)
        return data


def fingerprint(path: str, code: str, location: str) -> str:
    """A stable id for a finding: file path, code and location only, so rewording a message or
    re-saving the file does not make an old finding new (baselines, SARIF partialFingerprints)."""
    key = "\0".join((path, code, location))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Summary:
    """Element counts. Trainable/frozen counts are None where trainability is unknown."""

    layers: int = 0
    params: int = 0
    trainable_params: int | None = None
    frozen_params: int | None = None
    buffers: int = 0
    trainability: str = "unknown"


@dataclass
class FileReport:
    path: str
    format: str | None = None
    content: str | None = None
    error: str | None = None
    summary: Summary = field(default_factory=Summary)
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None  #: why a file was deliberately not checked (not an error)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "content": self.content,
            "error": self.error,
            "skipped": self.skipped,
            "summary": asdict(self.summary),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class Report:
    files: list[FileReport] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for file in self.files for f in file.findings]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    @property
    def has_errors(self) -> bool:
        """True when some file could not be read."""
        return any(f.error for f in self.files)

    def exit_code(self, fail_on: Severity | None) -> int:
        """0 clean, 1 findings at or above ``fail_on``, 2 a file could not be read."""
        if self.has_errors:
            return 2
        if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in self.findings):
            return 1
        return 0

    def to_dict(self) -> dict[str, object]:
        from . import __version__

        return {
            "paraminspect": __version__,
            "files": [f.to_dict() for f in self.files],
            "counts": self.counts(),
        }
