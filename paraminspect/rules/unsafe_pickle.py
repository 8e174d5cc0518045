"""PI002 unsafe-pickle: the file would run code when loaded.

The pickle policy (``paraminspect.loaders.pickle.policy``) decides what is dangerous and records
its verdict on each code reference; this rule only reports those verdicts.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import CodeReference, ModelGraph
from .base import Issue, Rule

_TIERS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


class UnsafePickle(Rule):
    code = "PI002"
    name = "unsafe-pickle"
    severity = Severity.ERROR
    fix = (
        "Do not load this file with pickle or torch.load(weights_only=False). Re-export the "
        "weights from a trusted source as a state dict or safetensors."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for ref in graph.code_references:
            verdict = _report(ref)
            if verdict is not None:
                severity, message = verdict
                yield Issue(
                    location=ref.location, message=message, severity=severity, paths=(ref.target,)
                )


def _report(ref: CodeReference) -> tuple[Severity, str] | None:
    where = ""  # the location is the finding's own field
    if ref.how == "bytecode":
        return Severity.ERROR, (
            f"serialized Python bytecode{where} ({ref.target}): loading the model would run it"
        )
    severity = _TIERS.get(ref.danger)
    if severity is None:
        return None
    verb = {"call": "calls", "instantiate": "creates"}.get(ref.how, "references")
    times = f" {ref.count} times" if ref.count > 1 else ""
    if severity is Severity.ERROR:
        return severity, (
            f"the pickle {verb} {ref.target}{times}{where}{ref.reason}; loading it with pickle "
            "or torch.load(weights_only=False) would run it (not run here)"
        )
    return severity, (
        f"the pickle {verb} {ref.target}{where} while loading, which no standard checkpoint "
        f"does{ref.reason}"
    )
