"""PI504 optimizer-step-mismatch (diff): per-parameter optimizer step counters that disagree
with the training-step difference between the two checkpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph, Trainable
from ._text import listing, plural
from .base import Issue, Rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..diff.model import Diff

#: checkpoint keys that count optimizer steps (not epochs)
STEP_KEYS = ("global_step", "step", "iteration", "iter")


def _run_step(graph: ModelGraph) -> tuple[str, float] | None:
    for key in STEP_KEYS:
        value = graph.metadata.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return key, float(value)
    return None


def _steps(graph: ModelGraph) -> dict[str, float]:
    out: dict[str, float] = {}
    for opt in graph.optimizers:
        for name, state in opt.tracked.items():
            if state.step is not None:
                out[name] = state.step
    return out


class OptimizerStepMismatch(Rule):
    code = "PI504"
    name = "optimizer-step-mismatch"
    severity = Severity.WARNING
    fix = (
        "Restore the optimizer state when resuming, keep every trainable parameter in the "
        "optimizer from the start, and save the optimizer of the same run."
    )

    def check_diff(self, diff: Diff) -> Iterator[Issue]:
        before, after = _steps(diff.before), _steps(diff.after)
        common = [n for n in after if diff.renamed.get(n, n) in before]
        if not common:
            return
        delta = {n: after[n] - before[diff.renamed.get(n, n)] for n in common}
        run_a, run_b = _run_step(diff.before), _run_step(diff.after)
        expected: float | None = None
        why = ""
        if run_a and run_b and run_a[0] == run_b[0] and run_b[1] >= run_a[1]:
            expected = run_b[1] - run_a[1]
            why = f"{run_a[0]} went from {run_a[1]:g} to {run_b[1]:g}"
        elif len(set(delta.values())) > 1:
            # no run counter: the parameters that moved most set the expectation
            most, count = Counter(delta.values()).most_common(1)[0]
            if count * 2 > len(delta):
                expected = most
                why = f"most tracked parameters advanced by {most:g} steps"
        if expected is None:
            return
        # a frozen parameter's counter is expected to stand still
        off = {n: d for n, d in delta.items() if d != expected
               and not (d == 0 and diff.intent(n).state is Trainable.FROZEN)}
        if not off:
            return
        if len(off) == len(delta) and len(set(off.values())) == 1:
            value = next(iter(off.values()))
            kind = "went backwards (optimizer state reset?)" if value < 0 else f"advanced by {value:g}"
            yield Issue(
                location="",
                message=(
                    f"every optimizer step counter {kind} while {why}: the optimizer state does "
                    f"not belong to this run segment (re-created or not restored on resume, or a "
                    f"gradient-accumulation mismatch)"
                ),
                paths=tuple(sorted(off)),
            )
            return
        groups: dict[str, list[str]] = {}
        for name in off:
            tensor = diff.tensor(name)
            groups.setdefault(tensor.layer if tensor is not None else "", []).append(name)
        for layer, names in groups.items():
            values = sorted({off[n] for n in names})
            locals_ = [diff.tensor(n).local_name for n in names]  # type: ignore[union-attr]
            yield Issue(
                location=layer,
                message=(
                    f"optimizer step counters of {plural(len(names), 'parameter')} of "
                    f"{diff.after.display(layer) or 'the model'} ({listing(locals_)}) advanced by "
                    f"{listing([f'{v:g}' for v in values])} where {why} (expected {expected:g}): "
                    f"they missed updates (no gradient on those steps, or added to the optimizer "
                    f"late)"
                ),
                paths=tuple(names),
            )
