"""The Keras guard: a ``keras.callbacks.Callback`` checking the first step of every ``fit``.

    from paraminspect.guards.keras import ParamInspectKerasCallback
    model.fit(x, y, callbacks=[ParamInspectKerasCallback(strict=True)])

Keras does not show gradients to callbacks, so the guard watches values instead: it fingerprints
every variable when training starts (each ``fit``, so a re-compile is covered) and after an
epoch whose ``trainable`` flags changed, and compares after the first batch:
frozen weights that were updated (PI601: typically ``trainable = False`` set after ``compile``),
BatchNorm statistics that moved inside frozen layers (PI602), trainable weights that were not
updated (PI603). Findings come after step 1, before step 2.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np

from ..config import Settings
from ..graph import Fact, LayerKind, ModelGraph, Source, Tensor, TensorRole, Trainable
from ..loaders.keras.layer_config import BUFFER_NAMES
from .core import Reporter, live_findings
from .live import LiveState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_STATS = ("moving_mean", "moving_variance")


def _name(variable: Any) -> str:
    return str(getattr(variable, "path", variable.name)).replace("/", ".")


def _digest(variable: Any) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes(),
                           digest_size=16).digest()


def graph_from_keras(model: Any) -> ModelGraph:
    """A graph of a live Keras model: variables by path, trainable as the model will train them."""
    graph = ModelGraph(path=model.name, format="live", content="model", framework="keras",
                       framework_version=keras.__version__)
    trainable = {id(v) for v in model.trainable_weights}
    for variable in model.weights:
        name = _name(variable)
        layer, _, local = name.rpartition(".")
        # a variable's own ``trainable`` follows its layer's flag: judge the role by name/dtype
        is_param = local not in BUFFER_NAMES and "float" in str(variable.dtype)
        tensor = Tensor(name=name, layer=layer,
                        role=TensorRole.PARAMETER if is_param else TensorRole.BUFFER,
                        shape=tuple(variable.shape), dtype=str(variable.dtype))
        if is_param:
            tensor.trainable = (Trainable.TRAINABLE if id(variable) in trainable
                                else Trainable.FROZEN)
            tensor.trainable_fact = Fact(Source.STORED, "model.trainable_weights of the live model")
        graph.add_tensor(tensor)
        if local in _STATS:
            graph.layers[layer].kind = LayerKind.BATCHNORM
    graph.order = list(graph.layers)
    return graph


class ParamInspectKerasCallback(keras.callbacks.Callback):
    """Warn once per finding (``strict=True``: raise, stopping ``fit`` before step 2)."""

    def __init__(self, strict: bool = False, settings: Settings | None = None) -> None:
        super().__init__()
        self.strict = strict
        self.settings = settings or Settings()
        self.reporter: Reporter | None = None
        self._before: dict[str, tuple[bytes, Any]] = {}
        self._signature: tuple[bool, ...] | None = None
        self._watching = False
        self._step = 0

    @property
    def findings(self) -> list:
        return self.reporter.findings if self.reporter is not None else []

    def _start(self) -> None:
        if self.reporter is None:
            self.reporter = Reporter(self.model.name, self.strict, self.settings)
        self._signature = self._trainable_signature()
        self._before = {}
        for variable in self.model.weights:
            values = None
            if _name(variable).rsplit(".", 1)[-1] in _STATS:
                values = np.array(keras.ops.convert_to_numpy(variable))
            self._before[_name(variable)] = (_digest(variable), values)
        self._watching = True

    def _trainable_signature(self) -> tuple[bool, ...]:
        return tuple(bool(layer.trainable) for layer in self.model._flatten_layers())

    def on_train_begin(self, logs: Any = None) -> None:
        self._step = 0
        self._start()

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if self._trainable_signature() != self._signature:
            self._start()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        if not self._watching:
            return
        self._watching = False
        graph = graph_from_keras(self.model)
        live = LiveState(graph=graph, step=self._step + 1, framework="keras")
        live.updated = {}
        for variable in self.model.weights:
            name = _name(variable)
            if name not in self._before:
                continue
            digest, values = self._before[name]
            live.updated[name] = _digest(variable) != digest
            layer, _, local = name.rpartition(".")
            if local in _STATS and live.updated[name] and self._frozen(graph, layer):
                change = float(np.max(np.abs(
                    np.asarray(keras.ops.convert_to_numpy(variable)) - values)))
                names, size = live.stats_moved.get(layer, ([], 0.0))
                live.stats_moved[layer] = ([*names, name], max(size, change))
        findings = live_findings(live, self.settings)
        assert self.reporter is not None
        self.reporter.emit(findings, f"after optimizer step {self._step}, before step "
                                     f"{self._step + 1}")

    @staticmethod
    def _frozen(graph: ModelGraph, layer: str) -> bool:
        params = graph.own_parameters(layer) if layer in graph.layers else []
        return bool(params) and all(p.trainable is Trainable.FROZEN for p in params)
