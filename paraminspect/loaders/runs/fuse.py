"""Fusing a saved optimizer with the weights saved beside it.

An optimizer's state dict numbers parameters 0..N-1 in the order the training code passed them;
names are not stored. A run-folder recognizer knows how its framework built that list and says
so as *buckets*: which optimizer groups were drawn from which candidate parameters. This module
matches each bucket's optimizer slots to its candidates, checking every match by the shape of the
slot tensors (``exp_avg``, ``momentum_buffer``):

* same-shaped candidates whose slots carry identical state are interchangeable, so matching them
  in any order gives the same verdicts: exact;
* when the weights keep registration order and the optimizer followed it, a unique
  order-preserving shape match is exact too;
* otherwise the parameters concerned stay *ambiguous*: their slots are recorded under one possible
  assignment (so the optimizer's step counters all count), but their trainability stays unknown
  and a note says why, instead of a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ...graph import Fact, ModelGraph, Optimizer, ParamOptState, Source, Trainable
from ...record import Record
from ..optimizer_alignment import unique_shape_embedding
from ..pickle.tensors import ScalarReader
from ..torch import optimizer as torch_optim
from ..torch.optimizer import RawOptimizer, slot_shape, slot_step


class Bucket(Record):
    """Optimizer groups (by index) whose parameters were drawn from ``candidates``."""

    __slots__ = ("groups", "candidates")
    groups: list[int]
    candidates: list[str]

    def __init__(self, groups: list[int], candidates: list[str]) -> None:
        self.groups = groups
        self.candidates = candidates


class Match(Record):
    """A bucket's result: slot position -> parameter name, plus names left ambiguous."""

    __slots__ = ("names", "ambiguous", "reasons", "failed")
    names: dict[int, str]
    ambiguous: list[str]
    reasons: list[str]
    failed: str | None

    def __init__(
        self, names: dict[int, str] | None = None, ambiguous: list[str] | None = None,
        reasons: list[str] | None = None, failed: str | None = None,
    ) -> None:
        self.names = {} if names is None else names
        self.ambiguous = [] if ambiguous is None else ambiguous
        self.reasons = [] if reasons is None else reasons
        self.failed = failed


class Slot(Record):
    """One parameter slot of a saved optimizer: its position and what its state shows."""

    __slots__ = ("position", "shape", "has_state", "step")
    position: int
    shape: tuple[int, ...] | None
    has_state: bool
    step: float | None

    def __init__(
        self, position: int, shape: tuple[int, ...] | None, has_state: bool, step: float | None,
    ) -> None:
        self.position = position
        self.shape = shape
        self.has_state = has_state
        self.step = step


def read_slots(raw: RawOptimizer, read_scalar: ScalarReader) -> list[Slot]:
    slots = []
    for position, key in enumerate(raw.keys):
        entry = raw.state.get(key, {}) if _hashable(key) else {}
        slots.append(Slot(position, slot_shape(entry), bool(entry), slot_step(entry, read_scalar)))
    return slots


def match_bucket(
    graph: ModelGraph, slots: Sequence[Slot], candidates: Sequence[str], ordered: bool
) -> Match:
    """Match ``slots`` (in optimizer order) to a subset of ``candidates``."""
    result = Match()
    shape_of = {name: graph.tensors[name].shape for name in candidates}
    if len(slots) > len(candidates):
        result.failed = f"{len(slots)} optimizer slots for {len(candidates)} candidate parameters"
        return result
    by_shape: dict[tuple[int, ...] | None, list[str]] = defaultdict(list)
    for name in candidates:
        by_shape[shape_of[name]].append(name)
    slots_by_shape: dict[tuple[int, ...] | None, list[Slot]] = defaultdict(list)
    for slot in slots:
        slots_by_shape[slot.shape].append(slot)
    for shape, group in slots_by_shape.items():
        if shape is not None and len(group) > len(by_shape.get(shape, [])):
            result.failed = (
                f"{len(group)} optimizer slots of shape {_fmt(shape)} but only "
                f"{len(by_shape.get(shape, []))} such parameters"
            )
            return result

    leftover: list[str] = []
    ambiguous_shapes: list[tuple[int, ...] | None] = []
    for shape, names in by_shape.items():
        group = slots_by_shape.get(shape, []) if shape is not None else []
        states = {(s.has_state, s.step) for s in group}
        if len(group) == len(names) and len(states) <= 1:
            result.names.update({s.position: n for s, n in zip(group, names)})
        elif not group:
            leftover.extend(names)
        else:
            ambiguous_shapes.append(shape)
    stateless = slots_by_shape.get(None, [])
    if stateless:
        if len(stateless) == len(leftover):  # every unmatched candidate is a stateless slot
            result.names.update({s.position: n for s, n in zip(stateless, leftover)})
        else:
            ambiguous_shapes.append(None)
    if ambiguous_shapes and ordered:
        embedding = unique_shape_embedding(
            [s.shape for s in slots], [shape_of[n] for n in candidates]
        )
        if embedding is not None:
            result.names = {s.position: candidates[i] for s, i in zip(slots, embedding)}
            result.reasons.append("same-shaped parameters placed by registration order")
            return result
    for shape in ambiguous_shapes:
        names = by_shape[shape] if shape is not None else leftover
        result.ambiguous.extend(n for n in names if n not in result.names.values())
        # One possible assignment keeps every slot's step visible (the optimizer's clock); the
        # names stay ambiguous, so their trainability is left unknown.
        group = slots_by_shape.get(shape, [])
        result.names.update({s.position: n for s, n in zip(group, names)})
        if shape is None:
            result.reasons.append(
                f"{len(stateless)} optimizer slots hold no state (no shape to match) among "
                f"{len(leftover)} unmatched parameters"
            )
        else:
            group = slots_by_shape.get(shape, [])
            steps = sorted({f"{s.step:g}" for s in group if s.step is not None})
            result.reasons.append(
                f"{len(group)} optimizer slots of shape {_fmt(shape)} for {len(names)} such "
                f"parameters" + (f" with different steps ({', '.join(steps)})" if len(steps) > 1
                                 else "") + ": which is which is not stored"
            )
    return result


