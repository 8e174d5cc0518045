"""What the diff rules read: two graphs, how each tensor changed, and who was meant to train.

Built by :func:`paraminspect.diff.diff_paths`; the PI5xx rules only read it, like the other rules
read a :class:`~paraminspect.graph.ModelGraph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Settings
from ..graph import LayerKind, ModelGraph, Source, Tensor, TensorRole, Trainable
from .compare import Delta, Tolerance

#: running statistics of BatchNorm-type layers (torch and Keras spellings)
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked", "moving_mean",
                 "moving_variance")


@dataclass(frozen=True)
class Intent:
    """Whether a parameter was meant to train, and why we think so."""

    state: Trainable
    evidence: str


@dataclass
class Diff:
    before: ModelGraph
    after: ModelGraph
    tolerance: Tolerance
    deltas: dict[str, Delta]  #: by tensor name (AFTER's names)
    #: AFTER's name -> BEFORE's name where they differ (a prefix such as ``model.`` removed)
    renamed: dict[str, str] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)

    # -- reading ----------------------------------------------------------------------------
    def tensor(self, name: str) -> Tensor | None:
        return self.after.tensors.get(name) or self.before.tensors.get(self.renamed.get(name,
                                                                                        name))

    def intent(self, name: str) -> Intent:
        return self.intents.get(name, Intent(Trainable.UNKNOWN, "no trainability known"))

    def is_running_stat(self, name: str) -> bool:
        tensor = self.tensor(name)
        if tensor is None:
            return False
        layer = self.after.layers.get(tensor.layer)
        local = tensor.local_name
        return local in RUNNING_STATS and (
            layer is None or layer.kind in (LayerKind.BATCHNORM, LayerKind.INSTANCENORM,
                                            LayerKind.OTHER)
        )

    def own_parameters(self, layer: str) -> list[str]:
        graph = self.after
        if layer not in graph.layers:
            return []
        return [n for n in graph.layers[layer].tensors
                if graph.tensors[n].role is TensorRole.PARAMETER]

    def frozen_block(self, layer: str) -> tuple[str | None, list[str]]:
        """The block around ``layer`` whose parameters were all meant to be frozen: the layer
        itself if it has parameters, else the nearest enclosing layer that has any."""
        graph = self.after
        for path in [layer, *graph.ancestors(layer)]:
            if path not in graph.layers:
                continue
            params = [t.name for t in graph.subtree_parameters(path)] if path != layer else (
                self.own_parameters(path))
            if not params:
                continue
            states = {self.intent(p).state for p in params}
            return (path, params) if states == {Trainable.FROZEN} else (None, [])
        return None, []


def merge_intents(before: ModelGraph, after: ModelGraph, renamed: dict[str, str],
                  settings: Settings) -> dict[str, Intent]:
    """One trainability per parameter from both files (stored beats inferred), else from the
    declared freeze policies. Files that disagree (a block unfrozen between the two) give
    UNKNOWN: changes there prove nothing."""
    out: dict[str, Intent] = {}
    policies = [p for p in settings.policies if p.applies_to(after.path, settings.root)]
    for name, tensor in after.tensors.items():
        if tensor.role is not TensorRole.PARAMETER:
            continue
        other = before.tensors.get(renamed.get(name, name))
        sides = [(t, label) for t, label in ((other, "BEFORE"), (tensor, "AFTER"))
                 if t is not None and t.trainable is not Trainable.UNKNOWN]
        stored = [(t, label) for t, label in sides if t.trainable_fact.source is Source.STORED]
        # what the files store beats a declared policy, which beats what was inferred
        # (e.g. "in the optimizer, so trainable" says nothing about a freeze that came later)
        intent = _from_files(stored) or _from_policy(policies, after.display(name))
        out[name] = intent or _from_files(sides) or Intent(Trainable.UNKNOWN, "not known")
    return out


def _from_files(sides: list[tuple[Tensor, str]]) -> Intent | None:
    if not sides:
        return None
    if len({t.trainable for t, _ in sides}) > 1:
        return Intent(Trainable.UNKNOWN, "trainability differs between the files")
    texts: dict[str, list[str]] = {}
    for t, label in sides:
        fact = t.trainable_fact
        texts.setdefault(fact.evidence or fact.source.value, []).append(label)
    evidence = "; ".join(f"{text} ({' and '.join(labels)})" for text, labels in texts.items())
    return Intent(sides[0][0].trainable, evidence)


def _from_policy(policies: list, name: str) -> Intent | None:
    from ..policy import expected_trainability

    for policy in policies:
        try:
            wanted = expected_trainability(policy, name)
        except ValueError:
            continue
        if wanted is not None:
            return Intent(wanted, f"declared in {policy.label}")
    return None
