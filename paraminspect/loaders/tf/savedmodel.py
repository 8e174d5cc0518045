"""TensorFlow SavedModel folders (``saved_model.pb``, ``keras_metadata.pb``, ``variables/``).

Neither TensorFlow nor Keras is imported: the protobuf files are walked as data (memory-mapped,
only the needed fields decoded) and ``variables/variables.index`` is read as a tensor-bundle
table. What each piece proves:

* ``keras_metadata.pb`` (tf_keras ``save_format="tf"``) holds one JSON per layer with the
  layer's class and its **current** ``trainable``; with the object graph it names every variable.
* ``SavedVariable.trainable`` in ``saved_model.pb`` is the flag the variable was *created* with
  (a frozen layer's kernel still says true); it only separates weights from statistics such as
  ``moving_mean``, never frozen from trainable.
* The optimizer (tf_keras) is saved with named slot variables (``Adam/m/<layer>/<var>``; the
  legacy optimizer as slot references), matched to variables by name.
* Signatures name the functions serving runs; training-mode BatchNorm and dropout in them make
  the export stochastic (see :mod:`.train_mode`).
"""

from __future__ import annotations

import json
import mmap
import stat
from collections import deque
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...kinds import classify
from ...sniff import Sniffed
from ..keras import optimizer as keras_optim
from ..protobuf import WireError
from .bundle import read_index
from .saved_model_pb import (
    KerasNode,
    MetaGraph,
    SavedObject,
    function_nodes,
    parse_keras_metadata,
    parse_saved_model,
)
from .train_mode import TrainOp, fallback_scope, find_train_ops, match_scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16"})
LAYER_IDENTIFIERS = ("_tf_keras_network", "_tf_keras_model", "_tf_keras_sequential",
                     "_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_rnn_layer")
OPTIMIZER_IDENTIFIERS = frozenset({"optimizer", "experimentalOptimizer"})
NO_FLAG = ("a SavedModel without keras_metadata.pb stores no current trainable flag "
           "(SavedVariable.trainable is the flag the variable was created with)")


def load(path: Path, sniffed: Sniffed | None = None) -> ModelGraph:
    """Read a SavedModel folder, or its ``saved_model.pb`` given directly."""
    folder = path if path.is_dir() else path.parent
    pb = folder / "saved_model.pb" if path.is_dir() else path
    graph = ModelGraph(path=str(path), format="savedmodel", content="export",
                       framework="tensorflow")
    with _MappedFile(pb) as buf:
        try:
            meta = parse_saved_model(buf)
        except WireError as exc:
            raise LoadError(f"{pb.name} is not a readable SavedModel ({exc})") from None
        graph.framework_version = meta.tf_version or None
        graph.metadata["tags"] = meta.tags
        graph.metadata["signatures"] = sorted(k for k in meta.signatures if not k.startswith("__"))
        keras_nodes = _keras_metadata(folder / "keras_metadata.pb")
        _variables_bundle(folder, graph)
        if keras_nodes:
            _TfKeras(graph, meta, keras_nodes).build()
        else:
            _plain(graph, meta)
        try:
            train_ops = find_train_ops(meta, lambda name: function_nodes(
                buf, meta.function_spans[name]))
        except WireError as exc:
            raise LoadError(f"{pb.name}: a serving function is corrupt ({exc})") from None
    _apply_train_ops(graph, train_ops)
    _finish(graph)
    return graph


