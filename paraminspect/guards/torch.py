"""The PyTorch guard: the rules on a live ``nn.Module`` and its optimizer, before the steps.

``paraminspect.guard(model, optimizer)`` hooks the optimizer (``register_step_pre_hook``) and
checks, before a step runs:

- at the start and whenever the set of trainable parameters changes (an unfreeze): the ordinary
  rules on the live graph (trainable parameters missing from the optimizer, ...);
- before the first step: trainable parameters without a gradient (PI603), BatchNorm statistics
  of frozen blocks that moved in the forward pass (PI602);
- before the second step (and again after an unfreeze): frozen parameters that still hold a
  gradient or optimizer state (PI601).

Each finding is said once (``warnings.warn`` and the ``paraminspect.guard`` logger); with
``strict=True`` a :class:`~paraminspect.guards.core.GuardError` is raised instead, before the
step. The Lightning and transformers callbacks drive the same object from their own hooks.
"""

from __future__ import annotations

from ..config import Settings
from ..graph import LayerKind, ModelGraph, Trainable
from .core import Reporter, live_findings, static_findings
from .live import LiveState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_STATS = ("running_mean", "running_var")
#: steps after the start (or an unfreeze) whose gradients and optimizer state are checked
WATCHED_STEPS = 2


class TorchGuard:
    """Checks one model and its optimizer(s); see the module documentation."""

    def __init__(self, model: Any, optimizers: Any = None, strict: bool = False,
                 settings: Settings | None = None, name: str | None = None) -> None:
        if optimizers is None:
            optimizers = []
        elif not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        self.model = model
        self.optimizers = list(optimizers)
        self.settings = settings or Settings()
        self.reporter = Reporter(name or type(model).__name__, strict, self.settings)
        self.step = 0  #: optimizer steps seen (the next one is step + 1)
        self._signature: tuple[bool, ...] | None = None
        self._watch_start = 0
        self._watch_until = 0
        self._stats: dict[str, dict[str, Any]] = {}
        self._handles: list[Any] = []

    @property
    def findings(self) -> list:
        """Every finding reported so far."""
        return self.reporter.findings

    # -- hooks -------------------------------------------------------------------------------
    def attach(self) -> TorchGuard:
        """Hook every optimizer's step; check the model now."""
        for optimizer in self.optimizers:
            self._handles.append(optimizer.register_step_pre_hook(self._pre_hook))
            self._handles.append(optimizer.register_step_post_hook(self._post_hook))
        self.start()
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre_hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.before_step()

    def _post_hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.after_step()

    # -- checks ------------------------------------------------------------------------------
    def graph(self) -> ModelGraph:
        from ..live import graph_from_module

        optimizer = self.optimizers[0] if len(self.optimizers) == 1 else None
        graph = graph_from_module(self.model, optimizer, name=self.reporter.name)
        if len(self.optimizers) > 1:
            graph.optimizers.extend(
                graph_from_module(self.model, opt).optimizers[0] for opt in self.optimizers
            )
        return graph

    def start(self) -> None:
        """At the start of training (or of an epoch): the rules, when the trainable set is new."""
        first = self._signature is None
        findings = self._static()
        when = ("start of training" if first else
                f"trainable parameters changed, before optimizer step {self.step + 1}")
        self.reporter.emit(findings, when)

    def _static(self) -> list:
        signature = self._trainable_signature()
        if signature == self._signature:
            return []
        self._signature = signature
        self._watch_start = self.step
        self._watch_until = self.step + WATCHED_STEPS
        graph = self.graph()
        self._stats = self._snapshot_stats(graph)
        # BatchNorm in train mode is proven live (PI602) once the statistics move
        return [f for f in static_findings(graph, self.settings) if f.code != "PI201"]

    def before_step(self) -> None:
        """Called with the gradients in place, before the optimizer step runs. Everything found
        here is reported together (a strict guard raises once, with all of it)."""
        findings = self._static()  # an unfreeze since the last step starts a new watch
        if self.step < self._watch_until:
            graph = self.graph()
            live = LiveState(graph=graph, step=self.step + 1)
            params = dict(self.model.named_parameters())
            names = [name for name in graph.tensors if name in params]
            live.has_grad = {name: params[name].grad is not None for name in names}
            live.opt_state = {name: self._has_state(params[name]) for name in names}
            live.stats_moved = self._moved_stats(graph)
            found = live_findings(live, self.settings)
            if self.step != self._watch_start or not any(live.has_grad.values()):
                # "no gradient" is a verdict on the first step after the start or an unfreeze
                found = [f for f in found if f.code != "PI603"]
            findings += found
        self.reporter.emit(findings, f"before optimizer step {self.step + 1}")

    def after_step(self) -> None:
        self.step += 1

    # -- helpers -----------------------------------------------------------------------------
    def _trainable_signature(self) -> tuple[bool, ...]:
        return tuple(p.requires_grad for p in self.model.parameters())

    def _has_state(self, param: Any) -> bool:
        return any(bool(opt.state.get(param)) for opt in self.optimizers)

    def _frozen_bn_layers(self, graph: ModelGraph) -> list[str]:
        out = []
        for path, layer in graph.layers.items():
            if layer.kind is not LayerKind.BATCHNORM:
                continue
            block = [path, *graph.ancestors(path)]
            for candidate in block:
                params = graph.subtree_parameters(candidate) if candidate != path else (
                    graph.own_parameters(path))
                if params:
                    if all(p.trainable is Trainable.FROZEN for p in params):
                        out.append(path)
                    break
        return out

    def _snapshot_stats(self, graph: ModelGraph) -> dict[str, dict[str, Any]]:
        modules = dict(self.model.named_modules())
        snapshot: dict[str, dict[str, Any]] = {}
        for path in self._frozen_bn_layers(graph):
            module = modules.get(path)
            stats = {s: getattr(module, s, None) for s in _STATS}
            snapshot[path] = {s: v.detach().clone() for s, v in stats.items() if v is not None}
        return snapshot

    def _moved_stats(self, graph: ModelGraph) -> dict[str, tuple[list[str], float]]:
        modules = dict(self.model.named_modules())
        moved: dict[str, tuple[list[str], float]] = {}
        for path, saved in self._stats.items():
            module = modules.get(path)
            names, largest = [], 0.0
            for stat, before in saved.items():
                now = getattr(module, stat, None)
                if now is None or now.shape != before.shape:
                    continue
                change = float((now.detach() - before).abs().max()) if now.numel() else 0.0
                if change > 0:
                    names.append(f"{path}.{stat}")
                    largest = max(largest, change)
            if names:
                moved[path] = (names, largest)
        return moved


def guard(model: Any, optimizer: Any = None, strict: bool = False,
          settings: Settings | None = None) -> TorchGuard:
    """Guard a hand-written PyTorch loop: checks now and before the optimizer's steps.

    ``optimizer`` may be one optimizer or a list. Returns the guard (``.findings``, ``.remove()``).
    """
    return TorchGuard(model, optimizer, strict=strict, settings=settings).attach()
