"""Saved Keras optimizer variables, aligned with the model's weights without reading a value.

``.keras`` files store optimizer variables by index only (``optimizer/vars/0..N``): the global
scalars first (``iteration``, and in Keras 3 ``learning_rate``), then per-variable slots in the
order ``Optimizer.build`` created them for the variables it was built for. Which slots, and how
they interleave, follows from the optimizer class and its config. Legacy ``.h5`` files name every
slot (``adam/conv_kernel_momentum``, tf.keras ``Adam/m/conv/kernel:0`` or ``Adam/conv/kernel/m:0``),
so there the match is by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...graph import Fact, ModelGraph, Optimizer, OptimizerGroup, ParamOptState, Source, Tensor
from ...record import Record
from ..optimizer_alignment import unique_shape_embedding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Shape = tuple[int, ...]

#: per-variable slots created by ``build()`` in creation order: one inner tuple per
#: ``add_optimizer_variables`` call (names in one call are interleaved per variable)
_SLOTS: dict[str, list[tuple[str, ...]]] = {
    "Adam": [("momentum", "velocity")],
    "AdamW": [("momentum", "velocity")],
    "Adamax": [("m", "u")],
    "Lamb": [("momentum", "velocity")],
    "Adadelta": [("accumulated_grad", "accumulated_delta_var")],
    "Ftrl": [("accumulator", "linear")],
    "Adagrad": [("accumulator",)],
    "Lion": [("momentum",)],
}

#: slot names as they appear in legacy .h5 files (Keras 3 and tf.keras 2)
SLOT_NAMES = frozenset({
    "momentum", "velocity", "velocity_hat", "m", "v", "vhat", "u", "accumulator", "linear",
    "accumulated_grad", "accumulated_delta_var", "average_gradient", "average", "rms", "mg",
    "gradient_accumulator", "delta_accumulator", "r", "c",
})
#: optimizer-wide scalars in legacy .h5 files
GLOBAL_NAMES = frozenset({
    "iteration", "iterations", "iter", "learning_rate", "lr", "decay", "beta_1", "beta_2",
    "momentum", "rho", "epsilon", "u_product",
})


class OptimizerConfig(Record):
    """``compile_config["optimizer"]`` / ``training_config["optimizer_config"]``, as data."""

    __slots__ = ("type", "config", "where")
    type: str | None
    config: dict[str, Any]
    where: str

    def __init__(
        self, type: str | None, config: dict[str, Any], where: str,
    ) -> None:
        self.type = type
        self.config = config
        self.where = where


def parse_config(raw: Any, where: str) -> OptimizerConfig | None:
    if isinstance(raw, str):  # compile("adam"): saved as a bare name
        return OptimizerConfig(type=raw, config={}, where=where)
    if not isinstance(raw, dict):
        return None
    class_name = raw.get("class_name")
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    type_ = str(class_name).split(">")[-1] if class_name else None
    return OptimizerConfig(type=type_, config=config, where=where)


def slot_calls(opt: OptimizerConfig) -> list[tuple[str, ...]] | None:
    """The per-variable slot layout ``build()`` creates, or None for an optimizer we don't know."""
    cfg = opt.config
    calls: list[tuple[str, ...]] = []
    if cfg.get("use_ema"):
        calls.append(("average",))
    if cfg.get("gradient_accumulation_steps"):
        calls.append(("gradient_accumulator",))
    name = opt.type or ""
    if name in _SLOTS:
        calls += _SLOTS[name]
        if name in ("Adam", "AdamW") and cfg.get("amsgrad"):
            calls.append(("velocity_hat",))
    elif name == "SGD":
        momentum = cfg.get("momentum", 0.0)
        if not isinstance(momentum, (int, float)):
            return None
        if momentum:
            calls.append(("momentum",))
    elif name == "RMSprop":
        momentum = cfg.get("momentum", 0.0)
        if not isinstance(momentum, (int, float)):
            return None
        calls.append(("velocity",))
        if momentum:
            calls.append(("momentum",))
        if cfg.get("centered"):
            calls.append(("average_gradient",))
    else:
        return None
    return calls


