"""``paraminspect diff BEFORE AFTER``: prove freezing mistakes from two checkpoints of one run.

Unlike ``check``, this reads tensor bytes: both files are loaded as graphs (names, trainability,
optimizer state, as ``check`` sees them), then every tensor present in both is compared window by
window (:mod:`.compare`), and the PI5xx rules read the result (:class:`.model.Diff`). The answer
is an ordinary :class:`~paraminspect.findings.Report` (one entry, for AFTER) so every reporter and
exit code works unchanged, plus a per-module summary in :attr:`DiffReport.modules`.

    from paraminspect.diff import diff_paths
    report = diff_paths("epoch0.pt", "epoch5.safetensors", atol=0, rtol=0, jobs=2)
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import LoadError, Skip
from ..findings import FileReport, Finding, Report
from ..graph import ModelGraph
from .compare import Delta, Tolerance, compare_all
from .model import Diff, merge_intents
from .summary import ModuleRow, fold_modules
from .tensors import TensorData, open_tensors

__all__ = ["DiffReport", "diff_paths", "diff_graphs"]


class DiffReport(Report):
    """A :class:`Report` plus what only a diff knows."""

    __slots__ = ("before", "after", "tolerance", "counts_by_status", "modules", "notes")
    before: str
    after: str
    tolerance: Tolerance
    counts_by_status: dict[str, int]
    modules: list[ModuleRow]
    notes: list[str]

    def __init__(
        self, files: list[FileReport] | None = None, before: str = "", after: str = "",
        tolerance: Tolerance | None = None, counts_by_status: dict[str, int] | None = None,
        modules: list[ModuleRow] | None = None, notes: list[str] | None = None,
    ) -> None:
        super().__init__(files)
        self.before = before
        self.after = after
        self.tolerance = Tolerance() if tolerance is None else tolerance
        self.counts_by_status = {} if counts_by_status is None else counts_by_status
        self.modules = [] if modules is None else modules
        self.notes = [] if notes is None else notes

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["diff"] = {
            "before": self.before,
            "after": self.after,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "tensors": dict(self.counts_by_status),
            "modules": [row.to_dict() for row in self.modules],
            "notes": list(self.notes),
        }
        return data


def _load(path: Path) -> ModelGraph:
    from ..loaders import load

    try:
        return load(path)
    except Skip as skip:
        raise LoadError(str(skip)) from None


def diff_paths(
    before: str | Path,
    after: str | Path,
    settings: Settings | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    jobs: int = 1,
) -> DiffReport:
    """Compare two checkpoints. Never raises for bad input: an unreadable file is an entry with
    ``error`` set (exit code 2), like in ``check``."""
    from ..engine import summarize
    from ..rules.base import Issue
    from ..rules.unreadable_file import UnreadableFile

    settings = settings or Settings()
    tolerance = Tolerance(atol=atol, rtol=rtol)
    report = DiffReport(before=str(before), after=str(after), tolerance=tolerance)
    loaded: list[tuple[ModelGraph, dict[str, TensorData]]] = []
    for path in (Path(before), Path(after)):
        entry = FileReport(path=str(path))
        try:
            graph = _load(path)
            loaded.append((graph, open_tensors(path, graph)))
        except LoadError as exc:
            entry.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a reader bug is reported, never a traceback
            entry.error = f"internal error while reading ({type(exc).__name__}: {exc})"
        if entry.error:
            if settings.rule_enabled(UnreadableFile.code, UnreadableFile.name, entry.path):
                entry.findings = [UnreadableFile.finding(Issue(location="", message=entry.error))]
            report.files.append(entry)
    if len(loaded) < 2:
        return report
    (first, data_a), (second, data_b) = loaded
    entry = FileReport(path=str(after), format=second.format, content=second.content)
    entry.summary = summarize(second)
    try:
        entry.findings = diff_graphs(first, second, data_a, data_b, settings, tolerance, jobs,
                                     report)
    except (OSError, ValueError) as exc:
        entry.error = f"cannot read tensor bytes ({type(exc).__name__}: {exc})"
    report.files.append(entry)
    return report


def _match_names(before: ModelGraph, after: ModelGraph) -> dict[str, str]:
    """AFTER name -> BEFORE name. Same names, or the same names under one extra leading prefix
    on one side (``model.`` of a Lightning checkpoint against a bare state dict)."""
    names_a, names_b = set(before.tensors), set(after.tensors)
    if len(names_a & names_b) * 2 >= min(len(names_a), len(names_b)):
        return {}
    for prefixed, plain, after_has_it in ((names_b, names_a, True), (names_a, names_b, False)):
        heads = {n.split(".", 1)[0] for n in prefixed}
        if len(heads) != 1 or not all("." in n for n in prefixed):
            continue
        head = heads.pop() + "."
        if after_has_it:
            mapping = {n: n[len(head):] for n in prefixed if n[len(head):] in plain}
        else:
            mapping = {n: head + n for n in plain if head + n in prefixed}
        if len(mapping) * 2 >= len(plain):
            return mapping
    return {}


def diff_graphs(
    before: ModelGraph,
    after: ModelGraph,
    data_a: dict[str, TensorData],
    data_b: dict[str, TensorData],
    settings: Settings,
    tolerance: Tolerance,
    jobs: int = 1,
    report: DiffReport | None = None,
) -> list[Finding]:
    """Compare the tensors of two loaded graphs (``data_*``: their readers, from
    :func:`.tensors.open_tensors`) and run the diff rules. Fills ``report``'s summary fields
    when given."""
    from ..rules import all_rules

    renamed = _match_names(before, after)
    deltas: dict[str, Delta] = {}
    pairs = []
    for name, tensor in after.tensors.items():
        other = renamed.get(name, name)
        old = before.tensors.get(other)
        if old is None:
            deltas[name] = Delta(name, "missing-before", numel=tensor.numel or 0)
            continue
        if old.shape is not None and tensor.shape is not None and old.shape != tensor.shape:
            deltas[name] = Delta(name, "reshaped", numel=tensor.numel or 0,
                                 detail=f"{list(old.shape)} -> {list(tensor.shape)}")
            continue
        a, b = data_a.get(other), data_b.get(name)
        if a is None or b is None or a.shape != b.shape:
            deltas[name] = Delta(name, "unread", numel=tensor.numel or 0,
                                 detail="tensor bytes not readable in this format")
            continue
        a.name = b.name = name
        pairs.append((a, b))
    matched = {renamed.get(n, n) for n in after.tensors}
    for name, tensor in before.tensors.items():
        if name not in matched:
            deltas[name] = Delta(name, "missing-after", numel=tensor.numel or 0)
    deltas.update(compare_all(pairs, tolerance, jobs))

    diff = Diff(before=before, after=after, tolerance=tolerance, deltas=deltas, renamed=renamed,
                intents=merge_intents(before, after, renamed, settings), settings=settings)
    findings: list[Finding] = []
    for rule_cls in all_rules():
        check_diff = getattr(rule_cls, "check_diff", None)
        if check_diff is None or not settings.rule_enabled(rule_cls.code, rule_cls.name,
                                                           after.path):
            continue
        findings.extend(rule_cls.finding(issue) for issue in rule_cls(settings).check_diff(diff))
    if report is not None:
        counts: dict[str, int] = {}
        for delta in deltas.values():
            counts[delta.status] = counts.get(delta.status, 0) + 1
        report.counts_by_status = counts
        report.modules = fold_modules(diff)
        if renamed:
            report.notes.append("names matched after removing a prefix only BEFORE carries")
        unread = counts.get("unread", 0)
        if unread:
            report.notes.append(f"{unread} tensor(s) not compared: their bytes are not readable")
    return findings

