"""Baselines: findings accepted once (``--write-baseline``) and hidden afterwards (``--baseline``).

A finding is identified by its file path (relative to the project root, with ``/``), its code and
its location: never by a message or a byte offset, so a re-saved checkpoint or a reworded message
keeps its baseline entry, and a new finding (another layer, another rule, another file) still fails.
Entries are counted, so a second identical finding is new. This module reads and builds data; the
CLI writes the file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .findings import FileReport, Report, fingerprint
from .record import replace

BASELINE_VERSION = 1


class BaselineError(Exception):
    """The baseline file cannot be read; the message is one line."""


def project_path(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators, or as given when outside it."""
    candidate = Path(path)
    try:
        return candidate.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return candidate.as_posix()


@dataclass(frozen=True)
class Baseline:
    """Accepted findings as fingerprints, with how many of each were accepted."""

    counts: Counter[str]

    def __len__(self) -> int:
        return sum(self.counts.values())


def baseline_data(report: Report, root: Path) -> dict[str, object]:
    """The JSON document ``--write-baseline`` saves: every finding of ``report``."""
    from . import __version__

    entries = []
    for file in report.files:
        path = project_path(file.path, root)
        for finding in file.findings:
            # one entry per location: a grouped finding that later reaches one more layer
            # shows that layer as new, and the entries stay valid whatever the grouping
            for location in finding.all_locations:
                entries.append(
                    {
                        "fingerprint": fingerprint(path, finding.code, location),
                        "path": path,
                        "code": finding.code,
                        "name": finding.name,
                        "location": location,
                    }
                )
    entries.sort(key=lambda e: (e["path"], e["code"], e["location"]))
    return {"paraminspect-baseline": BASELINE_VERSION, "generator": __version__, "findings": entries}


def dumps(report: Report, root: Path) -> str:
    return json.dumps(baseline_data(report, root), indent=2) + "\n"


def load_baseline(path: Path) -> Baseline:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: not a JSON baseline ({exc})") from None
    if not isinstance(data, dict) or data.get("paraminspect-baseline") != BASELINE_VERSION:
        raise BaselineError(
            f"{path}: not a paraminspect baseline (version {BASELINE_VERSION}); "
            "write one with --write-baseline"
        )
    counts: Counter[str] = Counter()
    for entry in data.get("findings", []):
        try:
            # Recomputed from the readable fields, so a hand-edited entry means what it says.
            key = fingerprint(str(entry["path"]), str(entry["code"]), str(entry["location"]))
        except (KeyError, TypeError):
            raise BaselineError(f"{path}: an entry lacks path, code or location") from None
        counts[key] += 1
    return Baseline(counts)


def apply_baseline(report: Report, baseline: Baseline, root: Path) -> tuple[Report, int]:
    """``report`` without the findings the baseline accepts, and how many were hidden.

    Unreadable files stay errors: a baseline hides findings, never a file it could not check.
    """
    remaining = Counter(baseline.counts)
    hidden = 0
    files: list[FileReport] = []
    for file in report.files:
        path = project_path(file.path, root)
        kept = []
        for finding in file.findings:
            left = []
            for location in finding.all_locations:
                key = fingerprint(path, finding.code, location)
                if remaining[key] > 0:
                    remaining[key] -= 1
                    hidden += 1
                else:
                    left.append(location)
            if not left:
                continue
            if len(left) == finding.count:
                kept.append(finding)
            else:  # part of a grouped finding is accepted: keep the rest, first location first
                kept.append(replace(finding, location=left[0],
                                    locations=tuple(left) if len(left) > 1 else ()))
        files.append(replace(file, findings=kept))
    return Report(files=files), hidden
