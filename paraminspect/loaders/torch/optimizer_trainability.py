"""What exhaustively aligned optimizers say about each parameter still of unknown trainability:
tracked with state (trainable), a step count that stopped below the others (frozen then, unless a
param group appended later or gradients on some steps only explain it), tracked without state
(never stepped), untracked (not trained)."""

from __future__ import annotations

from ...graph import Fact, ModelGraph, Optimizer, ParamOptState, Source, Trainable
from .optimizer import max_step, per_optimizer

#: evidence for optimizer members with no state while others stepped
NEVER_STEPPED = (
    "tracked by the optimizer but never received a gradient (frozen before the first step, or "
    "unused)"
)


def infer_from_optimizers(graph: ModelGraph, epochs: int | None) -> None:
    """Give every parameter still UNKNOWN the verdict of the optimizers (see
    :func:`~.optimizer.infer_trainability`, which checks they are all exhaustive)."""
    for param in graph.parameters():
        if param.trainable is not Trainable.UNKNOWN:
            continue
        verdict: tuple[Trainable, str] | None = None
        for opt in graph.optimizers:
            entry = opt.tracked.get(param.name)
            if entry is None:
                continue
            verdict = _verdict_from_optimizer(opt, entry, epochs)
            if verdict[0] is Trainable.TRAINABLE:
                break
        if verdict is None:
            verdict = (Trainable.FROZEN, "not tracked by the saved optimizer")
        param.trainable = verdict[0]
        source = Source.UNKNOWN if verdict[0] is Trainable.UNKNOWN else Source.INFERRED
        param.trainable_fact = Fact(source, verdict[1])


def appended_group(opt: Optimizer, entry: ParamOptState) -> str | None:
    """Why a lagging entry looks like a param group appended later (``add_param_group`` when a
    staged fine-tuning unfreezes a block), which starts counting late; None if it does not.

    Such a group is not the first, none of its members reached the top step, and they all share
    one count (they started together), while every earlier group has a member at the top step.
    """
    top = max_step(opt)
    if top is None or entry.group <= 0:
        return None
    def groups() -> dict[int, list[float | None]]:
        found: dict[int, list[float | None]] = {}
        for state in opt.tracked.values():
            if state.has_state:
                found.setdefault(state.group, []).append(state.step)
        return found

    by_group: dict[int, list[float | None]] = per_optimizer("groups", opt, groups)
    own = by_group.get(entry.group, [])
    if len(set(own)) != 1 or own[0] is None or own[0] >= top:
        return None
    earlier = [g for g in by_group if g < entry.group]
    if not earlier or not all(top in by_group[g] for g in earlier):
        return None
    return (
        f"its param group {entry.group} as a whole counts {own[0]:g} of {top:g} steps, every "
        "earlier group reaches the top: a group appended later (add_param_group, staged "
        "unfreezing) starts counting late, it did not stop"
    )


def intermittent_lag(opt: Optimizer, step: float, epochs: int | None) -> str | None:
    """Why a step count below the others looks like gradients on some steps only (a branch
    supervised conditionally, experts picked by a router), not a freeze; None if it does not.

    A freeze stops every frozen parameter at the step it happened, so the lagging counts share
    one or two values, and a freeze made between epochs stops on an epoch boundary. Many
    different lagging counts, or a count that stops inside an epoch, point the other way.
    """
    top = max_step(opt)
    if top is None or step >= top:
        return None

    def profile() -> tuple[set[float | None], bool]:
        lagging_entries = sorted(
            (s for s in opt.tracked.values() if s.step is not None and s.step < top),
            key=lambda s: s.index,
        )
        counts = [s.step for s in lagging_entries]
        # Freezing stage by stage from the input side stops a leading run of parameters,
        # earliest first; experts or branches with gradients on some steps sit between
        # stepped parameters.
        first = min(s.index for s in opt.tracked.values())
        leading = [s.index for s in lagging_entries] == list(
            range(first, first + len(lagging_entries))
        )
        return {s.step for s in lagging_entries}, leading and all(
            a <= b for a, b in zip(counts, counts[1:])  # type: ignore[operator]
        )

    lagging, staged = per_optimizer("lagging", opt, profile)
    if len(lagging) >= 3 and not staged:
        return (
            f"{len(lagging)} different lagging step counts below {top:g}: gradients that reach "
            "some parameters on some steps only, not one freeze"
        )
    if epochs and epochs > 0 and top % epochs == 0 and top / epochs > 1:
        per_epoch = top / epochs
        # The saved epoch may count finished epochs or the running one: allow both.
        boundaries = {per_epoch, top / (epochs + 1)}
        if not any(b.is_integer() and step % b == 0 for b in boundaries):
            return (
                f"stepped {step:g} times, not a whole number of the {per_epoch:g} steps per epoch "
                f"({top:g} steps in {epochs} epochs): gradients on some steps only, not a freeze "
                "made between epochs"
            )
    return None


def _verdict_from_optimizer(
    opt: Optimizer, entry: ParamOptState, epochs: int | None = None
) -> tuple[Trainable, str]:
    top = max_step(opt)
    if entry.has_state:
        if entry.step is not None and top is not None and entry.step < top:
            why = appended_group(opt, entry) or intermittent_lag(opt, entry.step, epochs)
            if why is not None:
                return Trainable.TRAINABLE, f"tracked by the optimizer and {why}"
            return (
                Trainable.FROZEN,
                f"its optimizer step count stopped at {entry.step:g} while others reached {top:g}",
            )
        return (
            Trainable.TRAINABLE,
            f"tracked by the optimizer, with {', '.join(entry.slots) or 'state'}",
        )
    if per_optimizer("any_state", opt, lambda: any(s.has_state for s in opt.tracked.values())):
        # Frozen before the first step, or on a branch the loss never reaches: not told apart.
        return Trainable.UNKNOWN, NEVER_STEPPED
    return Trainable.TRAINABLE, "tracked by the optimizer"
