"""Training-mode behaviour that exporters lower into plain ONNX ops.

An export taken from a model in training mode need not contain a ``Dropout`` or a
``BatchNormalization`` node in training mode. Exporters often write what the layer computes:

* dropout as a random draw compared with the rate, whose 0/1 mask multiplies the activation
  (``RandomUniformLike -> GreaterOrEqual -> Cast -> Mul`` from tf2onnx; ``RandomUniformLike ->
  Greater -> Cast -> Mul`` for ``rand_like(x) > p`` and ``ConstantOfShape -> RandomUniformLike ->
  Less -> Cast -> Mul`` for ``bernoulli_`` from the torch dynamo exporter);
* batch normalization with the statistics of the batch: a mean over the batch axis subtracted
  from the activation and a variance over the batch axis (Keras' ``moments``).

Randomness that is not compared with anything before it meets the activation (a VAE's
``mu + eps * sigma``, noise added on purpose, a sampling head whose draw is the output) is left
alone: only a random draw turned into a 0/1 mask that gates an activation is dropout.
"""

from __future__ import annotations

import struct

from ...record import FrozenRecord, assign
from .records import NodeInfo, TensorInfo

RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Bernoulli",
    # TensorFlow ops that tf2onnx cannot convert are kept under their own names
    "StatelessRandomUniformV2", "StatelessRandomUniform", "RandomUniformInt",
})
#: ops that turn a random draw into a 0/1 mask (Bernoulli's output already is one)
MASKING_OPS = frozenset({
    "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal", "Floor", "Ceil", "Round", "Sign",
})
#: ops a draw or a mask passes through unchanged in meaning
PASS_OPS = frozenset({
    "Cast", "Not", "Identity", "Reshape", "Expand", "Unsqueeze", "Squeeze", "Flatten",
    "Transpose", "Add", "Sub", "Mul", "Div", "CastLike",
})
#: ops whose output depends only on shapes, not on activation values
SHAPE_OPS = frozenset({"Shape", "Size", "ConstantOfShape", "Constant", "Range", "EyeLike"})
#: scope components exporters add below a Keras layer's name scope
LOWERING_SCOPES = frozenset({
    "dropout", "stateless_dropout", "random_uniform", "stateless_random_uniform", "moments",
    "batchnorm", "cond",
})
#: how many nodes a mask may travel before it must gate something
MAX_HOPS = 12


class Lowered(FrozenRecord):
    """One lowered training-mode layer: what it does and the node that decides its location."""

    __slots__ = ("kind", "node", "scope", "evidence")
    kind: str  #: "dropout" or "batchnorm"
    node: int  #: index of the gating Mul/Where (dropout) or the centring Sub (batch norm)
    scope: str  #: the layer scope read from the node name, "" if none
    evidence: str

    def __init__(
        self, kind: str, node: int, scope: str, evidence: str,
    ) -> None:
        assign(self, "kind", kind)
        assign(self, "node", node)
        assign(self, "scope", scope)
        assign(self, "evidence", evidence)


def find_lowered(
    nodes: list[NodeInfo], initializers: dict[str, TensorInfo], constants: dict[str, object]
) -> list[Lowered]:
    """Every lowered dropout and batch-statistics normalization in ``nodes``, one per scope."""
    starts = [n for n in nodes if n.op_type in RANDOM_OPS or n.op_type == "ReduceMean"]
    if not starts:
        return []
    static = _static_tensors(nodes, initializers)
    readers: dict[str, list[NodeInfo]] = {}
    for node in nodes:
        for name in node.inputs:
            if name:
                readers.setdefault(name, []).append(node)
    found: dict[tuple[str, str], Lowered] = {}
    for node in starts:
        if node.op_type in RANDOM_OPS:
            hit = _gated_by_mask(node, readers, static)
            if hit is not None:
                gate, chain = hit
                item = Lowered("dropout", gate.index, scope_of(gate.name), chain)
                found.setdefault((item.kind, item.scope or str(gate.index)), item)
        elif node.op_type == "ReduceMean" and _reduces_batch_axis(node, initializers, constants):
            item = _batch_moments(node, readers, initializers, constants, static)
            if item is not None:
                found.setdefault((item.kind, item.scope or str(item.node)), item)
    return list(found.values())


def scope_of(name: str) -> str:
    """The layer scope in a TensorFlow-style node name: ``sequential/drop/dropout/Mul_1`` ->
    ``sequential.drop``; "" for names without one."""
    if "/" not in name:
        return ""
    parts = [p for p in name.strip("/").split("/")[:-1] if p]
    while parts and parts[-1] in LOWERING_SCOPES:
        parts.pop()
    return ".".join(parts)


