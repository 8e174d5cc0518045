"""Keras' HDF5 variables matched with the layers of a :class:`.builder.Builder`: Keras 3
``layers/<snake>/vars`` groups, legacy ``layer_names`` / ``weight_names`` groups, the tensors made
from them, and the optimizer variables aligned with those tensors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...graph import Fact, Source, Tensor, TensorRole, Trainable
from ...kinds import classify
from . import optimizer as keras_optim
from .hdf5_attrs import attr_names, attr_text, dataset_names
from .layer_config import (
    BUFFER_NAMES,
    FLOAT_DTYPES,
    SNAKE_CLASSES,
    STAT_LAYERS,
    LayerSpec,
    implicit_class,
    local_names,
    snake_case,
    sublayer_order,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .builder import Builder

Shape = tuple[int, ...]


# -- weights: Keras 3 (.keras / .weights.h5) -------------------------------------------------------
def attach_v3_weights(builder: Builder, handle: Any, weights_only: bool = False) -> None:
    """Match ``layers/<snake>/vars`` groups with the config's layers (by the ``name`` attr
    where stored, else by Keras' snake-case naming)."""
    if builder.root is None or builder.root.kind == "subclassed" or weights_only:
        _v3_from_file(builder, handle, "", weights_only)
        return
    _v3_container(builder, handle, builder.root)


def _v3_container(builder: Builder, group: Any, spec: LayerSpec) -> None:
    _v3_vars(builder, group, spec)
    layers = group.get("layers")
    if layers is None or not spec.children:
        return
    by_name: dict[str, Any] = {}
    for key in layers:
        child = layers[key]
        vars_group = child.get("vars") if hasattr(child, "get") else None
        stored = attr_text(vars_group.attrs.get("name")) if vars_group is not None else None
        if stored:
            by_name[stored] = child
    counters: dict[str, int] = {}
    for child_spec in spec.children:
        snake = snake_case(child_spec.bare)
        seen = counters.get(snake, 0)
        counters[snake] = seen + 1
        child = by_name.get(child_spec.name)
        if child is None and not by_name:
            child = layers.get(snake if seen == 0 else f"{snake}_{seen}")
        if child is None:
            continue
        if child_spec.kind in ("functional", "sequential"):
            _v3_container(builder, child, child_spec)
        else:
            _v3_vars(builder, child, child_spec)


def _v3_vars(builder: Builder, group: Any, spec: LayerSpec) -> None:
    vars_group = group.get("vars")
    if vars_group is not None:
        keys = sorted((k for k in vars_group if k.isdigit()), key=int)
        shapes = [(tuple(vars_group[k].shape), str(vars_group[k].dtype)) for k in keys]
        local = local_names(spec.bare, spec.config, len(shapes)) if not spec.custom else None
        for index, (shape, dtype) in enumerate(shapes):
            tensor = _tensor(builder, spec, local[index] if local else f"var{index}", shape,
                             dtype, local is not None)
            tensor.origin = vars_group[keys[index]].name  # HDF5 path, for value readers
    if spec.kind in ("functional", "sequential") or spec.custom:
        return
    for key in sublayer_order(spec.bare, [k for k in group if k not in ("vars", "layers")]):
        child = group[key]
        if not hasattr(child, "keys"):
            continue
        sub = builder.specs.get(f"{spec.path}.{key}")
        if sub is None:
            guess, config = implicit_class(spec, key)
            sub = builder.add_implicit(spec, key, guess, config)
        _v3_vars(builder, child, sub)


def _v3_from_file(builder: Builder, group: Any, path: str, weights_only: bool) -> None:
    """Layers straight from the weights file (subclassed models, weights-only files)."""
    graph = builder.graph
    if path not in builder.specs:
        _file_layer(builder, path, None)
    spec = builder.specs[path]
    _v3_vars(builder, group, spec)
    for key in sorted(group):
        if key in ("vars", "optimizer", "metrics") or not hasattr(group[key], "keys"):
            continue
        if key == "layers":
            for inner in sorted(group[key]):
                _v3_child(builder, group[key][inner], path, inner, from_list=True,
                          weights_only=weights_only)
        else:
            _v3_child(builder, group[key], path, key, from_list=False, weights_only=weights_only)
    if not path:
        graph.notes.append(
            "layers read from the weights file, in its (alphabetical) order: the true "
            "call order is not stored"
        )


def _v3_child(
    builder: Builder, group: Any, parent: str, key: str, from_list: bool, weights_only: bool,
) -> None:
    vars_group = group.get("vars")
    stored = attr_text(vars_group.attrs.get("name")) if vars_group is not None else None
    name = stored or key
    path = f"{parent}.{name}" if parent else name
    # Keras names list entries after their class (dense, dense_1); attributes by attribute.
    guess = SNAKE_CLASSES.get(re.sub(r"_\d+$", "", key)) if from_list else None
    _file_layer(builder, path, guess)
    _v3_from_file(builder, group, path, weights_only)