def _base(opt: OptimizerConfig, where: str, size: int) -> Optimizer:
    out = Optimizer(
        name=where,
        type=opt.type,
        type_fact=Fact(Source.STORED, f"optimizer class recorded in {opt.where}"),
        size=size,
    )
    lr, wd = opt.config.get("learning_rate"), opt.config.get("weight_decay")
    out.groups.append(
        OptimizerGroup(
            index=0,
            lr=float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None,
            weight_decay=float(wd) if isinstance(wd, (int, float)) and not isinstance(wd, bool)
            else None,
        )
    )
    return out


def align_indexed(
    opt: OptimizerConfig,
    shapes: Sequence[Shape],
    leading: int,
    graph: ModelGraph,
    candidates: Sequence[Tensor],
    trainable_now: Sequence[Tensor],
    where: str,
) -> Optimizer:
    """Align index-only optimizer variables (``.keras``) by count, layout and shape.

    ``shapes`` are the optimizer datasets in index order, ``leading`` the number of global scalars
    before the slots, ``candidates`` the weights the optimizer could have been built for (every
    parameter, in build order), ``trainable_now`` those the config says are trainable.
    """
    calls = slot_calls(opt)
    per_var = sum(len(c) for c in calls) if calls is not None else 0
    slot_shapes = list(shapes[leading:])
    result = _base(opt, where, 0)
    if calls is None:
        result.alignment_fact = Fact(
            Source.UNKNOWN, f"the slot layout of {opt.type or 'this optimizer'} is not known"
        )
        return result
    if per_var == 0:
        result.alignment_fact = Fact(
            Source.UNKNOWN, f"{opt.type} with this config keeps no per-variable state"
        )
        return result
    if len(shapes) < leading or len(slot_shapes) % per_var:
        result.alignment_fact = Fact(
            Source.UNKNOWN,
            f"{len(shapes)} optimizer variables do not fit {leading} globals plus {per_var} "
            f"slots per weight",
        )
        return result
    count = len(slot_shapes) // per_var
    var_shapes = _var_shapes(slot_shapes, calls, count)
    result.size = count
    if var_shapes is None:
        result.alignment_fact = Fact(
            Source.UNKNOWN, "the optimizer variables' shapes do not follow the expected slot layout"
        )
        return result
    slots = tuple(name for call in calls for name in call)
    mapping: list[Tensor] | None = None
    if count == len(trainable_now) and all(
        s == t.shape for s, t in zip(var_shapes, trainable_now)
    ):
        mapping = list(trainable_now)
        result.alignment, result.alignment_fact = "count-and-shape", Fact(
            Source.INFERRED,
            f"{len(shapes)} optimizer variables = {leading} globals + {per_var} slots for each "
            f"of the {count} weights trainable now, shapes in order",
        )
    elif count == len(candidates) and all(s == t.shape for s, t in zip(var_shapes, candidates)):
        mapping = list(candidates)
        result.alignment, result.alignment_fact = "count-and-shape", Fact(
            Source.INFERRED,
            f"{len(shapes)} optimizer variables = {leading} globals + {per_var} slots for each "
            f"of the model's {count} weights, shapes in order",
        )
    else:
        embedding = unique_shape_embedding(var_shapes, [t.shape for t in candidates])
        if embedding is not None:
            mapping = [candidates[i] for i in embedding]
            result.alignment, result.alignment_fact = "shape", Fact(
                Source.INFERRED,
                f"the {count} weights the optimizer holds slots for match exactly one "
                "order-preserving run of model weights by shape",
            )
    if mapping is None:
        result.alignment_fact = Fact(
            Source.UNKNOWN,
            f"slots for {count} weights cannot be matched to the model's {len(candidates)} "
            "weights unambiguously",
        )
        return result
    result.exhaustive = True
    for index, tensor in enumerate(mapping):
        result.tracked[tensor.name] = ParamOptState(
            index=index, group=0, has_state=True, slots=slots, shape=var_shapes[index]
        )
    return result