class _MappedFile:
    """A read-only memory map of a regular file (empty files and special files refused)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.handle: Any = None
        self.map: mmap.mmap | None = None

    def __enter__(self) -> mmap.mmap:
        try:
            self.handle = open(self.file, "rb")
            info = self.file.stat()
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                raise LoadError(f"{self.file.name} is empty or not a regular file")
            self.map = mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            self.__exit__()
            raise LoadError(f"cannot read {self.file.name}: {exc.strerror or exc}") from None
        return self.map

    def __exit__(self, *exc: object) -> None:
        if self.map is not None:
            self.map.close()
        if self.handle is not None:
            self.handle.close()


def _keras_metadata(file: Path) -> list[KerasNode]:
    if not file.is_file():
        return []
    with _MappedFile(file) as buf:
        try:
            return parse_keras_metadata(buf)
        except WireError as exc:
            raise LoadError(f"{file.name} is not readable ({exc})") from None


def _variables_bundle(folder: Path, graph: ModelGraph) -> None:
    index = folder / "variables" / "variables.index"
    if not index.is_file():
        graph.notes.append("no variables/variables.index: the variables' values are not saved")
        return
    bundle = read_index(index)
    missing = bundle.missing_shards()
    if missing:
        raise LoadError(f"variables/{missing[0]} named by variables.index is missing")
    graph.metadata["bundle_tensors"] = len(bundle.entries)


def _role(dtype: str | None, created_trainable: bool) -> TensorRole:
    if not created_trainable or (dtype is not None and dtype not in FLOAT_DTYPES):
        return TensorRole.BUFFER
    return TensorRole.PARAMETER


# -- Keras 3 export and plain tf.Module SavedModels -----------------------------------------------
def _plain(graph: ModelGraph, meta: MetaGraph) -> None:
    """Variables named by their ``SavedVariable.name`` (``enc/enc_bn/gamma``); no trainability."""
    objects = meta.objects
    if not objects:
        graph.notes.append("the SavedModel has no object graph (TF1 style): no variables read")
        return
    root_children = dict((name, node) for node, name in objects[0].children)
    start = root_children.get("variables")
    optimizers = {i for i, o in enumerate(objects) if _is_optimizer(o)}
    starts = [start] if start is not None and 0 <= start < len(objects) else [0]
    order = _bfs(objects, starts, skip=optimizers)
    if optimizers:
        graph.notes.append("optimizer variables are saved but not aligned (no trainable flags "
                           "to compare them with)")
    graph.framework = "keras" if "_all_variables" in root_children else "tensorflow"
    seen: set[str] = set()
    for node in order:
        var = objects[node].variable
        # Keras lists one variable under several objects, always by its full path; unscoped
        # names ("Variable") of distinct tf.Variables are kept apart
        if var is None or not var.name or ("/" in var.name and var.name in seen):
            continue
        seen.add(var.name)
        parts = [p for p in var.name.removesuffix(":0").split("/") if p]
        name = ".".join(parts)
        while name in graph.tensors:
            name += "_"
        tensor = Tensor(name=name, layer=".".join(parts[:-1]), role=_role(var.dtype, var.trainable),
                        shape=var.shape, dtype=var.dtype)
        if tensor.role is TensorRole.PARAMETER:
            tensor.trainable_fact = Fact(Source.UNKNOWN, NO_FLAG)
        graph.add_tensor(tensor)
    if graph.parameters():
        graph.notes.append("trainability is not stored in this SavedModel (no keras_metadata.pb)")


def _is_optimizer(obj: SavedObject) -> bool:
    names = {name for _, name in obj.children}
    return obj.identifier in OPTIMIZER_IDENTIFIERS or bool(
        names & {"_iterations", "iter", "iterations"}) and bool(
        names & {"_learning_rate", "learning_rate", "lr"})


def _bfs(objects: list[SavedObject], starts: list[int], skip: set[int] | None = None) -> list[int]:
    order: list[int] = []
    seen = set(starts) | (skip or set())
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        order.append(node)
        for child, _name in objects[node].children:
            if 0 <= child < len(objects) and child not in seen:
                seen.add(child)
                queue.append(child)
    return order


# -- tf_keras SavedModels --------------------------------------------------------------------------
class _TfKeras:
    def __init__(self, graph: ModelGraph, meta: MetaGraph, nodes: list[KerasNode]) -> None:
        self.graph = graph
        self.meta = meta
        self.nodes = nodes
        self.by_var_node: dict[int, Tensor] = {}
        self.root_json: dict[str, Any] = {}

    def build(self) -> None:
        graph = self.graph
        graph.framework = "keras"
        paths: dict[str, str] = {}  # node_path -> layer path
        states: dict[str, tuple[Trainable, Fact]] = {}
        layers = sorted((n for n in self.nodes if n.identifier in LAYER_IDENTIFIERS),
                        key=lambda n: (n.path.count("."), n.node_id))
        for node in layers:
            info = _json(node.metadata)
            if node.path == "root":
                path, parent_state = "", None
                self.root_json = info
            else:
                parent = node.path.rsplit(".", 1)[0]
                if parent not in paths:
                    continue
                name = str(info.get("name") or node.path.rsplit(".", 1)[-1])
                path = f"{paths[parent]}.{name}" if paths[parent] else name
                parent_state = states[parent]
            paths[node.path] = path
            states[node.path] = self._layer(node, info, path, parent_state)
        version = self.root_json.get("keras_version")
        graph.metadata["keras_version"] = version if isinstance(version, str) else None
        self._optimizer()

    def _layer(self, node: KerasNode, info: dict[str, Any], path: str,
               parent: tuple[Trainable, Fact] | None) -> tuple[Trainable, Fact]:
        graph = self.graph
        layer = graph.ensure_layer(path)
        class_name = info.get("class_name") if isinstance(info.get("class_name"), str) else None
        layer.class_name = class_name
        layer.kind = classify(class_name)
        if node.identifier in ("_tf_keras_network", "_tf_keras_model", "_tf_keras_sequential"):
            layer.kind = LayerKind.MODEL
        layer.kind_fact = Fact(Source.STORED, "layer class stored in keras_metadata.pb")
        flag = info.get("trainable")
        where = path or "the model"
        if isinstance(flag, bool):
            layer.trainable_flag = Trainable.TRAINABLE if flag else Trainable.FROZEN
        if parent is not None and parent[0] is Trainable.FROZEN:
            state = parent
        elif flag is False:
            state = (Trainable.FROZEN, Fact(Source.STORED,
                                            f"trainable=False on {where} in keras_metadata.pb"))
        elif flag is True and (parent is None or parent[0] is Trainable.TRAINABLE):
            state = (Trainable.TRAINABLE, Fact(
                Source.STORED, f"trainable=True on {where}"
                + (" and every enclosing model" if parent else "") + " in keras_metadata.pb"))
        else:
            state = (Trainable.UNKNOWN, Fact(Source.UNKNOWN, "no trainable flag stored"))
        objects = self.meta.objects
        if not 0 <= node.node_id < len(objects):
            return state
        for child, local in objects[node.node_id].children:
            if not 0 <= child < len(objects) or child in self.by_var_node:
                continue
            var = objects[child].variable
            if var is None:
                continue
            tensor = Tensor(name=f"{path}.{local}" if path else local, layer=path,
                            role=_role(var.dtype, var.trainable), shape=var.shape,
                            dtype=var.dtype)
            if tensor.name in graph.tensors:
                continue
            if tensor.role is TensorRole.PARAMETER:
                tensor.trainable, tensor.trainable_fact = state
            tensor.origin = var.name
            graph.add_tensor(tensor)
            self.by_var_node[child] = tensor
        if layer.kind is LayerKind.BATCHNORM and state[0] is Trainable.FROZEN:
            layer.mode, layer.mode_fact = Mode.EVAL, Fact(
                Source.INFERRED,
                "Keras runs BatchNormalization in inference mode when trainable=False")
        return state

    def _optimizer(self) -> None:
        objects = self.meta.objects
        root = dict((name, node) for node, name in objects[0].children) if objects else {}
        node = root.get("optimizer")
        if node is None or not 0 <= node < len(objects):
            return
        tc = self.root_json.get("training_config")
        opt_cfg = keras_optim.parse_config(
            tc.get("optimizer_config") if isinstance(tc, dict) else None,
            "training_config in keras_metadata.pb")
        slot_refs = [ref for o in objects for ref in o.slot_variables]
        if slot_refs:  # legacy optimizer: slots reference their variables by node id
            self.graph.optimizers.append(self._by_reference(opt_cfg, slot_refs))
            return
        datasets = [(objects[n].variable.name, objects[n].variable.shape or ())
                    for n in _bfs(objects, [node])
                    if objects[n].variable is not None and n not in self.by_var_node]
        if not datasets:
            return
        keys: dict[str, Tensor] = {}
        clashes: set[str] = set()
        for tensor in self.graph.parameters():
            key = str(tensor.origin or "").removesuffix(":0")
            if key in keys:
                clashes.add(key)
            keys[key] = tensor
        for key in clashes:
            del keys[key]
        if opt_cfg is None:
            opt_cfg = keras_optim.OptimizerConfig(
                type=datasets[-1][0].split("/", 1)[0], config={}, where="saved_model.pb")
        self.graph.metadata["optimizer"] = opt_cfg.type
        self.graph.metadata["optimizer_variables"] = len(datasets)
        opt = keras_optim.align_named(opt_cfg, datasets, keys, "optimizer")
        opt.alignment_fact = Fact(opt.alignment_fact.source, opt.alignment_fact.evidence.replace(
            "(optimizer_weights)", "(slot variables in saved_model.pb)"))
        if opt.exhaustive and clashes:
            opt.exhaustive = False
        self.graph.optimizers.append(opt)

    def _by_reference(self, opt_cfg: keras_optim.OptimizerConfig | None,
                      refs: list[tuple[int, str, int]]) -> Optimizer:
        slots: dict[str, list[str]] = {}
        for original, slot, _slot_node in refs:
            tensor = self.by_var_node.get(original)
            if tensor is not None:
                slots.setdefault(tensor.name, []).append(slot)
        opt = Optimizer(name="optimizer", type=opt_cfg.type if opt_cfg else None,
                        type_fact=Fact(Source.STORED if opt_cfg else Source.UNKNOWN,
                                       "optimizer class recorded in keras_metadata.pb"),
                        groups=[OptimizerGroup(index=0)], size=len(slots), alignment="identity",
                        alignment_fact=Fact(Source.STORED, "slot variables reference their "
                                            "variables in the object graph"), exhaustive=True)
        for index, (name, names) in enumerate(slots.items()):
            opt.tracked[name] = ParamOptState(index=index, group=0, has_state=True,
                                              slots=tuple(names))
        return opt


def _json(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- modes and structure ---------------------------------------------------------------------------
def _apply_train_ops(graph: ModelGraph, train_ops: list[TrainOp]) -> None:
    layers = set(graph.layers)
    top = {p.split(".", 1)[0] for p in layers if p}
    for op in train_ops:
        path = match_scope(op.scope, layers)
        if path is None:
            path = fallback_scope(op.scope, top)
        layer = graph.ensure_layer(path)
        kind = LayerKind.BATCHNORM if op.kind == "batchnorm" else LayerKind.DROPOUT
        if layer.kind is not kind and layer.kind_fact.source is not Source.STORED:
            layer.kind = kind
            layer.kind_fact = Fact(Source.INFERRED, op.evidence)
            layer.class_name = layer.class_name or (
                "BatchNormalization" if op.kind == "batchnorm" else "Dropout")
        layer.mode = Mode.TRAIN
        layer.mode_fact = Fact(Source.STORED, f"{op.evidence} {op.function}")


def _finish(graph: ModelGraph) -> None:
    for layer in graph.layers.values():
        if layer.kind is LayerKind.OTHER and layer.children and not layer.tensors:
            layer.kind = LayerKind.CONTAINER
        if (layer.kind is LayerKind.OTHER and layer.kind_fact.source is Source.UNKNOWN
                and {"moving_mean", "moving_variance"} <= {
                    graph.tensors[n].local_name for n in layer.tensors}):
            layer.kind = LayerKind.BATCHNORM
            layer.kind_fact = Fact(Source.INFERRED, "has moving_mean and moving_variance")
    graph.order = list(graph.layers)