def _static_tensors(nodes: list[NodeInfo], initializers: dict[str, TensorInfo]) -> set[str]:
    """Tensors that do not depend on activation values: initializers, constants, shapes."""
    static = set(initializers)
    for node in nodes:  # nodes are topologically sorted in a valid model
        if node.op_type in SHAPE_OPS or (
            node.op_type not in RANDOM_OPS and node.inputs and all(
                not i or i in static for i in node.inputs)
        ):
            static.update(o for o in node.outputs if o)
    return static


def _gated_by_mask(
    source: NodeInfo, readers: dict[str, list[NodeInfo]], static: set[str]
) -> tuple[NodeInfo, str] | None:
    """The Mul/Where where a mask made from ``source``'s draw meets an activation."""
    masked = source.op_type == "Bernoulli"
    frontier = [(o, masked, [source.op_type]) for o in source.outputs if o]
    seen: set[tuple[str, bool]] = set()
    while frontier:
        tensor, masked, chain = frontier.pop()
        if (tensor, masked) in seen or len(chain) > MAX_HOPS:
            continue
        seen.add((tensor, masked))
        for reader in readers.get(tensor, []):
            op = reader.op_type
            others = [i for i in reader.inputs if i and i != tensor]
            # Where(mask, x, 0): one branch the activation, the other a constant fill (a choice
            # between two computed tensors is a selection, e.g. a sampling head, not dropout)
            gates_where = op == "Where" and reader.inputs[0] == tensor and len(reader.inputs) == 3 \
                and sum(i not in static for i in reader.inputs[1:]) == 1
            gates_mul = op == "Mul" and any(i not in static for i in others)
            if masked and (gates_where or gates_mul):
                return reader, " -> ".join([*chain, op])
            if op in MASKING_OPS:
                nxt = True
            elif op in PASS_OPS and (op not in ("Add", "Sub", "Mul", "Div") or all(
                    i in static for i in others)):
                nxt = masked
            else:
                continue
            frontier.extend((o, nxt, [*chain, op]) for o in reader.outputs if o)
    return None


def _ints(tensor: TensorInfo) -> list[int] | None:
    if tensor.small_ints is not None:
        return list(tensor.small_ints)
    raw = tensor.small_raw
    fmt = {7: "q", 6: "i"}.get(tensor.data_type)
    if raw is None or fmt is None or len(raw) % struct.calcsize(fmt):
        return None
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw))


def _axes(
    node: NodeInfo, initializers: dict[str, TensorInfo], constants: dict[str, object]
) -> list[int] | None:
    attr = node.attributes.get("axes")
    if attr is not None and attr.ints:
        return list(attr.ints)
    if len(node.inputs) > 1 and node.inputs[1]:
        value = initializers.get(node.inputs[1]) or constants.get(node.inputs[1])
        if isinstance(value, TensorInfo):
            return _ints(value)
        if isinstance(value, int):
            return [value]
    return None


def _reduces_batch_axis(
    node: NodeInfo, initializers: dict[str, TensorInfo], constants: dict[str, object]
) -> bool:
    axes = _axes(node, initializers, constants)
    return axes is not None and 0 in axes


def _batch_moments(
    mean: NodeInfo, readers: dict[str, list[NodeInfo]], initializers: dict[str, TensorInfo],
    constants: dict[str, object], static: set[str],
) -> Lowered | None:
    """``x - mean_batch(x)`` whose square is averaged over the batch axis again: batch norm in
    training mode (a moving-average-free normalization by the batch's own statistics)."""
    if not mean.inputs or mean.inputs[0] in static or not mean.outputs:
        return None
    x, m = mean.inputs[0], mean.outputs[0]
    for sub in readers.get(m, []):
        if sub.op_type != "Sub" or set(sub.inputs) != {x, m}:
            continue
        centred = sub.outputs[0]
        for square in readers.get(centred, []):
            if square.op_type == "Mul" and square.inputs.count(centred) == 2 or (
                square.op_type == "Pow" and square.inputs[:1] == [centred]
            ):
                for var in readers.get(square.outputs[0], []):
                    if var.op_type == "ReduceMean" and _reduces_batch_axis(
                        var, initializers, constants
                    ):
                        return Lowered(
                            "batchnorm", sub.index, scope_of(sub.name),
                            "ReduceMean over the batch axis -> Sub -> "
                            f"{square.op_type} -> ReduceMean over the batch axis",
                        )
    return None
