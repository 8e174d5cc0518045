"""Keras files (``.keras`` zip, legacy ``.h5``, ``*.weights.h5``), read as data.

Neither Keras nor TensorFlow is imported and nothing is deserialized: ``config.json`` /
``model_config`` are parsed as JSON, the HDF5 weights with h5py for dataset names, shapes and
dtypes only (never a value). Functional and Sequential configs give the layer tree, per-layer
``trainable`` flags and real dataflow edges; subclassed models store no graph, so their layers
come from the weights file. See FORMATS.md section 2.
"""

from __future__ import annotations

import heapq
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from ...errors import LoadError, NotAModel
from ...graph import (
    CodeReference,
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...io import is_remote, open_binary, open_member
from ...kinds import classify
from ...record import Record
from ...sniff import Sniffed, open_archive
from ...zipguard import read_entry
from ..pickle.limits import DEFAULT_LIMITS
from . import optimizer as keras_optim
from .hdf5_guard import guard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Shape = tuple[int, ...]

#: non-trainable-by-construction variables of built-in layers (by local name)
BUFFER_NAMES = frozenset({
    "moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev",
    "seed_generator_state", "state",
})
#: built-in layers whose variables are all non-trainable statistics
STAT_LAYERS = frozenset({"Normalization", "Discretization", "StringLookup", "IntegerLookup"})
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16"})
#: Keras class -> snake name Keras uses for the layer's group in ``.keras`` weights
_SNAKE_CLASSES = {
    "dense": "Dense", "einsum_dense": "EinsumDense", "conv1d": "Conv1D", "conv2d": "Conv2D",
    "conv3d": "Conv3D", "depthwise_conv2d": "DepthwiseConv2D", "separable_conv2d":
    "SeparableConv2D", "conv2d_transpose": "Conv2DTranspose", "batch_normalization":
    "BatchNormalization", "layer_normalization": "LayerNormalization", "group_normalization":
    "GroupNormalization", "embedding": "Embedding", "input_layer": "InputLayer", "dropout":
    "Dropout", "re_lu": "ReLU", "activation": "Activation", "functional": "Functional",
    "sequential": "Sequential", "global_average_pooling2d": "GlobalAveragePooling2D",
    "max_pooling2d": "MaxPooling2D", "flatten": "Flatten", "lambda": "Lambda",
}
#: attributes of layer configs worth keeping for rules and ``show``
CONFIG_ATTRS = ("momentum", "epsilon", "center", "scale", "use_bias", "rate", "synchronized")


# -- entry point ---------------------------------------------------------------------------------
def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read a ``.keras`` zip (format ``keras``) or an HDF5 Keras file (format ``keras-h5``)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a core dependency
        raise LoadError("reading Keras files needs h5py (pip install h5py)") from None
    try:
        if sniffed.format == "keras":
            return _load_zip(path, sniffed, h5py)
        return _load_hdf5(path, h5py)
    except (
        OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, SystemError,
        AttributeError,
    ) as exc:
        # libhdf5 reports damaged structures lazily, as whatever error the access raised
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise LoadError(f"corrupt HDF5 data ({type(exc).__name__}: {detail})") from None


# -- .keras zip ----------------------------------------------------------------------------------
def _load_zip(path: Path, sniffed: Sniffed, h5py: Any) -> ModelGraph:
    try:
        with open_archive(path, sniffed) as archive:
            return _load_zip_archive(path, archive, h5py)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise LoadError(f"corrupt .keras archive ({exc})") from None


def _load_zip_archive(path: Path, archive: zipfile.ZipFile, h5py: Any) -> ModelGraph:
    entries = {info.filename: info for info in archive.infolist()}
    names = set(entries)
    if "config.json" not in names:
        raise LoadError(".keras archive without config.json")
    limits = DEFAULT_LIMITS

    def read(name: str) -> bytes:  # bounded: a JSON bomb is a clear error, not an outage
        return read_entry(archive, entries[name], limits.max_json_bytes,
                          limits.max_compression_ratio)

    config_bytes = read("config.json")
    meta_bytes = read("metadata.json") if "metadata.json" in names else b""
    config = _json(config_bytes, "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise LoadError("config.json is not a Keras model config (no class_name)")
    graph = ModelGraph(path=str(path), format="keras", content="model", framework="keras")
    if meta_bytes:
        meta = _json(meta_bytes, "metadata.json")
        if isinstance(meta, dict) and meta.get("keras_version"):
            graph.framework_version = str(meta["keras_version"])
            graph.metadata["keras_version"] = graph.framework_version
    builder = _Builder(graph)
    builder.add_root(config, "config.json")
    if "model.weights.h5" not in names:
        graph.notes.append("no model.weights.h5 in the archive: weights unknown")
        builder.finish()
        return graph
    # HDF5 reached in place through the member's offset: only its object headers are read, never
    # the weights (reading the member whole cost its size in memory plus a CRC pass over it).
    try:
        handle = h5py.File(open_member(archive, "model.weights.h5"), "r")
    except (OSError, ValueError) as exc:
        raise LoadError(f"model.weights.h5 is not readable HDF5 ({exc})") from None
    with handle:
        guard(handle, h5py)
        builder.attach_v3_weights(handle)
        builder.finish()
        opt_cfg = keras_optim.parse_config(
            (config.get("compile_config") or {}).get("optimizer")
            if isinstance(config.get("compile_config"), dict) else None,
            "compile_config in config.json",
        )
        builder.attach_v3_optimizer(handle, opt_cfg)
    return graph


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{what} is not valid JSON ({exc})") from None


# -- HDF5: legacy model.save("m.h5"), weights-only files -------------------------------------------
def _load_hdf5(path: Path, h5py: Any) -> ModelGraph:
    try:
        # a URL goes through the range-reading stream; h5py reads only the object headers
        handle = h5py.File(open_binary(path) if is_remote(path) else path, "r")
    except (OSError, ValueError) as exc:
        raise LoadError(f"unreadable HDF5 file ({exc})") from None
    with handle:
        guard(handle, h5py)
        attrs = handle.attrs
        graph = ModelGraph(path=str(path), format="keras-h5", framework="keras")
        version = _text(attrs.get("keras_version"))
        if version is None and "model_weights" in handle:
            version = _text(handle["model_weights"].attrs.get("keras_version"))
        graph.framework_version = version
        if version:
            graph.metadata["keras_version"] = version
        builder = _Builder(graph)
        if "model_config" in attrs:
            config = _json(_text(attrs["model_config"]) or "", "model_config")
            if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
                raise LoadError("model_config is not a Keras model config (no class_name)")
            graph.content = "model"
            builder.add_root(config, "model_config")
            if "model_weights" not in handle:
                raise LoadError("legacy Keras .h5 without its model_weights group")
            builder.attach_legacy_weights(handle["model_weights"])
            builder.finish()
            training = attrs.get("training_config")
            if training is not None:
                tc = _json(_text(training) or "", "training_config")
                opt_cfg = keras_optim.parse_config(
                    tc.get("optimizer_config") if isinstance(tc, dict) else None,
                    "training_config",
                )
                builder.attach_legacy_optimizer(handle, opt_cfg)
            return graph
        graph.content = "weights"
        graph.notes.append("weights-only file: no model config, so trainability is unknown")
        if "layer_names" in attrs:  # tf.keras 2 / legacy save_weights
            builder.attach_legacy_weights(handle, weights_only=True)
        elif "layers" in handle or "vars" in handle:  # Keras 3 save_weights
            builder.attach_v3_weights(handle, weights_only=True)
            opt_vars = handle.get("optimizer/vars")
            if opt_vars is not None and len(opt_vars):
                graph.metadata["optimizer_variables"] = len(opt_vars)
                graph.notes.append(
                    f"optimizer/vars holds {len(opt_vars)} variables (indices only): without the "
                    "model config they cannot be matched to trainable weights"
                )
        else:
            raise NotAModel("HDF5 file that is not a Keras model or weights file")
        builder.finish()
        return graph


def _dataset_names(group: Any) -> list[str]:
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if hasattr(obj, "shape") else None)
    return found


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _names(value: Any) -> list[str] | None:
    """A ``weight_names`` / ``layer_names`` attribute: an array, or its numpy repr string."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        text = _text(value) or ""
        if "..." in text:
            return None
        return [m.group(1) or m.group(2) for m in re.finditer(r"'([^']*)'|\"([^\"]*)\"", text)]
    try:
        return [_text(v) or "" for v in value]
    except TypeError:
        return None


# -- building the graph --------------------------------------------------------------------------
class _Spec(Record):
    """One layer as the config describes it."""

    __slots__ = ("path", "name", "class_name", "bare", "config", "custom", "trainable",
                 "trainable_fact", "children", "raw_layers", "kind")
    path: str
    name: str
    class_name: str
    bare: str
    config: dict[str, Any]
    custom: bool
    trainable: Trainable
    trainable_fact: Fact
    children: list[_Spec]
    raw_layers: list[dict[str, Any]] | None  #: for models: the config's layer list
    kind: str  #: layer | functional | sequential | subclassed

    def __init__(
        self, path: str, name: str, class_name: str, bare: str, config: dict[str, Any],
        custom: bool, trainable: Trainable, trainable_fact: Fact,
        children: list[_Spec] | None = None, raw_layers: list[dict[str, Any]] | None = None,
        kind: str = "layer",
    ) -> None:
        self.path = path
        self.name = name
        self.class_name = class_name
        self.bare = bare
        self.config = config
        self.custom = custom
        self.trainable = trainable
        self.trainable_fact = trainable_fact
        self.children = [] if children is None else children
        self.raw_layers = raw_layers
        self.kind = kind


class _Builder:
    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.specs: dict[str, _Spec] = {}
        self.order_specs: list[_Spec] = []  #: build order (config order, depth first)
        self.root: _Spec | None = None
        self.subclassed = False
        self.where = "config"
        self.legacy_keys: dict[str, Tensor] = {}

    # ---- config ----
    def add_root(self, config: dict[str, Any], where: str) -> None:
        self.where = where
        _check_layer_count(config, DEFAULT_LIMITS.max_layers)
        self.root = self._add(config, "", [])

    def _add(self, entry: dict[str, Any], path: str, enclosing: list[tuple[str, bool | None]]) -> _Spec:
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
        spec = _Spec(path=path, name=name, class_name=qualified, bare=bare, config=cfg,
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

    def _nested(self, spec: _Spec, chain: list[tuple[str, bool | None]]) -> None:
        """Sub-layers a wrapper stores in its own config: ``Bidirectional`` (``layer`` and
        ``backward_layer``, each with its own ``trainable``), ``TimeDistributed``-style wrappers
        (``layer``) and generic ``RNN`` (``cell``). Paths use the attribute names Keras 3 keeps
        in the weights file (``bi.forward_layer``, ``bi.backward_layer``)."""
        cfg = spec.config
        inner = cfg.get("layer") if isinstance(cfg.get("layer"), dict) else None
        nested: list[tuple[str, dict[str, Any], str | None]] = []
        if spec.bare == "Bidirectional" and inner is not None:
            base = _config_name(inner)
            backward = cfg.get("backward_layer")
            nested.append(("forward_layer", inner,
                           base if base.startswith("forward_") else f"forward_{base}"))
            if isinstance(backward, dict):
                nested.append(("backward_layer", backward, _config_name(backward)))
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

    def add_implicit(self, parent: _Spec, key: str, class_guess: str | None,
                     config: dict[str, Any]) -> _Spec:
        """A sub-layer that only the weights file shows (an LSTM's ``cell``, the projections of
        ``MultiHeadAttention``): it follows its parent's trainable flag, as Keras sets it."""
        path = f"{parent.path}.{key}"
        layer = self.graph.ensure_layer(path)
        if class_guess:
            layer.class_name = f"keras.layers.{class_guess}"
            layer.kind = classify(class_guess)
            layer.kind_fact = Fact(Source.INFERRED, f"sub-layer {key} of {parent.bare}")
        spec = _Spec(path=path, name=key, class_name=layer.class_name or "",
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

    def _lambda(self, spec: _Spec) -> None:
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

    # ---- weights: Keras 3 (.keras / .weights.h5) ----
    def attach_v3_weights(self, handle: Any, weights_only: bool = False) -> None:
        """Match ``layers/<snake>/vars`` groups with the config's layers (by the ``name`` attr
        where stored, else by Keras' snake-case naming)."""
        if self.root is None or self.root.kind == "subclassed" or weights_only:
            self._v3_from_file(handle, "", weights_only)
            return
        self._v3_container(handle, self.root)

    def _v3_container(self, group: Any, spec: _Spec) -> None:
        self._v3_vars(group, spec)
        layers = group.get("layers")
        if layers is None or not spec.children:
            return
        by_name: dict[str, Any] = {}
        for key in layers:
            child = layers[key]
            vars_group = child.get("vars") if hasattr(child, "get") else None
            stored = _text(vars_group.attrs.get("name")) if vars_group is not None else None
            if stored:
                by_name[stored] = child
        counters: dict[str, int] = {}
        for child_spec in spec.children:
            snake = _snake(child_spec.bare)
            seen = counters.get(snake, 0)
            counters[snake] = seen + 1
            child = by_name.get(child_spec.name)
            if child is None and not by_name:
                child = layers.get(snake if seen == 0 else f"{snake}_{seen}")
            if child is None:
                continue
            if child_spec.kind in ("functional", "sequential"):
                self._v3_container(child, child_spec)
            else:
                self._v3_vars(child, child_spec)

    def _v3_vars(self, group: Any, spec: _Spec) -> None:
        vars_group = group.get("vars")
        if vars_group is not None:
            keys = sorted((k for k in vars_group if k.isdigit()), key=int)
            shapes = [(tuple(vars_group[k].shape), str(vars_group[k].dtype)) for k in keys]
            local = _local_names(spec.bare, spec.config, len(shapes)) if not spec.custom else None
            for index, (shape, dtype) in enumerate(shapes):
                tensor = self._tensor(spec, local[index] if local else f"var{index}", shape,
                                      dtype, local is not None)
                tensor.origin = vars_group[keys[index]].name  # HDF5 path, for value readers
        if spec.kind in ("functional", "sequential") or spec.custom:
            return
        for key in _sublayer_order(spec.bare, [k for k in group if k not in ("vars", "layers")]):
            child = group[key]
            if not hasattr(child, "keys"):
                continue
            sub = self.specs.get(f"{spec.path}.{key}")
            if sub is None:
                guess, config = _implicit_class(spec, key)
                sub = self.add_implicit(spec, key, guess, config)
            self._v3_vars(child, sub)

    def _v3_from_file(self, group: Any, path: str, weights_only: bool) -> None:
        """Layers straight from the weights file (subclassed models, weights-only files)."""
        graph = self.graph
        if path not in self.specs:
            self._file_layer(path, None)
        spec = self.specs[path]
        self._v3_vars(group, spec)
        for key in sorted(group):
            if key in ("vars", "optimizer", "metrics") or not hasattr(group[key], "keys"):
                continue
            if key == "layers":
                for inner in sorted(group[key]):
                    self._v3_child(group[key][inner], path, inner, from_list=True,
                                   weights_only=weights_only)
            else:
                self._v3_child(group[key], path, key, from_list=False, weights_only=weights_only)
        if not path:
            graph.notes.append(
                "layers read from the weights file, in its (alphabetical) order: the true "
                "call order is not stored"
            )

    def _v3_child(self, group: Any, parent: str, key: str, from_list: bool, weights_only: bool) -> None:
        vars_group = group.get("vars")
        stored = _text(vars_group.attrs.get("name")) if vars_group is not None else None
        name = stored or key
        path = f"{parent}.{name}" if parent else name
        # Keras names list entries after their class (dense, dense_1); attributes by attribute.
        guess = _SNAKE_CLASSES.get(re.sub(r"_\d+$", "", key)) if from_list else None
        self._file_layer(path, guess)
        self._v3_from_file(group, path, weights_only)

    def _file_layer(self, path: str, class_guess: str | None) -> None:
        layer = self.graph.ensure_layer(path)
        parent_spec = self.specs.get(self.graph.ancestors(path)[0]) if path else None
        if class_guess:
            layer.class_name = f"keras.layers.{class_guess}"
            layer.kind = classify(class_guess)
            layer.kind_fact = Fact(Source.INFERRED, "from the weights file's group name")
        elif path:
            layer.kind_fact = Fact(Source.UNKNOWN, "layer class not stored for this layer")
        if parent_spec is not None and parent_spec.trainable is Trainable.FROZEN:
            trainable, fact = parent_spec.trainable, parent_spec.trainable_fact
        elif not path and self.root is not None:
            trainable, fact = self.root.trainable, self.root.trainable_fact
            if trainable is Trainable.TRAINABLE:
                trainable, fact = Trainable.UNKNOWN, Fact(
                    Source.UNKNOWN, "subclassed model: inner layers' trainable flags not stored"
                )
        else:
            trainable, fact = Trainable.UNKNOWN, Fact(Source.UNKNOWN, "no trainable flag stored")
        spec = _Spec(path=path, name=path.rsplit(".", 1)[-1], class_name=layer.class_name or "",
                     bare=class_guess or "", config={}, custom=class_guess is None,
                     trainable=trainable, trainable_fact=fact)
        self.specs[path] = spec
        if path:
            self.order_specs.append(spec)

    # ---- weights: legacy .h5 ----
    def attach_legacy_weights(self, group: Any, weights_only: bool = False) -> None:
        layer_names = _names(group.attrs.get("layer_names")) or [
            k for k in group if k != "top_level_model_weights"
        ]
        for top in layer_names:
            if top not in group:
                continue
            sub = group[top]
            weight_names = _names(sub.attrs.get("weight_names"))
            if weight_names is None:
                weight_names = _dataset_names(sub)
            top_spec = self.specs.get(top)
            canonical = None
            if top_spec is not None and not top_spec.children and not top_spec.custom:
                # by position: stored names may carry graph-uniquifying suffixes
                # (batch_normalization_1_1/moving_mean:0, kernel_1:0)
                canonical = _local_names(top_spec.bare, top_spec.config, len(weight_names))
            for position, weight_name in enumerate(weight_names):
                dataset = sub.get(weight_name)
                if dataset is None or not hasattr(dataset, "shape"):
                    continue
                if canonical is not None and top_spec is not None:
                    spec, local = top_spec, canonical[position]
                else:
                    spec, local = self._legacy_owner(top, weight_name, weights_only)
                tensor = self._tensor(spec, local, tuple(dataset.shape), str(dataset.dtype),
                                      named=True)
                tensor.origin = dataset.name  # HDF5 path, for readers of the values
                self.legacy_keys[weight_name.removesuffix(":0")] = tensor

    def _legacy_owner(self, top: str, weight_name: str, weights_only: bool) -> tuple[_Spec, str]:
        parts = weight_name.removesuffix(":0").split("/")
        local = parts[-1]
        top_spec = self.specs.get(top)
        if top_spec is not None:
            for depth in reversed(range(len(parts) - 1)):
                wanted = parts[depth]
                hits = [s for s in self._subtree(top_spec) if s.name == wanted]
                if hits:
                    return hits[0], "/".join(parts[depth + 1 :]).replace("/", "_")
            return top_spec, "_".join(parts)
        # weights only: the layer tree is the file's
        path = top if len(parts) < 2 or parts[0] == top else f"{top}.{parts[0]}"
        if path not in self.specs:
            if top not in self.specs:
                self._file_layer(top, None)
            if path != top:
                self._file_layer(path, None)
        return self.specs[path], local

    def _subtree(self, spec: _Spec) -> Iterator[_Spec]:
        yield spec
        for child in spec.children:
            yield from self._subtree(child)

    # ---- tensors ----
    def _tensor(self, spec: _Spec, local: str, shape: Shape, dtype: str, named: bool) -> Tensor:
        graph = self.graph
        name = f"{spec.path}.{local}" if spec.path else local
        while name in graph.tensors:
            name += "_"
        is_buffer = (
            (named and re.sub(r"_\d+$", "", local) in BUFFER_NAMES and not spec.custom)
            or spec.bare in STAT_LAYERS
            or dtype not in FLOAT_DTYPES
        )
        tensor = Tensor(name=name, layer=spec.path, role=TensorRole.BUFFER if is_buffer
                        else TensorRole.PARAMETER, shape=shape, dtype=dtype)
        if not is_buffer:
            if spec.trainable is Trainable.FROZEN:
                tensor.trainable, tensor.trainable_fact = spec.trainable, spec.trainable_fact
            elif spec.custom or not named:
                tensor.trainable_fact = Fact(
                    Source.UNKNOWN,
                    f"{spec.class_name or 'unknown'} layer: which of its variables are trainable "
                    "is not stored",
                )
            else:
                tensor.trainable, tensor.trainable_fact = spec.trainable, spec.trainable_fact
        return graph.add_tensor(tensor)

    # ---- optimizer ----
    def _build_order(self) -> list[Tensor]:
        """Weights in the order Keras builds the optimizer over them (layer order, depth first)."""
        graph = self.graph
        return [
            graph.tensors[n]
            for spec in self.order_specs
            for n in graph.layers[spec.path].tensors
            if graph.tensors[n].role is TensorRole.PARAMETER
        ]

    def attach_v3_optimizer(self, handle: Any, opt_cfg: keras_optim.OptimizerConfig | None) -> None:
        graph = self.graph
        if opt_cfg is None:
            return
        graph.metadata["optimizer"] = opt_cfg.type
        group = handle.get("optimizer/vars")
        keys = sorted((k for k in group if k.isdigit()), key=int) if group is not None else []
        if not keys:
            graph.notes.append("compiled, but the optimizer was never built (no fit yet)")
            return
        shapes = [tuple(group[k].shape) for k in keys]
        graph.metadata["optimizer_variables"] = len(shapes)
        major = (graph.framework_version or "3").split(".")[0]
        lr = opt_cfg.config.get("learning_rate")
        leading = 1 if major == "2" or isinstance(lr, dict) else 2
        candidates = self._build_order()
        trainable_now = [t for t in candidates if t.trainable is Trainable.TRAINABLE]
        if any(t.trainable is Trainable.UNKNOWN for t in candidates):
            trainable_now = []
        opt = keras_optim.align_indexed(
            opt_cfg, shapes, leading, graph, candidates, trainable_now, "optimizer"
        )
        graph.optimizers.append(opt)

    def attach_legacy_optimizer(self, handle: Any, opt_cfg: keras_optim.OptimizerConfig | None) -> None:
        graph = self.graph
        if opt_cfg is None:
            return
        graph.metadata["optimizer"] = opt_cfg.type
        group = handle.get("optimizer_weights")
        datasets: list[tuple[str, Shape]] = []
        if group is not None:
            group.visititems(
                lambda n, o: datasets.append((n, tuple(o.shape))) if hasattr(o, "shape") else None
            )
        if not datasets:
            graph.notes.append("compiled, but no optimizer weights were saved")
            return
        graph.metadata["optimizer_variables"] = len(datasets)
        assert group is not None
        ordered = _names(group.attrs.get("weight_names"))
        if ordered and keras_optim.is_unnamed(ordered):
            # Keras 2.0-2.2: unnamed slots, in weight_names order (not the sorted group order)
            shapes = dict(datasets)
            in_order = [(n, shapes[n]) for n in ordered if n in shapes]
            candidates = self._build_order()
            trainable_now = [t for t in candidates if t.trainable is Trainable.TRAINABLE]
            if any(t.trainable is Trainable.UNKNOWN for t in candidates):
                trainable_now = []
            graph.optimizers.append(keras_optim.align_positional(
                opt_cfg, in_order, candidates, trainable_now, "optimizer_weights"))
            return
        params = {k: t for k, t in self.legacy_keys.items() if t.role is TensorRole.PARAMETER}
        graph.optimizers.append(
            keras_optim.align_named(opt_cfg, datasets, params, "optimizer_weights")
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
        edges: list[tuple[str, str]] = []
        self._edges(root, edges)
        leaves = {spec.path for spec in self.order_specs}
        for spec in self.order_specs:  # a wrapper's sub-layers compute part of its output
            parent = graph.ancestors(spec.path)[0] if spec.path else None
            if parent is not None and parent in leaves:
                edges.append((spec.path, parent))
        graph.edges = list(dict.fromkeys(edges))
        graph.outputs = self._outputs(root)
        graph.order = self._topological(graph.edges)
        graph.order_source = OrderSource.DATAFLOW

    def _edges(self, spec: _Spec, edges: list[tuple[str, str]]) -> None:
        by_name = {child.name: child for child in spec.children}
        if spec.kind == "sequential":
            for src, dst in zip(spec.children, spec.children[1:]):
                for a in self._producers(src, 0):
                    for b in self._consumers(dst, 0):
                        edges.append((a, b))
        else:
            for raw, child in zip(spec.raw_layers or [], spec.children):
                for position, (src_name, tensor_index) in enumerate(_inbound(raw)):
                    src = by_name.get(src_name)
                    if src is None:
                        continue
                    for a in self._producers(src, tensor_index):
                        for b in self._consumers(child, position):
                            edges.append((a, b))
                kwargs = _call_kwargs(raw)
                if "training" in kwargs:
                    # a default an outer training=True overrides: recorded, never trusted
                    self.graph.layers[child.path].attrs["call_training_kwarg"] = kwargs["training"]
        for child in spec.children:
            if child.kind in ("functional", "sequential"):
                self._edges(child, edges)

    def _producers(self, spec: _Spec, tensor_index: int) -> list[str]:
        if spec.kind == "sequential":
            return self._producers(spec.children[-1], 0) if spec.children else [spec.path]
        if spec.kind == "functional":
            outs = _endpoints(spec.config.get("output_layers"))
            if tensor_index < len(outs):
                outs = [outs[tensor_index]]
            by_name = {child.name: child for child in spec.children}
            return [p for name, index in outs if name in by_name
                    for p in self._producers(by_name[name], index)] or [spec.path]
        return [spec.path]

    def _consumers(self, spec: _Spec, position: int) -> list[str]:
        if spec.kind == "sequential":
            return self._consumers(spec.children[0], 0) if spec.children else [spec.path]
        if spec.kind == "functional":
            ins = _endpoints(spec.config.get("input_layers"))
            if len(ins) > 1 and position < len(ins):
                ins = [ins[position]]
            by_name = {child.name: child for child in spec.children}
            return [p for name, _ in ins if name in by_name
                    for p in self._consumers(by_name[name], 0)] or [spec.path]
        return [spec.path]

    def _outputs(self, root: _Spec) -> list[str]:
        if root.kind == "sequential":
            return self._producers(root, 0)
        outs = _endpoints(root.config.get("output_layers"))
        by_name = {child.name: child for child in root.children}
        return list(dict.fromkeys(
            p for name, index in outs if name in by_name
            for p in self._producers(by_name[name], index)
        ))

    def _topological(self, edges: list[tuple[str, str]]) -> list[str]:
        """Leaf layers in dataflow order (ties broken by config order), each nested model
        placed just before its first layer; the root first."""
        leaves = [s.path for s in self.order_specs]
        rank = {p: i for i, p in enumerate(leaves)}
        incoming: dict[str, set[str]] = {p: set() for p in leaves}
        outgoing: dict[str, list[str]] = {p: [] for p in leaves}
        for a, b in edges:
            if a in incoming and b in incoming and a != b and a not in incoming[b]:
                incoming[b].add(a)
                outgoing[a].append(b)
        # Kahn's algorithm with a heap on config order: linear up to the log factor
        ready = [rank[p] for p in leaves if not incoming[p]]
        heapq.heapify(ready)
        order: list[str] = []
        placed: set[str] = set()
        while ready:
            node = leaves[heapq.heappop(ready)]
            order.append(node)
            placed.add(node)
            for nxt in outgoing[node]:
                incoming[nxt].discard(node)
                if not incoming[nxt] and nxt not in placed:
                    heapq.heappush(ready, rank[nxt])
        order += [p for p in leaves if p not in placed]  # cycles cannot happen; be safe
        out = [""]
        seen = {""}
        for path in order:
            for ancestor in reversed(self.graph.ancestors(path)[:-1]):
                if ancestor not in seen:
                    out.append(ancestor)
                    seen.add(ancestor)
            if path not in seen:
                out.append(path)
                seen.add(path)
        return out + [p for p in self.graph.layers if p not in seen]


def _check_layer_count(config: Any, limit: int) -> None:
    """Count layer entries (dicts with a class_name) before building anything: linear."""
    count = 0
    todo = [config]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            count += "class_name" in item
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        if count > limit:
            raise LoadError(f"model config with more than {limit:,} layers: refused")


def _endpoints(value: Any) -> list[tuple[str, int]]:
    """``input_layers`` / ``output_layers``: ``[name, node, tensor]`` or a list of them."""
    if not isinstance(value, list) or not value:
        return []
    items = [value] if isinstance(value[0], str) else value
    out = []
    for item in items:
        if isinstance(item, list) and item and isinstance(item[0], str):
            index = item[2] if len(item) > 2 and isinstance(item[2], int) else 0
            out.append((item[0], index))
    return out


def _inbound(raw: dict[str, Any]) -> list[tuple[str, int]]:
    """Source ``(layer name, tensor index)`` of every input, over every node of a layer."""
    found: list[tuple[str, int]] = []
    nodes = raw.get("inbound_nodes")
    if not isinstance(nodes, list):
        return found
    for node in nodes:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            _histories(node.get("args"), found)
            _histories(node.get("kwargs"), found)
        elif isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
            for item in node:
                if isinstance(item, list) and item and isinstance(item[0], str):
                    index = item[2] if len(item) > 2 and isinstance(item[2], int) else 0
                    found.append((item[0], index))
    return found


def _histories(value: Any, found: list[tuple[str, int]]) -> None:
    if isinstance(value, dict):
        history = value.get("keras_history") if isinstance(value.get("keras_history"), list) else None
        if history is None and isinstance(value.get("config"), dict):
            history = value["config"].get("keras_history")
        if isinstance(history, list) and history and isinstance(history[0], str):
            index = history[2] if len(history) > 2 and isinstance(history[2], int) else 0
            found.append((history[0], index))
            return
        for item in value.values():
            _histories(item, found)
    elif isinstance(value, list):
        for item in value:
            _histories(item, found)


def _call_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    nodes = raw.get("inbound_nodes")
    if isinstance(nodes, list):
        for node in nodes:
            if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
                return node["kwargs"]
            if isinstance(node, list):
                for item in node:
                    if isinstance(item, list) and len(item) > 3 and isinstance(item[3], dict):
                        return item[3]
    return {}


def _snake(class_name: str) -> str:
    """Keras' ``to_snake_case`` (``Conv2D`` -> ``conv2d``, ``ReLU`` -> ``re_lu``)."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def _local_names(bare: str, cfg: dict[str, Any], count: int) -> list[str] | None:
    """Variable names of a built-in layer in save order, if ``count`` confirms them."""
    use_bias = cfg.get("use_bias", True) is not False
    bias = ["bias"] if use_bias else []
    names: list[str] | None
    if bare in ("Dense",) or re.fullmatch(r"Conv\dD(Transpose)?", bare):
        names = ["kernel", *bias]
    elif bare == "EinsumDense":
        names = ["kernel", "bias"] if cfg.get("bias_axes") else ["kernel"]
    elif bare.startswith("DepthwiseConv"):
        names = ["kernel", *bias]
    elif bare.startswith("SeparableConv"):
        names = ["depthwise_kernel", "pointwise_kernel", *bias]
    elif bare in ("BatchNormalization", "SyncBatchNormalization"):
        names = (["gamma"] if cfg.get("scale", True) else []) + (
            ["beta"] if cfg.get("center", True) else []) + ["moving_mean", "moving_variance"]
    elif bare in ("LayerNormalization", "GroupNormalization"):
        names = (["gamma"] if cfg.get("scale", True) else []) + (
            ["beta"] if cfg.get("center", True) else [])
    elif bare in ("LSTMCell", "GRUCell", "SimpleRNNCell"):
        names = ["kernel", "recurrent_kernel", *bias]
    elif bare == "Embedding":
        names = ["embeddings"]
    elif bare == "PReLU":
        names = ["alpha"]
    elif count == 0:
        names = []
    else:
        names = None
    return names if names is not None and len(names) == count else None


#: recurrent layer -> the cell class Keras 3 stores its weights under (``<layer>/cell/vars``)
_CELLS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
#: sub-layers in the order their owner builds them (the weights file lists them alphabetically)
_BUILD_ORDER = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
}


def _config_name(entry: dict[str, Any]) -> str:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(cfg.get("name") or entry.get("name") or "")


def _sublayer_order(bare: str, keys: list[str]) -> list[str]:
    known = _BUILD_ORDER.get(bare, ())
    return [k for k in known if k in keys] + sorted(k for k in keys if k not in known)


def _implicit_class(parent: _Spec, key: str) -> tuple[str | None, dict[str, Any]]:
    if key == "cell" and parent.bare in _CELLS:
        return _CELLS[parent.bare], {"use_bias": parent.config.get("use_bias", True)}
    if parent.bare == "MultiHeadAttention" and key.endswith("_dense"):
        use_bias = parent.config.get("use_bias", True) is not False
        return "EinsumDense", {"bias_axes": "x" if use_bias else None}
    return None, {}
