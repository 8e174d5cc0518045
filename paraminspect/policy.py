"""Freeze policies against a graph: which paths a policy covers and where the file disagrees.

The policy itself is configuration (:class:`paraminspect.config.Policy`); this module compares it
with a :class:`ModelGraph` and returns data. Rule PI401 words the result; ``show --policy`` marks
the covered layers. Three outcomes per path, never two: agrees, disagrees, or cannot be told.
"""

from __future__ import annotations

from enum import Enum
from fnmatch import fnmatchcase

from .graph import Mode, Trainable
from .record import FrozenRecord, assign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Policy
    from .graph import ModelGraph


class Kind(str, Enum):
    """What a :class:`Verdict` reports."""

    SHOULD_BE_FROZEN = "should-be-frozen"  #: the policy freezes it, the file says trainable
    SHOULD_BE_TRAINABLE = "should-be-trainable"  #: the policy trains it, the file says frozen
    SHOULD_BE_EVAL = "should-be-eval"  #: the policy wants eval mode, the file says train
    TOO_FEW_TRAINABLE = "too-few-trainable"  #: fewer trainable elements than min-trainable-params
    AMBIGUOUS = "ambiguous"  #: frozen and trainable patterns match equally deep
    UNVERIFIABLE = "unverifiable"  #: the file cannot tell (trainability or mode unknown)
    NO_MATCH = "no-match"  #: a pattern matches nothing in the file: cannot be verified either


class Verdict(FrozenRecord):
    """One disagreement (or one thing that could not be verified) with the paths it concerns."""

    __slots__ = ("kind", "paths", "groups", "detail", "location")
    kind: Kind
    paths: tuple[str, ...]  #: display names of the parameters or layers concerned
    groups: tuple[str, ...]  #: the same paths folded into layers/subtrees, for messages
    detail: str  #: e.g. the patterns that matched nothing, or the counts
    location: str  #: the deepest layer enclosing every path (``""`` = the model)

    def __init__(
        self, kind: Kind, paths: tuple[str, ...], groups: tuple[str, ...], detail: str = "",
        location: str = "",
    ) -> None:
        assign(self, "kind", kind)
        assign(self, "paths", paths)
        assign(self, "groups", groups)
        assign(self, "detail", detail)
        assign(self, "location", location)


def match_depth(pattern: str, path: str) -> int | None:
    """How many dotted components of ``path`` the pattern needs before it matches, or None.

    ``backbone.*`` matches ``backbone.conv.weight`` at depth 2 (``backbone.conv``); ``*.lora_*``
    matches ``blocks.0.lora_A.weight`` at depth 3. The deeper match is the more specific one.
    """
    parts = path.split(".") if path else []
    for depth in range(1, len(parts) + 1):
        if fnmatchcase(".".join(parts[:depth]), pattern):
            return depth
    return None


def _deepest(patterns: Iterable[str], path: str) -> int | None:
    depths = [d for d in (match_depth(p, path) for p in patterns) if d is not None]
    return max(depths) if depths else None


def expected_trainability(policy: Policy, path: str) -> Trainable | None:
    """FROZEN / TRAINABLE as the policy wants ``path``; None when it says nothing.

    When both lists match, the deeper (more specific) match wins, so ``frozen = ["backbone"]``
    with ``trainable = ["*.lora_*"]`` trains the adapters inside the backbone. A tie raises
    ValueError: the policy contradicts itself there.
    """
    frozen = _deepest(policy.frozen, path)
    trainable = _deepest(policy.trainable, path)
    if frozen is None and trainable is None:
        return None
    if frozen == trainable:
        raise ValueError(path)
    if trainable is None or (frozen is not None and frozen > trainable):
        return Trainable.FROZEN
    return Trainable.TRAINABLE


def wants_eval(policy: Policy, path: str) -> bool:
    return _deepest(policy.eval, path) is not None


def coverage(graph: ModelGraph, policies: Iterable[Policy]) -> dict[str, tuple[str, ...]]:
    """Layer path -> what the policies ask of it (``frozen``, ``trainable``, ``eval``)."""
    marks: dict[str, tuple[str, ...]] = {}
    policies = list(policies)
    for layer in graph.layers.values():
        if not layer.path:
            continue
        name = graph.display(layer.path)
        wanted: list[str] = []
        own = [graph.display(t.name) for t in graph.own_parameters(layer.path)]
        for policy in policies:
            # The layer's own path first; else its parameters (``head.*`` covers head.weight).
            for candidates in ([name], own):
                try:
                    expected = {expected_trainability(policy, c) for c in candidates}
                except ValueError:
                    wanted.append("ambiguous")
                    break
                expected.discard(None)
                if expected:
                    wanted.extend(sorted(e.value for e in expected if e is not None))
                    break
            if wants_eval(policy, name):
                wanted.append("eval")
        if wanted:
            marks[layer.path] = tuple(dict.fromkeys(wanted))
    return marks


