"""Saved PyTorch optimizer state, aligned with the model's parameters.

An ``optimizer.state_dict()`` names parameters by integer index only (in the order they were
passed to the optimizer) unless it was built from ``named_parameters()``. Alignment tries, in order
of strength: names, a one-to-one positional match, and a unique order-preserving shape match; where
none holds the optimizer stays *unaligned* and nothing is inferred from it. What exhaustively
aligned optimizers say about each parameter's trainability is :mod:`.optimizer_trainability`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ...graph import (
    Fact,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    Tensor,
)
from ...record import Record
from ..optimizer_alignment import unique_shape_embedding
from ..pickle.stubs import Stub
from ..pickle.tensors import ScalarReader, TensorRef

#: per-parameter state entries that have the parameter's own shape
FULL_SHAPE_SLOTS = (
    "exp_avg",
    "exp_avg_sq",
    "max_exp_avg_sq",
    "momentum_buffer",
    "square_avg",
    "sum",
    "exp_inf",
    "acc_delta",
    "ax",
    "prev",
    "step_size",
    "grad_avg",
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: group-key signatures of torch.optim classes (torch 2.x), most specific first
_GROUP_SIGNATURES: list[tuple[str, frozenset[str]]] = [
    ("Adafactor", frozenset({"beta2_decay"})),
    ("NAdam", frozenset({"momentum_decay"})),
    ("SGD", frozenset({"nesterov", "dampening"})),
    ("RMSprop", frozenset({"centered", "alpha"})),
    ("Adagrad", frozenset({"lr_decay", "initial_accumulator_value"})),
    ("Adadelta", frozenset({"rho"})),
    ("ASGD", frozenset({"lambd", "t0"})),
    ("Rprop", frozenset({"etas", "step_sizes"})),
    ("Adam", frozenset({"amsgrad", "betas"})),
]

class RawOptimizer(Record):
    """An optimizer as saved, before alignment: indices (or tensors) per group, state per index."""

    __slots__ = ("name", "type", "type_fact", "groups", "keys", "key_group", "names", "state")
    name: str
    type: str | None
    type_fact: Fact
    groups: list[dict[str, Any]]
    #: parameter keys in the order they were given: ints (state dict) or TensorRefs (pickled object)
    keys: list[Any]
    key_group: list[int]
    names: list[str | None]  #: ``param_names`` where stored
    state: dict[Any, dict[str, Any]]

    def __init__(
        self, name: str, type: str | None, type_fact: Fact, groups: list[dict[str, Any]],
        keys: list[Any] | None = None, key_group: list[int] | None = None,
        names: list[str | None] | None = None, state: dict[Any, dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.type_fact = type_fact
        self.groups = groups
        self.keys = [] if keys is None else keys
        self.key_group = [] if key_group is None else key_group
        self.names = [] if names is None else names
        self.state = {} if state is None else state


def is_optimizer_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("param_groups"), list)
        and isinstance(value.get("state"), dict)
    )


def is_optimizer_object(value: Any) -> bool:
    return (
        isinstance(value, Stub)
        and is_optimizer_state_dict(value.state_dict)
        and (value.target().startswith("torch.optim.") or "optim" in value.target().lower())
    )


def parse(name: str, value: Any) -> RawOptimizer:
    """Read a ``state_dict()`` dict or a pickled optimizer object (stub)."""
    if isinstance(value, Stub):
        sd = value.state_dict
        opt_type: str | None = value.target().rsplit(".", 1)[-1]
        type_fact = Fact(Source.STORED, f"pickled {value.target()} object")
    else:
        sd = value
        opt_type, type_fact = None, Fact()
    groups = [g for g in sd["param_groups"] if isinstance(g, dict)]
    raw = RawOptimizer(name=name, type=opt_type, type_fact=type_fact, groups=groups)
    for group_index, group in enumerate(groups):
        params = group.get("params") or []
        names = group.get("param_names")
        for position, key in enumerate(params):
            raw.keys.append(key)
            raw.key_group.append(group_index)
            raw.names.append(
                names[position] if isinstance(names, list) and position < len(names) else None
            )
    raw.state = {k: v for k, v in sd["state"].items() if isinstance(v, dict)}
    if raw.type is None:
        raw.type, raw.type_fact = guess_type(groups, raw.state)
    return raw


def guess_type(
    groups: list[dict[str, Any]], state: dict[Any, dict[str, Any]]
) -> tuple[str | None, Fact]:
    keys = set().union(*(g.keys() for g in groups)) if groups else set()
    for opt_type, signature in _GROUP_SIGNATURES:
        if signature <= keys:
            if opt_type == "Adam":
                decoupled = any(g.get("decoupled_weight_decay") is True for g in groups)
                opt_type = "AdamW" if decoupled else "Adam"
            elif opt_type == "Adam" and "amsgrad" not in keys:
                opt_type = "Adamax"
            return opt_type, Fact(Source.INFERRED, "from the param_groups hyperparameter keys")
    if {"betas"} <= keys:
        slots = set().union(*(s.keys() for s in state.values())) if state else set()
        guess = (
            "Adamax"
            if "exp_inf" in slots
            else "RAdam"
            if "decoupled_weight_decay" in keys
            else None
        )
        if guess:
            return guess, Fact(Source.INFERRED, "from the param_groups hyperparameter keys")
    return None, Fact()


def slot_shape(entry: dict[str, Any]) -> tuple[int, ...] | None:
    for slot in FULL_SHAPE_SLOTS:
        value = entry.get(slot)
        if isinstance(value, TensorRef) and value.shape is not None:
            return value.shape
    return None


def slot_step(entry: dict[str, Any], read_scalar: ScalarReader) -> float | None:
    step = entry.get("step")
    if isinstance(step, bool):
        return None
    if isinstance(step, (int, float)):
        return float(step)
    if isinstance(step, TensorRef) and step.shape in ((), (1,)):
        return read_scalar(step)
    return None


def align(
    raw: RawOptimizer,
    graph: ModelGraph,
    read_scalar: ScalarReader,
    optional: set[str] | frozenset[str] = frozenset(),
) -> Optimizer:
    """Match the optimizer's parameter keys with the graph's parameters and record it.

    ``optional`` names tensors that may be buffers rather than parameters (a state dict cannot
    tell): a one-to-one positional match is also tried without them.
    """
    params = graph.parameters()
    opt = Optimizer(name=raw.name, type=raw.type, type_fact=raw.type_fact, size=len(raw.keys))
    for index, group in enumerate(raw.groups):
        lr, wd = group.get("lr"), group.get("weight_decay")
        opt.groups.append(
            OptimizerGroup(
                index=index,
                lr=float(lr) if isinstance(lr, (int, float)) else None,
                weight_decay=float(wd) if isinstance(wd, (int, float)) else None,
                size=len(group.get("params") or []),
            )
        )
    states = [raw.state.get(key, {}) if _hashable(key) else {} for key in raw.keys]
    shapes = [slot_shape(s) for s in states]

    mapping = _align_by_identity(raw, params)
    if mapping is not None:
        opt.alignment, opt.alignment_fact = (
            "identity",
            Fact(Source.STORED, "the pickled optimizer holds the model's own parameter objects"),
        )
    if mapping is None:
        mapping = _align_by_names(raw, params, graph)
        if mapping is not None:
            opt.alignment, opt.alignment_fact = (
                "names",
                Fact(Source.STORED, "param_groups carry param_names"),
            )
    if (
        mapping is None
        and len(raw.keys) == len(params)
        and all(s is None or s == p.shape for s, p in zip(shapes, params))
    ):
        mapping = list(range(len(params)))
        opt.alignment, opt.alignment_fact = (
            "positional",
            Fact(
                Source.INFERRED,
                f"the optimizer holds {len(params)} parameters, as many as the model, with matching "
                "shapes",
            ),
        )
    required = [i for i, p in enumerate(params) if p.name not in optional]
    if (
        mapping is None
        and optional
        and len(raw.keys) == len(required)
        and all(s is None or s == params[i].shape for s, i in zip(shapes, required))
    ):
        mapping = required
        opt.alignment, opt.alignment_fact = (
            "positional",
            Fact(
                Source.INFERRED,
                f"the optimizer holds {len(required)} parameters, as many as the model has tensors "
                "named like parameters, with matching shapes",
            ),
        )
    if mapping is None:
        mapping = unique_shape_embedding(shapes, [p.shape for p in params])
        if mapping is not None:
            opt.alignment, opt.alignment_fact = (
                "shape",
                Fact(
                    Source.INFERRED,
                    f"the {len(raw.keys)} optimizer slots match exactly one order-preserving run of "
                    "model parameters by shape",
                ),
            )
    if mapping is None and len(raw.groups) > 1:
        mapping = _align_groups_by_shape(raw, shapes, params)
        if mapping is not None:
            opt.alignment, opt.alignment_fact = (
                "shape",
                Fact(
                    Source.INFERRED,
                    f"each of the {len(raw.groups)} param groups matches exactly one "
                    "order-preserving run of model parameters by shape, and no two overlap",
                ),
            )
    if mapping is None:
        opt.alignment_fact = Fact(
            Source.UNKNOWN,
            f"the optimizer's {len(raw.keys)} parameters cannot be matched to the model's "
            f"{len(params)} unambiguously",
        )
        return opt

    opt.exhaustive = True
    for position, param_index in enumerate(mapping):
        entry = states[position]
        opt.tracked[params[param_index].name] = ParamOptState(
            index=position,
            group=raw.key_group[position],
            has_state=bool(entry),
            slots=tuple(k for k in entry if k != "step"),
            step=slot_step(entry, read_scalar),
            shape=shapes[position],
        )
    return opt


def _align_groups_by_shape(
    raw: RawOptimizer, shapes: list[tuple[int, ...] | None], params: Sequence[Tensor]
) -> list[int] | None:
    """Groups built one after another (a group appended later for a staged unfreeze) each follow
    the model's order, but not together: match each group alone, uniquely and without overlap."""
    available = [p.shape for p in params]
    mapping: list[int | None] = [None] * len(raw.keys)
    used: set[int] = set()
    for group in range(len(raw.groups)):
        positions = [i for i, g in enumerate(raw.key_group) if g == group]
        if not positions:
            continue
        wanted = [shapes[i] for i in positions]
        if any(w is None for w in wanted):
            return None
        found = unique_shape_embedding(wanted, available)
        if found is None or used.intersection(found):
            return None
        used.update(found)
        for i, index in zip(positions, found):
            mapping[i] = index
    if any(m is None for m in mapping):
        return None
    return mapping  # type: ignore[return-value]


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _align_by_identity(raw: RawOptimizer, params: Sequence[Tensor]) -> list[int] | None:
    if not raw.keys or not all(isinstance(k, TensorRef) for k in raw.keys):
        return None
    index_of = {id(p.origin): i for i, p in enumerate(params) if p.origin is not None}
    mapping = [index_of.get(id(k)) for k in raw.keys]
    return None if any(m is None for m in mapping) else mapping  # type: ignore[return-value]