def _file_layer(builder: Builder, path: str, class_guess: str | None) -> None:
    layer = builder.graph.ensure_layer(path)
    parent_spec = builder.specs.get(builder.graph.ancestors(path)[0]) if path else None
    if class_guess:
        layer.class_name = f"keras.layers.{class_guess}"
        layer.kind = classify(class_guess)
        layer.kind_fact = Fact(Source.INFERRED, "from the weights file's group name")
    elif path:
        layer.kind_fact = Fact(Source.UNKNOWN, "layer class not stored for this layer")
    if parent_spec is not None and parent_spec.trainable is Trainable.FROZEN:
        trainable, fact = parent_spec.trainable, parent_spec.trainable_fact
    elif not path and builder.root is not None:
        trainable, fact = builder.root.trainable, builder.root.trainable_fact
        if trainable is Trainable.TRAINABLE:
            trainable, fact = Trainable.UNKNOWN, Fact(
                Source.UNKNOWN, "subclassed model: inner layers' trainable flags not stored"
            )
    else:
        trainable, fact = Trainable.UNKNOWN, Fact(Source.UNKNOWN, "no trainable flag stored")
    spec = LayerSpec(path=path, name=path.rsplit(".", 1)[-1], class_name=layer.class_name or "",
                     bare=class_guess or "", config={}, custom=class_guess is None,
                     trainable=trainable, trainable_fact=fact)
    builder.specs[path] = spec
    if path:
        builder.order_specs.append(spec)


# -- weights: legacy .h5 ---------------------------------------------------------------------------
def attach_legacy_weights(builder: Builder, group: Any, weights_only: bool = False) -> None:
    layer_names = attr_names(group.attrs.get("layer_names")) or [
        k for k in group if k != "top_level_model_weights"
    ]
    for top in layer_names:
        if top not in group:
            continue
        sub = group[top]
        weight_names = attr_names(sub.attrs.get("weight_names"))
        if weight_names is None:
            weight_names = dataset_names(sub)
        top_spec = builder.specs.get(top)
        canonical = None
        if top_spec is not None and not top_spec.children and not top_spec.custom:
            # by position: stored names may carry graph-uniquifying suffixes
            # (batch_normalization_1_1/moving_mean:0, kernel_1:0)
            canonical = local_names(top_spec.bare, top_spec.config, len(weight_names))
        for position, weight_name in enumerate(weight_names):
            dataset = sub.get(weight_name)
            if dataset is None or not hasattr(dataset, "shape"):
                continue
            if canonical is not None and top_spec is not None:
                spec, local = top_spec, canonical[position]
            else:
                spec, local = _legacy_owner(builder, top, weight_name, weights_only)
            tensor = _tensor(builder, spec, local, tuple(dataset.shape), str(dataset.dtype),
                             named=True)
            tensor.origin = dataset.name  # HDF5 path, for readers of the values
            builder.legacy_keys[weight_name.removesuffix(":0")] = tensor


def _legacy_owner(
    builder: Builder, top: str, weight_name: str, weights_only: bool,
) -> tuple[LayerSpec, str]:
    parts = weight_name.removesuffix(":0").split("/")
    local = parts[-1]
    top_spec = builder.specs.get(top)
    if top_spec is not None:
        for depth in reversed(range(len(parts) - 1)):
            wanted = parts[depth]
            hits = [s for s in _subtree(top_spec) if s.name == wanted]
            if hits:
                return hits[0], "/".join(parts[depth + 1 :]).replace("/", "_")
        return top_spec, "_".join(parts)
    # weights only: the layer tree is the file's
    path = top if len(parts) < 2 or parts[0] == top else f"{top}.{parts[0]}"
    if path not in builder.specs:
        if top not in builder.specs:
            _file_layer(builder, top, None)
        if path != top:
            _file_layer(builder, path, None)
    return builder.specs[path], local


def _subtree(spec: LayerSpec) -> Iterator[LayerSpec]:
    yield spec
    for child in spec.children:
        yield from _subtree(child)


# -- tensors ---------------------------------------------------------------------------------------
def _tensor(
    builder: Builder, spec: LayerSpec, local: str, shape: Shape, dtype: str, named: bool,
) -> Tensor:
    graph = builder.graph
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


# -- optimizer -------------------------------------------------------------------------------------
def _build_order(builder: Builder) -> tuple[list[Tensor], list[Tensor]]:
    """Weights in the order Keras builds the optimizer over them (layer order, depth first), and
    those of them trainable now (none when any one's trainability is unknown)."""
    graph = builder.graph
    candidates = [
        graph.tensors[n]
        for spec in builder.order_specs
        for n in graph.layers[spec.path].tensors
        if graph.tensors[n].role is TensorRole.PARAMETER
    ]
    if any(t.trainable is Trainable.UNKNOWN for t in candidates):
        return candidates, []
    return candidates, [t for t in candidates if t.trainable is Trainable.TRAINABLE]


def attach_v3_optimizer(
    builder: Builder, handle: Any, opt_cfg: keras_optim.OptimizerConfig | None,
) -> None:
    graph = builder.graph
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
    candidates, trainable_now = _build_order(builder)
    opt = keras_optim.align_indexed(
        opt_cfg, shapes, leading, graph, candidates, trainable_now, "optimizer"
    )
    graph.optimizers.append(opt)


def attach_legacy_optimizer(
    builder: Builder, handle: Any, opt_cfg: keras_optim.OptimizerConfig | None,
) -> None:
    graph = builder.graph
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
    ordered = attr_names(group.attrs.get("weight_names"))
    if ordered and keras_optim.is_unnamed(ordered):
        # Keras 2.0-2.2: unnamed slots, in weight_names order (not the sorted group order)
        shapes = dict(datasets)
        in_order = [(n, shapes[n]) for n in ordered if n in shapes]
        candidates, trainable_now = _build_order(builder)
        graph.optimizers.append(keras_optim.align_positional(
            opt_cfg, in_order, candidates, trainable_now, "optimizer_weights"))
        return
    params = {k: t for k, t in builder.legacy_keys.items() if t.role is TensorRole.PARAMETER}
    graph.optimizers.append(
        keras_optim.align_named(opt_cfg, datasets, params, "optimizer_weights")
    )