def _var_shapes(
    slot_shapes: list[Shape], calls: list[tuple[str, ...]], count: int
) -> list[Shape] | None:
    """The variable shapes behind a slot layout, if the whole layout is consistent with them."""
    width = len(calls[0])
    shapes = [slot_shapes[i * width] for i in range(count)]
    expected: list[Shape] = []
    for call in calls:
        for shape in shapes:
            expected.extend([shape] * len(call))
    return shapes if expected == slot_shapes else None


def align_named(
    opt: OptimizerConfig,
    datasets: Sequence[tuple[str, Shape]],
    weight_keys: dict[str, Tensor],
    where: str,
) -> Optimizer:
    """Align named optimizer variables (legacy ``.h5``) with the model's weights by name.

    ``datasets`` are ``(name, shape)`` under ``optimizer_weights``; ``weight_keys`` maps a weight's
    stored name without ``:0`` (``conv/kernel``) to its tensor.
    """
    result = _base(opt, where, 0)
    underscored: dict[str, list[str]] = {}
    for key in weight_keys:
        underscored.setdefault(key.replace("/", "_"), []).append(key)
    tracked: dict[str, list[str]] = {}
    unmatched: list[str] = []
    for name, shape in datasets:
        hit = _match(name.removesuffix(":0"), weight_keys, underscored)
        if hit is None:
            if shape != () or name.removesuffix(":0").rsplit("/", 1)[-1] not in GLOBAL_NAMES:
                unmatched.append(name)
            continue
        key, slot = hit
        if key is None:
            unmatched.append(name)
            continue
        tensor = weight_keys[key]
        if tensor.shape is not None and shape not in ((), tensor.shape):
            unmatched.append(name)
            continue
        tracked.setdefault(tensor.name, []).append(slot)
    result.size = len(tracked)
    if not datasets:
        result.alignment_fact = Fact(Source.UNKNOWN, "no optimizer variables stored")
        return result
    for index, (tensor_name, slots) in enumerate(tracked.items()):
        result.tracked[tensor_name] = ParamOptState(
            index=index, group=0, has_state=True, slots=tuple(slots)
        )
    result.alignment = "names"
    if unmatched:
        result.alignment_fact = Fact(
            Source.STORED,
            f"slot names matched for {len(tracked)} weights; {len(unmatched)} optimizer "
            f"variables match no weight (e.g. {unmatched[0]})",
        )
    else:
        result.exhaustive = True
        result.alignment_fact = Fact(
            Source.STORED, "every optimizer slot names its weight (optimizer_weights)"
        )
    return result


def _match(
    name: str, weight_keys: dict[str, Tensor], underscored: dict[str, list[str]]
) -> tuple[str | None, str] | None:
    """``(weight key, slot)`` for a slot name; ``(None, slot)`` when ambiguous; None if global."""
    parts = name.split("/")
    candidates: list[tuple[str, str]] = []
    # tf.keras 2.11+: Adam/m/conv/kernel ; legacy tf.keras: Adam/conv/kernel/m
    for start in range(len(parts)):
        for end in range(len(parts), start, -1):
            key = "/".join(parts[start:end])
            if key in weight_keys:
                rest = parts[:start] + parts[end:]
                slot = next((p for p in reversed(rest) if p in SLOT_NAMES), rest[-1] if rest else "")
                candidates.append((key, slot))
    if not candidates:
        # Keras 3: adam/conv_kernel_momentum
        last = parts[-1]
        for flat, keys in underscored.items():
            if last.startswith(flat + "_") and last[len(flat) + 1 :] in SLOT_NAMES:
                candidates.extend((k, last[len(flat) + 1 :]) for k in keys)
    if not candidates:
        return None
    best = max(len(k) for k, _ in candidates)
    keys = {k for k, _ in candidates if len(k) == best}
    if len(keys) != 1:
        return None, candidates[0][1]
    key = keys.pop()
    return key, next(s for k, s in candidates if k == key)