def fuse(
    graph: ModelGraph,
    raw: RawOptimizer,
    read_scalar: ScalarReader,
    buckets: Sequence[Bucket],
    ordered: bool,
    how: str,
) -> tuple[Optimizer, list[str]]:
    """Record ``raw`` on ``graph`` matched through ``buckets``; return it and the ambiguous names.

    ``how`` says in a few words how the framework built the groups (shown as evidence).
    """
    if all(n is not None for n in raw.names) and raw.names:
        return torch_optim.align(raw, graph, read_scalar), []
    opt = torch_optim.align(_without_state(raw), graph, lambda ref: None)  # groups and type only
    opt.tracked, opt.exhaustive, opt.alignment = {}, False, "unaligned"
    opt.size = len(raw.keys)
    slots = read_slots(raw, read_scalar)
    names: dict[int, str] = {}
    ambiguous: list[str] = []
    reasons: list[str] = []
    for bucket in buckets:
        positions = [p for p, g in enumerate(raw.key_group) if g in bucket.groups]
        match = match_bucket(graph, [slots[p] for p in positions], bucket.candidates, ordered)
        if match.failed:
            opt.alignment_fact = Fact(
                Source.UNKNOWN, f"{how} does not fit the saved optimizer: {match.failed}")
            return opt, []
        names.update(match.names)
        ambiguous.extend(match.ambiguous)
        reasons.extend(match.reasons)
    if len(set(names.values())) != len(names):
        opt.alignment_fact = Fact(Source.UNKNOWN, f"{how} matches a parameter twice")
        return opt, []
    for position, name in sorted(names.items()):
        slot = slots[position]
        entry = raw.state.get(raw.keys[position], {}) if _hashable(raw.keys[position]) else {}
        opt.tracked[name] = ParamOptState(
            index=position, group=raw.key_group[position], has_state=slot.has_state,
            slots=tuple(k for k in entry if k != "step"), step=slot.step, shape=slot.shape)
    opt.alignment = "replay"
    opt.exhaustive = not ambiguous
    opt.alignment_fact = Fact(
        Source.INFERRED,
        f"{how}, each slot checked by shape"
        + (f"; {len(ambiguous)} parameters ambiguous: {'; '.join(reasons)}" if ambiguous else ""),
    )
    return opt, ambiguous


def infer_with_ambiguity(graph: ModelGraph, ambiguous: Sequence[str]) -> None:
    """Derive trainability from the fused optimizers; ambiguous parameters stay unknown."""
    saved = [(opt, opt.exhaustive) for opt in graph.optimizers]
    for opt in graph.optimizers:
        opt.exhaustive = opt.aligned
    torch_optim.infer_trainability(graph)
    for opt, exhaustive in saved:
        opt.exhaustive = exhaustive
    for name in ambiguous:
        tensor = graph.tensors.get(name)
        if tensor is not None and tensor.trainable_fact.source is Source.INFERRED:
            tensor.trainable, tensor.trainable_fact = Trainable.UNKNOWN, Fact(
                Source.UNKNOWN, "the saved optimizer cannot be matched to it unambiguously")


def _without_state(raw: RawOptimizer) -> RawOptimizer:
    return RawOptimizer(name=raw.name, type=raw.type, type_fact=raw.type_fact,
                        groups=raw.groups, keys=[], key_group=[], names=[])


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1
                                                                       else "") + ")"
