"""safetensors files: the JSON header only, validated the way the safetensors library does.

The format stores names, dtypes, shapes and byte ranges, nothing else: no trainability, no
parameter/buffer distinction, no layer classes, no train/eval mode, and tensors are laid out by
dtype then name, not in module order. So every tensor stays ``Trainable.UNKNOWN``, unless the
file follows paraminspect's documented convention: a ``__metadata__`` key
``paraminspect.trainable`` whose value is a JSON object string ``{"<tensor name>": true|false}``
written from ``model.named_parameters()``. Its key order is then taken as module registration
order; without it the layer order is unknown and ``graph.order`` stays empty.

The header is read and validated in header.py; this module builds the graph from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import compress, repeat
from operator import itemgetter, ne, or_
from pathlib import Path

from ...graph import Fact, Layer, ModelGraph, OrderSource, Source, Tensor, TensorRole, Trainable
from ...kinds import BUFFER_NAMES, infer_kinds_from_names
from ...sniff import Sniffed
from .header import (
    DTYPE_NAMES,
    NON_FLOAT,
    no_duplicates,
    parse_canonical,
    parse_json,
    read_header_text,
)

#: paraminspect's convention for carrying trainability in ``__metadata__`` (see module doc)
TRAINABLE_KEY = "paraminspect.trainable"


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read a safetensors header. Raises LoadError where the safetensors library would refuse."""
    text, data_size = read_header_text(path)
    parsed = parse_canonical(text, data_size) or parse_json(text, data_size)
    metadata, names, dtypes, shapes = parsed

    graph = ModelGraph(path=str(path), format="safetensors", content="state_dict",
                       framework="safetensors")
    graph.metadata["tensors"] = len(names)
    if metadata:
        graph.metadata["safetensors_metadata"] = dict(metadata)
    graph.ensure_layer("")
    _build(graph, names, dtypes, shapes)
    infer_kinds_from_names(graph, "safetensors stores no layer classes")
    order = _apply_trainable_convention(graph, (metadata or {}).get(TRAINABLE_KEY))
    if order is not None:
        graph.order = order
        graph.order_source = OrderSource.REGISTRATION
        graph.notes.append(
            f"layer order taken from the key order of the {TRAINABLE_KEY} metadata "
            "(registration order by convention)"
        )
    else:
        graph.order = []
        graph.notes.append(
            "safetensors stores tensors by dtype and name, not in module order: layer order unknown"
        )
    return graph


def _build(graph: ModelGraph, names: list[str], dtypes: list[str],
           shapes: list[tuple[int, ...]]) -> None:
    """Tensors in name order, each layer created once with its tensors; the hot part at 100,000
    tensors, so whole columns go through ``map`` and only layers take a Python step each."""
    ordered = sorted(names)
    if ordered != names:
        position = {name: index for index, name in enumerate(names)}
        index = list(map(position.__getitem__, ordered))
        dtypes = list(map(dtypes.__getitem__, index))
        shapes = list(map(shapes.__getitem__, index))
        names = ordered
    splits = list(map(str.rpartition, names, repeat(".")))
    owners = list(map(itemgetter(0), splits))
    locals_ = list(map(itemgetter(2), splits))
    if BUFFER_NAMES.isdisjoint(locals_) and NON_FLOAT.isdisjoint(dtypes):
        roles: Iterable[TensorRole] = repeat(TensorRole.PARAMETER)
    else:
        buffers = map(or_, map(BUFFER_NAMES.__contains__, locals_),
                      map(NON_FLOAT.__contains__, dtypes))
        roles = map([TensorRole.PARAMETER, TensorRole.BUFFER].__getitem__, buffers)
    # one shared (frozen) Fact for every tensor
    unknown = Fact(Source.UNKNOWN, "safetensors stores no trainability")
    graph.tensors.update(zip(names, map(
        Tensor, names, owners, roles, shapes, map(DTYPE_NAMES.__getitem__, dtypes),
        repeat(Trainable.UNKNOWN), repeat(unknown))))
    # Each layer's tensors, layers in order of first appearance. Runs of equal owners are the
    # groups when no owner comes back after another (usual: names are sorted); else a dict.
    starts = [0, *compress(range(1, len(owners)), map(ne, owners, owners[1:]))]
    paths = list(map(owners.__getitem__, starts))
    if len(paths) == len(names):  # one tensor per layer
        groups = [[name] for name in names]
    elif len(set(paths)) == len(paths):
        groups = list(map(names.__getitem__, map(slice, starts, [*starts[1:], len(names)])))
    else:
        owned: dict[str, list[str]] = {}
        for owner, name in zip(owners, names):
            owned.setdefault(owner, []).append(name)
        paths, groups = list(owned), list(owned.values())
    layers, ensure = graph.layers, graph.ensure_layer
    parents = map(itemgetter(0), map(str.rpartition, paths, repeat(".")))
    for path, parent, layer, names_ in zip(paths, parents, map(Layer, paths), groups):
        if path in layers:  # the root, or created earlier as an ancestor
            layers[path].tensors.extend(names_)
            continue
        above = layers.get(parent)
        if above is None:
            above = ensure(parent)
        layer.tensors = names_
        layers[path] = layer
        above.children.append(path)


def _apply_trainable_convention(graph: ModelGraph, raw: str | None) -> list[str] | None:
    """Apply ``paraminspect.trainable``; return the layer order it implies, if it covers every
    parameter (otherwise the trainability it names is still used, the order is not)."""
    if raw is None:
        return None
    try:
        mapping = json.loads(raw, object_pairs_hook=no_duplicates)
    except ValueError:
        graph.notes.append(f"{TRAINABLE_KEY} metadata is not valid JSON; ignored")
        return None
    if not isinstance(mapping, dict) or not all(isinstance(v, bool) for v in mapping.values()):
        graph.notes.append(f"{TRAINABLE_KEY} metadata is not a name -> bool object; ignored")
        return None
    unknown = [n for n in mapping if n not in graph.tensors]
    if unknown:
        graph.notes.append(
            f"{TRAINABLE_KEY} names {len(unknown)} tensor(s) not in the file (e.g. {unknown[0]}); "
            "ignored"
        )
        return None
    for name, flag in mapping.items():
        tensor = graph.tensors[name]
        tensor.role = TensorRole.PARAMETER  # the convention lists parameters only
        tensor.trainable = Trainable.TRAINABLE if flag else Trainable.FROZEN
        tensor.trainable_fact = Fact(Source.STORED, f"{TRAINABLE_KEY} metadata")
    params = [t.name for t in graph.parameters()]
    missing = [n for n in params if n not in mapping]
    if missing:
        graph.notes.append(
            f"{TRAINABLE_KEY} does not list {len(missing)} parameter-like tensor(s) "
            f"(e.g. {missing[0]}); their trainability stays unknown"
        )
        return None
    order: dict[str, None] = {}  # insertion-ordered set: linear in the number of layers
    for name in mapping:
        layer = graph.tensors[name].layer
        if layer in order:
            continue
        for path in [*reversed(graph.ancestors(layer)), layer] if layer else [""]:
            order.setdefault(path)
    for path in graph.layers:
        order.setdefault(path)
    return list(order)