#: unnamed slot variables of Keras 2.0-2.2 optimizers: ``training/Adam/Variable_3:0``,
#: ``Variable_3:0``
_UNNAMED = re.compile(r"(^|/)Variable(_\d+)?(:\d+)?$")


def is_unnamed(names: Sequence[str]) -> bool:
    """True when the slots carry no weight names (Keras 2.0-2.2 ``K.zeros`` variables)."""
    return any(_UNNAMED.search(n) for n in names)


def align_positional(
    opt: OptimizerConfig,
    datasets: Sequence[tuple[str, Shape]],
    candidates: Sequence[Tensor],
    trainable_now: Sequence[Tensor],
    where: str,
) -> Optimizer:
    """Align Keras 2.0-2.2 slots (``[iterations] + m x n + v x n (+ vhat x n)``), built at
    ``compile()`` over the weights trainable then, by block layout, order and shape.

    ``datasets`` are in ``weight_names`` order. Adam before 2.3 writes a third block (``vhat``,
    shape ``(1,)`` without amsgrad); 2.3 writes two; SGD one (momentum).
    """
    slots = [(n, s) for n, s in datasets if not (s == () and _global_name(n))]
    while slots and slots[0][1] == ():  # Keras 1/2.0 counters are unnamed too (Variable:0)
        slots.pop(0)
    shapes = [s for _, s in slots]
    result = _base(opt, where, 0)
    for width in _LEGACY_WIDTHS.get(opt.type or "", (3, 2, 1)):
        if not shapes or len(shapes) % width:
            continue
        count = len(shapes) // width
        first = shapes[:count]
        blocks = [shapes[i * count:(i + 1) * count] for i in range(width)]
        if width >= 2 and blocks[1] != first:
            continue
        if width == 3 and not all(s in ((1,), f) for s, f in zip(blocks[2], first)):
            continue
        mapping, how = _map_by_shape(first, candidates, trainable_now)
        if mapping is None:
            continue
        result.size = count
        result.alignment = how
        result.alignment_fact = Fact(
            Source.INFERRED,
            f"{len(slots)} unnamed slots = {width} blocks of {count} weights (Keras 2 layout), "
            f"matched to the {'weights trainable now' if mapping == list(trainable_now) else 'model weights'} "
            "by order and shape",
        )
        result.exhaustive = True
        names = ("m", "v", "vhat")[:width] if width > 1 else ("moment",)
        for index, tensor in enumerate(mapping):
            result.tracked[tensor.name] = ParamOptState(
                index=index, group=0, has_state=True, slots=names, shape=first[index]
            )
        return result
    result.alignment_fact = Fact(
        Source.UNKNOWN,
        f"{len(slots)} unnamed optimizer slots match no block layout over the model's weights",
    )
    return result


#: slot blocks per weight of Keras 2.0-2.2 optimizers (Adam: m, v and, from 2.1.3, vhat)
_LEGACY_WIDTHS: dict[str, tuple[int, ...]] = {
    "Adam": (3, 2), "Nadam": (2,), "Adamax": (2,), "Adadelta": (2,), "SGD": (1,),
    "RMSprop": (1,), "Adagrad": (1,),
}


def _global_name(name: str) -> bool:
    return name.removesuffix(":0").rsplit("/", 1)[-1] in GLOBAL_NAMES


def _map_by_shape(
    shapes: list[Shape], candidates: Sequence[Tensor], trainable_now: Sequence[Tensor]
) -> tuple[list[Tensor] | None, str]:
    if len(shapes) == len(trainable_now) and all(
            s == t.shape for s, t in zip(shapes, trainable_now)):
        return list(trainable_now), "count-and-shape"
    if len(shapes) == len(candidates) and all(s == t.shape for s, t in zip(shapes, candidates)):
        return list(candidates), "count-and-shape"
    embedding = unique_shape_embedding(shapes, [t.shape for t in candidates])
    if embedding is not None:
        return [candidates[i] for i in embedding], "shape"
    return None, ""
