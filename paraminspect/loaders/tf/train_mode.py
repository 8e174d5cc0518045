"""Training-mode computations in the functions a SavedModel's signatures serve.

Only functions reachable from a signature count: a SavedModel also stores save/restore
functions (one variable assignment per variable) and, for tf_keras, per-layer call functions
traced in both modes, so ops anywhere else prove nothing about what serving runs.

Patterns, read from TensorFlow's own lowering:

* BatchNormalization in training mode computes batch moments (``.../moments/mean``) and
  updates the moving statistics (Keras 3: ``AssignVariableOp`` in the layer's scope; tf_keras:
  ``AssignSubVariableOp`` under ``AssignMovingAvg``);
* tf_keras BatchNormalization in training mode is a ``FusedBatchNorm*`` whose ``is_training``
  attribute is absent (default values are stripped on save, and the default is true) or true;
* dropout in training mode draws random numbers (``StatelessRandomUniformV2``, ``RandomUniform``)
  that gate the activations through a comparison and a select or multiply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...record import FrozenRecord, assign
from .saved_model_pb import MetaGraph, OpNode

MAX_REACHABLE_FUNCTIONS = 10_000
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomStandardNormal", "TruncatedNormal", "StatelessRandomUniform",
    "StatelessRandomUniformV2", "StatelessRandomNormal", "StatelessRandomNormalV2",
    "StatelessTruncatedNormalV2", "RandomUniformInt", "StatelessRandomBinomial",
})
COMPARISONS = frozenset({"GreaterEqual", "Greater", "Less", "LessEqual"})
GATES = frozenset({"SelectV2", "Select", "Mul", "Cast", "RealDiv"})
ASSIGN_OPS = frozenset({"AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp"})
FUSED_BN = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
#: name-scope components Keras/TF add below a layer's scope for these computations
INNER_SCOPES = frozenset({
    "moments", "batchnorm", "dropout", "stateless_dropout", "random_uniform",
    "stateless_random_uniform", "FusedBatchNormV3", "FusedBatchNorm",
})
_HOPS = 4


class TrainOp(FrozenRecord):
    """One training-mode computation: ``kind`` batchnorm | dropout, the layer's name scope."""

    __slots__ = ("kind", "scope", "function", "evidence")
    kind: str
    scope: tuple[str, ...]
    function: str
    evidence: str

    def __init__(
        self, kind: str, scope: tuple[str, ...], function: str, evidence: str,
    ) -> None:
        assign(self, "kind", kind)
        assign(self, "scope", scope)
        assign(self, "function", function)
        assign(self, "evidence", evidence)


def reachable_functions(meta: MetaGraph) -> list[str]:
    """Functions the serving signatures call, transitively (save/restore excluded)."""
    nodes = {n.name: n for n in meta.graph_nodes}
    todo: list[str] = []
    for key, outputs in meta.signatures.items():
        if key.startswith("__"):  # __saved_model_init_op
            continue
        for tensor in outputs:
            node = nodes.get(tensor.split(":", 1)[0])
            if node is not None:
                todo.extend(node.funcs)
    return list(dict.fromkeys(todo))


def _closure(todo: list[str], seen: list[str], callees: Callable[[str], list[str]]) -> list[str]:
    while todo and len(seen) < MAX_REACHABLE_FUNCTIONS:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo.extend(callees(name))
    return seen


def find_train_ops(meta: MetaGraph, nodes_of: Callable[[str], list[OpNode]]) -> list[TrainOp]:
    """Training-mode BatchNorm and dropout in the signature-reachable functions."""
    cache: dict[str, list[OpNode]] = {}

    def load(name: str) -> list[OpNode]:
        if name not in cache:
            cache[name] = nodes_of(name) if name in meta.function_spans else []
        return cache[name]

    start = reachable_functions(meta)
    reachable = _closure(list(start), [], lambda name: [f for n in load(name) for f in n.funcs])
    found: list[TrainOp] = []
    for name in reachable:
        found.extend(_scan(name, load(name)))
    return found


def _scan(function: str, nodes: list[OpNode]) -> list[TrainOp]:
    out: list[TrainOp] = []
    names = {n.name for n in nodes}
    consumers: dict[str, list[OpNode]] = {}
    for node in nodes:
        for raw in node.inputs:
            if not raw.startswith("^"):
                consumers.setdefault(raw.split(":", 1)[0], []).append(node)
    for node in nodes:
        if node.op in ASSIGN_OPS and "/" in node.name:
            scope = node.name.rsplit("/", 1)[0]
            if scope.rsplit("/", 1)[-1].startswith("AssignMovingAvg"):  # tf_keras
                scope = scope.rsplit("/", 1)[0]
            if f"{scope}/moments/mean" in names or f"{scope}/moments/variance" in names:
                out.append(TrainOp("batchnorm", _layer_scope(node.name), function,
                                   "batch moments and moving-statistics updates in the serving "
                                   "function"))
        elif node.op in FUSED_BN and node.bools.get("is_training", True):
            out.append(TrainOp("batchnorm", _layer_scope(node.name), function,
                               f"{node.op} with is_training=true in the serving function"))
        elif node.op in RANDOM_OPS and _gates(node, consumers):
            out.append(TrainOp("dropout", _layer_scope(node.name), function,
                               f"{node.op} gating activations in the serving function"))
    return list(dict.fromkeys(out))  # one finding per layer and kind, not per assignment


def _gates(node: OpNode, consumers: dict[str, list[OpNode]]) -> bool:
    """Whether random numbers reach a comparison that feeds a select or multiply."""
    frontier, compared = [node], []
    for _ in range(_HOPS):
        frontier = [c for n in frontier for c in consumers.get(n.name, [])]
        compared += [n for n in frontier if n.op in COMPARISONS]
        if compared:
            break
    frontier = compared
    for _ in range(_HOPS):
        frontier = [c for n in frontier for c in consumers.get(n.name, [])]
        if any(n.op in GATES for n in frontier):
            return True
    return False


def _layer_scope(name: str) -> tuple[str, ...]:
    parts = name.split("/")[:-1]
    for i, part in enumerate(parts):
        if part in INNER_SCOPES:
            # ops outside any layer (a tf.Module calling tf.nn.dropout) keep their own scope
            return tuple(parts[: max(i, 1)])
    return tuple(parts)


_SUFFIX = re.compile(r"_\d+$")


def match_scope(scope: tuple[str, ...], layers: set[str]) -> str | None:
    """The layer path (dotted) a name scope belongs to, given the model's layer paths.

    Name scopes carry the enclosing model's name first and, when traced by Keras 3, a ``_<n>``
    suffix per component; both are tried away. Returns None when no layer matches.
    """
    options: list[list[str]] = [[]]
    for part in scope:
        variants = [part] + ([_SUFFIX.sub("", part)] if _SUFFIX.search(part) else [])
        options = [o + [v] for o in options for v in variants][:64]
    for skip in (0, 1):
        for parts in options:
            path = ".".join(parts[skip:])
            if path and path in layers:
                return path
    return None


def fallback_scope(scope: tuple[str, ...], top_level: set[str]) -> str:
    """A readable layer path for a scope that names no known layer (a Dropout has no
    variables): suffixes stripped, the enclosing model's scope dropped."""
    parts = [_SUFFIX.sub("", p) for p in scope]
    if len(parts) > 1 and parts[0] not in top_level:
        parts = parts[1:]
    return ".".join(parts)