def evaluate(graph: ModelGraph, policy: Policy) -> list[Verdict]:
    """Every disagreement between ``graph`` and ``policy``; empty when the file agrees."""
    verdicts: list[Verdict] = []
    wrong: dict[Kind, list[str]] = {
        Kind.SHOULD_BE_FROZEN: [], Kind.SHOULD_BE_TRAINABLE: [], Kind.AMBIGUOUS: []
    }
    unknown: list[str] = []
    matched: set[str] = set()
    for param in graph.parameters():
        name = graph.display(param.name)
        matched.update(p for p in (*policy.frozen, *policy.trainable) if match_depth(p, name))
        try:
            expected = expected_trainability(policy, name)
        except ValueError:
            wrong[Kind.AMBIGUOUS].append(param.name)
            continue
        if expected is None:
            continue
        if param.trainable is Trainable.UNKNOWN:
            unknown.append(param.name)
        elif param.trainable is not expected:
            kind = Kind.SHOULD_BE_FROZEN if expected is Trainable.FROZEN else Kind.SHOULD_BE_TRAINABLE
            wrong[kind].append(param.name)
    for kind, names in wrong.items():
        if names:
            verdicts.append(_verdict(graph, kind, names, layers=False))

    train_mode: list[str] = []
    unknown_mode: list[str] = []
    for layer in graph.layers.values():
        name = graph.display(layer.path)
        if not layer.path or not wants_eval(policy, name):
            continue
        matched.update(p for p in policy.eval if match_depth(p, name))
        if layer.mode is Mode.TRAIN:
            train_mode.append(layer.path)
        elif layer.mode is Mode.UNKNOWN:
            unknown_mode.append(layer.path)
    if train_mode:
        verdicts.append(_verdict(graph, Kind.SHOULD_BE_EVAL, train_mode, layers=True))

    if policy.min_trainable_params is not None:
        params = graph.parameters()
        known = sum(p.numel or 0 for p in params if p.trainable is Trainable.TRAINABLE)
        undecided = [p.name for p in params if p.trainable is Trainable.UNKNOWN or p.numel is None]
        if known < policy.min_trainable_params:
            if undecided:  # unknown parameters could make up the difference: cannot tell
                unknown.extend(n for n in undecided if n not in unknown)
            else:
                verdicts.append(
                    Verdict(
                        Kind.TOO_FEW_TRAINABLE, (), (),
                        f"{known:,} trainable elements, the policy asks for at least "
                        f"{policy.min_trainable_params:,}",
                    )
                )

    if unknown or unknown_mode:
        what = []
        if unknown:
            what.append("trainability")
        if unknown_mode:
            what.append("train/eval mode")
        parts = [
            _verdict(graph, Kind.UNVERIFIABLE, names, layers=is_layers)
            for names, is_layers in ((unknown, False), (unknown_mode, True))
            if names
        ]
        owners = [graph.tensors[n].layer for n in unknown] + unknown_mode
        verdicts.append(
            Verdict(
                Kind.UNVERIFIABLE,
                tuple(p for part in parts for p in part.paths),
                tuple(dict.fromkeys(g for part in parts for g in part.groups)),
                " and ".join(what),
                location=graph.display(common_layer(owners)),
            )
        )
    # One pattern of a list may name an alternative (``*.lora_*``); a whole list matching nothing
    # is a typo or a different model, and a policy that checks nothing must not pass silently.
    missing = [
        f"{key} = [{', '.join(repr(p) for p in patterns)}]"
        for key, patterns in (
            ("frozen", policy.frozen), ("trainable", policy.trainable), ("eval", policy.eval)
        )
        if patterns and not matched.intersection(patterns)
    ]
    if missing:
        verdicts.append(Verdict(Kind.NO_MATCH, (), (), "; ".join(missing)))
    return verdicts


def _verdict(graph: ModelGraph, kind: Kind, names: list[str], layers: bool) -> Verdict:
    paths = tuple(graph.display(n) for n in names)
    owners = [n if layers else graph.tensors[n].layer for n in names]
    location = graph.display(common_layer(owners))
    return Verdict(kind, paths, fold(graph, set(names), layers=layers), location=location)


def common_layer(paths: list[str]) -> str:
    """The deepest layer path enclosing every one of ``paths``."""
    split = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def fold(graph: ModelGraph, names: set[str], layers: bool) -> tuple[str, ...]:
    """Name every path in ``names`` once, folding whole subtrees: ``backbone (all 6 parameters)``,
    ``head (bias)``. ``names`` are parameter names, or layer paths when ``layers``."""
    out: list[str] = []
    stack = [""]
    while stack:
        path = stack.pop()
        layer = graph.layers[path]
        if layers:
            below = [item.path for item in graph.walk(path) if item.path]
        else:
            below = [t.name for t in graph.subtree_parameters(path)]
        hits = [n for n in below if n in names]
        if not hits:
            continue
        shown = graph.display(path) or "(model)"
        if path and len(hits) == len(below) and len(below) > 1:
            noun = "layers" if layers else "parameters"
            out.append(f"{shown} (all {len(below)} {noun})")
            continue
        if layers and path in names:
            out.append(shown)
        elif not layers:
            own = [graph.tensors[n].local_name for n in layer.tensors if n in names]
            if own:
                out.append(f"{shown} ({', '.join(own)})" if path else ", ".join(own))
        stack.extend(reversed(layer.children))
    return tuple(out)
