"""Findings and reports: what the engine returns and every reporter serializes."""

from __future__ import annotations

from enum import Enum

from .record import FrozenRecord, Record, asdict, assign, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


class Finding(FrozenRecord):
    """One mistake. ``location`` is where it is (the first place when it repeats),
    ``locations`` every place the same rule fired for the same reason (empty for one place),
    ``paths`` every tensor or layer it concerns, ``evidence`` how the file shows it (provenance).

    ``message`` says what is wrong and why it matters, ``fix`` how to fix it; neither repeats
    the location, so one finding can stand for many layers.
    """

    __slots__ = ("code", "name", "severity", "location", "message", "fix", "paths", "evidence",
                 "locations")
    code: str
    name: str
    severity: Severity
    location: str
    message: str
    fix: str
    paths: tuple[str, ...]
    evidence: str
    locations: tuple[str, ...]

    def __init__(
        self, code: str, name: str, severity: Severity, location: str, message: str,
        fix: str = "", paths: tuple[str, ...] = (), evidence: str = "",
        locations: tuple[str, ...] = (),
    ) -> None:
        assign(self, "code", code)
        assign(self, "name", name)
        assign(self, "severity", severity)
        assign(self, "location", location)
        assign(self, "message", message)
        assign(self, "fix", fix)
        assign(self, "paths", paths)
        assign(self, "evidence", evidence)
        assign(self, "locations", locations)

    @property
    def all_locations(self) -> tuple[str, ...]:
        """Every location, the first one included."""
        return self.locations or (self.location,)

    @property
    def count(self) -> int:
        """How many places the mistake was found in."""
        return len(self.all_locations)

    def fingerprint(self, path: str) -> str:
        """This finding's stable id in the file at ``path`` (see :func:`fingerprint`)."""
        return fingerprint(path, self.code, self.location)

    def fingerprints(self, path: str) -> list[str]:
        """One stable id per location (baselines accept locations one by one)."""
        return [fingerprint(path, self.code, location) for location in self.all_locations]

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["paths"] = list(self.paths)
        data["locations"] = list(self.all_locations)
        data["count"] = self.count
        return data


def group_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per mistake: findings of one rule with the same severity, message and fix
    (the same reason) merge into one that lists every location, in first-seen order."""
    groups: dict[tuple[str, Severity, str, str], list[Finding]] = {}
    for finding in findings:
        key = (finding.code, finding.severity, finding.message, finding.fix)
        groups.setdefault(key, []).append(finding)
    merged = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(members[0])
            continue
        first = members[0]
        locations = tuple(dict.fromkeys(loc for f in members for loc in f.all_locations))
        paths = tuple(dict.fromkeys(p for f in members for p in f.paths))
        evidence = "; ".join(dict.fromkeys(f.evidence for f in members if f.evidence))
        merged.append(
            replace(first, locations=locations if len(locations) > 1 else (), paths=paths,
                    evidence=evidence)
        )
    return merged


def fingerprint(path: str, code: str, location: str) -> str:
    """A stable id for a finding: file path, code and location only, so rewording a message or
    re-saving the file does not make an old finding new (baselines, SARIF partialFingerprints)."""
    import hashlib  # only reports that carry fingerprints pay for it

    key = "\0".join((path, code, location))
    # surrogateescape: a file name that is not UTF-8 keeps its own bytes, and its own id
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class Summary(FrozenRecord):
    """Element counts. Trainable/frozen counts are None where trainability is unknown."""

    __slots__ = ("layers", "params", "trainable_params", "frozen_params", "buffers",
                 "trainability")
    layers: int
    params: int
    trainable_params: int | None
    frozen_params: int | None
    buffers: int
    trainability: str

    def __init__(
        self, layers: int = 0, params: int = 0, trainable_params: int | None = None,
        frozen_params: int | None = None, buffers: int = 0, trainability: str = "unknown",
    ) -> None:
        assign(self, "layers", layers)
        assign(self, "params", params)
        assign(self, "trainable_params", trainable_params)
        assign(self, "frozen_params", frozen_params)
        assign(self, "buffers", buffers)
        assign(self, "trainability", trainability)


class FileReport(Record):
    __slots__ = ("path", "format", "content", "error", "summary", "findings", "skipped")
    path: str
    format: str | None
    content: str | None
    error: str | None
    summary: Summary
    findings: list[Finding]
    skipped: str | None  #: why a file was deliberately not checked (not an error)

    def __init__(
        self, path: str, format: str | None = None, content: str | None = None,  # noqa: A002
        error: str | None = None, summary: Summary | None = None,
        findings: list[Finding] | None = None, skipped: str | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self.content = content
        self.error = error
        self.summary = Summary() if summary is None else summary
        self.findings = [] if findings is None else findings
        self.skipped = skipped

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


class Report(Record):
    __slots__ = ("files",)
    files: list[FileReport]

    def __init__(self, files: list[FileReport] | None = None) -> None:
        self.files = [] if files is None else files

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