def _align_by_names(
    raw: RawOptimizer, params: Sequence[Tensor], graph: ModelGraph
) -> list[int] | None:
    if not raw.names or any(n is None for n in raw.names):
        return None
    index_of = {p.name: i for i, p in enumerate(params)}
    mapping = []
    for name in raw.names:
        assert name is not None
        candidates = (
            [name, name.removeprefix(graph.stripped_prefix)] if graph.stripped_prefix else [name]
        )
        # A LightningModule or wrapper prefixes names; param_names may lack that prefix.
        found = next((index_of[c] for c in candidates if c in index_of), None)
        if found is None:
            suffix_hits = [i for n, i in index_of.items() if n.endswith("." + name)]
            found = suffix_hits[0] if len(suffix_hits) == 1 else None
        if found is None:
            return None
        mapping.append(found)
    return mapping


def infer_trainability(graph: ModelGraph) -> None:
    """Where the file stores no trainable flags, derive them from exhaustively aligned optimizers.

    Tracked with state -> trainable; tracked but stepped fewer times than the others -> frozen
    since that step; tracked with no state while others have some -> never received a gradient;
    untracked by every optimizer -> not trained. Only parameters still UNKNOWN are touched.
    """
    if not graph.optimizers or not all(o.exhaustive for o in graph.optimizers):
        return
    from .optimizer_trainability import infer_from_optimizers  # only files with optimizers

    epochs = graph.metadata.get("epoch")
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
    _MEMO.values = {}
    try:
        infer_from_optimizers(graph, epochs)
    finally:
        _MEMO.values = None


#: per-thread memo of per-optimizer facts, live only inside :func:`infer_trainability`:
#: recomputed per parameter they would make inference quadratic in the number of parameters
_MEMO = threading.local()


def per_optimizer(kind: str, opt: Optimizer, compute: Callable[[], Any]) -> Any:
    """``compute()``, once per optimizer and ``kind`` while :func:`infer_trainability` runs."""
    memo: dict[tuple[str, int], Any] | None = getattr(_MEMO, "values", None)
    if memo is None:
        return compute()
    key = (kind, id(opt))
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def max_step(opt: Optimizer) -> float | None:
    """The highest step count any tracked parameter reached; None where none is stored."""
    def compute() -> float | None:
        steps = [s.step for s in opt.tracked.values() if s.step is not None]
        return max(steps) if steps else None

    return per_optimizer("top", opt, compute)
