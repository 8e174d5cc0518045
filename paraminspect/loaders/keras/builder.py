"""The layer tree of a Keras model built from its config: one :class:`.layer_config.LayerSpec`
and graph layer per config entry, effective ``trainable`` flags, Lambda code references, and the
finishing pass (BatchNorm modes, dataflow edges and order) once the weights are attached.
"""

from __future__ import annotations

from ...errors import LoadError
from ...graph import (
    CodeReference,
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    Trainable,
)
from ...kinds import classify
from ..pickle.limits import DEFAULT_LIMITS
from .layer_config import CONFIG_ATTRS, LayerSpec, check_layer_count, config_name
from .layer_graph import add_dataflow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Builder:
    """The graph of one Keras file: its config's layer tree first, then the weights
    (:mod:`.weights`), then :meth:`finish`."""

    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.specs: dict[str, LayerSpec] = {}
        self.order_specs: list[LayerSpec] = []  #: build order (config order, depth first)
        self.root: LayerSpec | None = None
        self.subclassed = False
        self.where = "config"
        self.legacy_keys: dict[str, Tensor] = {}

    # ---- config ----
    def add_root(self, config: dict[str, Any], where: str) -> None:
        self.where = where
        check_layer_count(config, DEFAULT_LIMITS.max_layers)
        self.root = self._add(config, "", [])

    def _add(
        self, entry: dict[str, Any], path: str, enclosing: list[tuple[str, bool | None]],
    ) -> LayerSpec:
        cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        if isinstance(entry.get("config"), list):  # Keras 2.0-2.2 Sequential: a bare layer list
            cfg = {"layers": entry["config"]}
        name = str(cfg.get("name") or entry.get("name") or path.rsplit(".", 1)[-1] or "")
        class_name = str(entry.get("class_name") or "")
        registered = entry.get("registered_name")
        module = entry.get("module")
        custom = bool(registered) and not str(registered).startswith("keras") or (
            isinstance(module, str) and not module.startswith(("keras", "tf_keras"))
        )
        bare = class_name.split(">")[-1]
        if registered and custom:
            qualified = str(registered)
        elif isinstance(module, str) and module.startswith(("keras", "tf_keras")):
            qualified = f"{module}.{class_name}"
        else:
            qualified = f"keras.layers.{class_name}" if class_name else ""
        flag = cfg.get("trainable")
        own = flag if isinstance(flag, bool) else None
        chain = [*enclosing, (path or "the model", own)]
        is_model = isinstance(cfg.get("layers"), list) or not path
        trainable, fact = self._effective(chain, class_name)
        if is_model and own is None:
            # Keras 2 model configs carry no flag of their own (only their layers do): a model
            # without one decides nothing for its layers
            chain = [*enclosing]
        spec = LayerSpec(path=path, name=name, class_name=qualified, bare=bare, config=cfg,
                         custom=custom, trainable=trainable, trainable_fact=fact)
        if len(self.specs) >= DEFAULT_LIMITS.max_layers:
            raise LoadError(
                f"model config with more than {DEFAULT_LIMITS.max_layers:,} layers: refused"
            )
        self.specs[path] = spec
        layer = self.graph.ensure_layer(path)
        layer.class_name = qualified or None
        layer.kind = classify(bare)
        layer.kind_fact = Fact(Source.STORED, f"layer class stored in {self.where}")
        if own is not None:
            layer.trainable_flag = Trainable.TRAINABLE if own else Trainable.FROZEN
        for attr in CONFIG_ATTRS:
            if isinstance(cfg.get(attr), (bool, int, float)):
                layer.attrs[attr] = cfg[attr]
        layers = cfg.get("layers")
        if isinstance(layers, list):
            spec.kind = "sequential" if bare == "Sequential" else "functional"
            spec.raw_layers = [item for item in layers if isinstance(item, dict)]
            layer.kind = LayerKind.MODEL
            for item in spec.raw_layers:
                child_cfg = item.get("config") if isinstance(item.get("config"), dict) else {}
                child_name = str(item.get("name") or child_cfg.get("name") or "")
                if not child_name:
                    raise LoadError(f"{self.where}: a layer without a name in {path or 'the model'}")
                child_path = f"{path}.{child_name}" if path else child_name
                if child_path in self.specs:
                    continue  # a layer listed twice
                spec.children.append(self._add(item, child_path, chain))
        elif not path or bare in ("Functional", "Model", "Sequential"):
            spec.kind = "subclassed" if not path or bare not in ("Functional", "Sequential") else spec.kind
            layer.kind = LayerKind.MODEL
            if spec.kind == "subclassed":
                self.subclassed = True
        else:
            self.order_specs.append(spec)
            self._nested(spec, chain)
        if bare == "Lambda":
            self._lambda(spec)
        return spec

    def _nested(self, spec: LayerSpec, chain: list[tuple[str, bool | None]]) -> None:
        """Sub-layers a wrapper stores in its own config: ``Bidirectional`` (``layer`` and
        ``backward_layer``, each with its own ``trainable``), ``TimeDistributed``-style wrappers
        (``layer``) and generic ``RNN`` (``cell``). Paths use the attribute names Keras 3 keeps
        in the weights file (``bi.forward_layer``, ``bi.backward_layer``)."""
        cfg = spec.config
        inner = cfg.get("layer") if isinstance(cfg.get("layer"), dict) else None
        nested: list[tuple[str, dict[str, Any], str | None]] = []
        if spec.bare == "Bidirectional" and inner is not None:
            base = config_name(inner)
            backward = cfg.get("backward_layer")
            nested.append(("forward_layer", inner,
                           base if base.startswith("forward_") else f"forward_{base}"))
            if isinstance(backward, dict):
                nested.append(("backward_layer", backward, config_name(backward)))
            else:  # built as a copy of the forward layer, with its flag
                nested.append(("backward_layer", inner, f"backward_{base.removeprefix('forward_')}"))
        elif inner is not None:
            nested.append(("layer", inner, None))
        elif isinstance(cfg.get("cell"), dict):
            nested.append(("cell", cfg["cell"], None))
        for attr, entry, name in nested:
            child = self._add(entry, f"{spec.path}.{attr}", chain)
            if name:
                child.name = name
            if attr == "backward_layer" and entry is inner and child.trainable is not Trainable.FROZEN:
                child.trainable_fact = Fact(
                    Source.INFERRED,
                    "no backward_layer config stored: the backward half is a copy of the "
                    "forward layer, flag included",
                )
            spec.children.append(child)

    def add_implicit(self, parent: LayerSpec, key: str, class_guess: str | None,
                     config: dict[str, Any]) -> LayerSpec:
        """A sub-layer that only the weights file shows (an LSTM's ``cell``, the projections of
        ``MultiHeadAttention``): it follows its parent's trainable flag, as Keras sets it."""
        path = f"{parent.path}.{key}"
        layer = self.graph.ensure_layer(path)
        if class_guess:
            layer.class_name = f"keras.layers.{class_guess}"
            layer.kind = classify(class_guess)
            layer.kind_fact = Fact(Source.INFERRED, f"sub-layer {key} of {parent.bare}")
        spec = LayerSpec(path=path, name=key, class_name=layer.class_name or "",
                         bare=class_guess or "", config=config, custom=class_guess is None,
                         trainable=parent.trainable, trainable_fact=parent.trainable_fact)
        self.specs[path] = spec
        parent.children.append(spec)
        # build order: right after the parent and whatever was built for it already
        last = max((i for i, s in enumerate(self.order_specs)
                    if s.path == parent.path or s.path.startswith(parent.path + ".")), default=-1)
        self.order_specs.insert(last + 1, spec)
        return spec

    @staticmethod
    def _effective(chain: list[tuple[str, bool | None]], class_name: str) -> tuple[Trainable, Fact]:
        frozen = [where for where, flag in chain if flag is False]
        if frozen:
            return Trainable.FROZEN, Fact(Source.STORED, f"trainable=False on {frozen[0]}")
        if not chain or any(flag is None for _, flag in chain):
            return Trainable.UNKNOWN, Fact(Source.UNKNOWN, "no trainable flag stored")
        where = chain[-1][0]
        extra = " and every enclosing model" if len(chain) > 1 else ""
        return Trainable.TRAINABLE, Fact(Source.STORED, f"trainable=True on {where}{extra}")

    def _lambda(self, spec: LayerSpec) -> None:
        function = spec.config.get("function")
        if isinstance(function, dict) and function.get("class_name") == "__lambda__":
            how = "bytecode"
        elif isinstance(function, (str, dict)):
            how = "reference"
        else:
            return
        # The code is never decoded, let alone unmarshalled.
        self.graph.code_references.append(
            CodeReference(target="keras.layers.Lambda", how=how, location=spec.path)
        )

    # ---- structure ----
    def finish(self) -> None:
        """Modes, edges, outputs and order, once every layer and tensor exists."""
        graph = self.graph
        for spec in self.specs.values():
            layer = graph.layers[spec.path]
            if layer.kind is LayerKind.BATCHNORM and spec.trainable is Trainable.FROZEN:
                layer.mode = Mode.EVAL
                layer.mode_fact = Fact(
                    Source.INFERRED,
                    "Keras runs BatchNormalization in inference mode when trainable=False",
                )
        root = self.root
        if root is None or root.kind == "subclassed" or graph.content == "weights":
            graph.order = list(graph.layers)
            graph.order_source = OrderSource.REGISTRATION
            if root is not None and root.kind == "subclassed":
                graph.notes.append(
                    f"subclassed model ({root.class_name}): no layer graph stored, layer order "
                    "is not dataflow"
                )
            return
        add_dataflow(graph, root, self.order_specs)
