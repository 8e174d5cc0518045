"""``tf.train.Checkpoint`` folders and bare tensor-bundle prefixes (``ckpt-3.index``).

The index names every saved tensor (dtype, shape, where its bytes are). The entry
``_CHECKPOINTABLE_OBJECT_GRAPH`` is a serialized ``TrackableObjectGraph``: the tree of saved
objects (model, layers, optimizer) whose variables carry their Python name (``full_name``) and
their key in the index. It is the only value read from a data shard, by offset, bounded.

Each variable is saved once, under its first path, so a model variable the Keras 3 optimizer
tracks is stored under ``optimizer/_trainable_variables/<n>`` and is found through the object
graph, not the key. Optimizer coverage comes in three layouts:

* legacy optimizers: slot references ``(variable node, slot name, slot node)``;
* tf_keras 2.11+: ``optimizer/_variables/<n>`` named ``Adam/m/<layer>/<var>``;
* Keras 3: ``optimizer/_trainable_variables/<n>`` are the tracked model variables themselves.

No trainable flag is stored anywhere in a checkpoint.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    LayerKind,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    Tensor,
    TensorRole,
)
from ...record import Record
from ...sniff import Sniffed
from ..keras import optimizer as keras_optim
from ..protobuf import LEN, WireError
from .bundle import OBJECT_GRAPH_KEY, Bundle, read_index, read_scalar_string
from .proto import fields, text
from .saved_model_pb import object_reference, slot_reference

FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16"})
#: statistics and counters Keras layers create as non-trainable variables
STAT_NAMES = frozenset({"moving_mean", "moving_variance", "moving_stddev", "renorm_mean",
                        "renorm_stddev", "seed_generator_state"})
#: TF1 optimizer slot suffixes (``dense/kernel/Adam``, ``dense/kernel/Adam_1``) and globals
TF1_SLOT = re.compile(r"^(Adam|Momentum|RMSProp|Adagrad|AdagradDA|Adadelta|Ftrl|ProximalAdagrad|"
                      r"AdamW|Nadam|Adamax)(_\d+)?$")
TF1_GLOBALS = frozenset({"beta1_power", "beta2_power"})
OPTIMIZER_COUNTERS = frozenset({"_iterations", "iter", "iterations"})
SKIP_CHILDREN = frozenset({"keras_api", "save_counter", "optimizer"})
MAX_NODES = 2_000_000
MAX_CHECKPOINT_FILE = 1024 * 1024
NO_FLAG = "a TensorFlow checkpoint stores no trainable flag"
_STATE_FILE_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$')


class TrackableNode(Record):
    __slots__ = ("children", "variable", "slot_variables")
    children: list[tuple[int, str]]
    variable: tuple[str, str] | None  #: (full_name, checkpoint_key) of VARIABLE_VALUE
    slot_variables: list[tuple[int, str, int]]

    def __init__(
        self, children: list[tuple[int, str]] | None = None,
        variable: tuple[str, str] | None = None,
        slot_variables: list[tuple[int, str, int]] | None = None,
    ) -> None:
        self.children = [] if children is None else children
        self.variable = variable
        self.slot_variables = [] if slot_variables is None else slot_variables


def resolve_index(path: Path) -> Path:
    """The ``.index`` file of a checkpoint folder (the one ``checkpoint`` names, else the
    newest ``ckpt-<n>.index``) or of a path given directly."""
    if not path.is_dir():
        return path
    state = path / "checkpoint"
    if state.is_file() and state.stat().st_size <= MAX_CHECKPOINT_FILE:
        for line in state.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _STATE_FILE_LINE.match(line.strip())
            if match:
                name = Path(match.group(1)).name  # absolute paths of another machine: basename
                if (path / f"{name}.index").is_file():
                    return path / f"{name}.index"
                raise LoadError(f"checkpoint names {name}, but {name}.index is missing")
    indexes = bundle_indexes(path)
    if not indexes:
        raise LoadError("a checkpoint folder without any <prefix>.index file")
    return indexes[-1]


def bundle_indexes(path: Path) -> list[Path]:
    """``*.index`` files with a first data shard beside them, oldest step first."""
    found = [p for p in path.glob("*.index") if p.is_file()
             and any(path.glob(f"{glob_escape(p.stem)}.data-00000-of-*"))]

    def step(p: Path) -> tuple[int, str]:
        match = re.search(r"(\d+)$", p.stem)
        return (int(match.group(1)) if match else -1, p.name)

    return sorted(found, key=step)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def load(path: Path, sniffed: Sniffed | None = None) -> ModelGraph:
    index = resolve_index(path)
    bundle = read_index(index)
    missing = bundle.missing_shards()
    if missing:
        raise LoadError(f"data shard {missing[0]} of {index.name} is missing")
    graph = ModelGraph(path=str(path), format="tf-checkpoint", content="checkpoint",
                       framework="tensorflow")
    graph.metadata["checkpoint"] = index.stem
    graph.metadata["bundle_tensors"] = len(bundle.entries)
    if path.is_dir():
        older = [p.stem for p in bundle_indexes(path) if p != index]
        if older:
            graph.notes.append(f"read {index.stem}; also present: {', '.join(older)}")
    if OBJECT_GRAPH_KEY in bundle.entries:
        raw = read_scalar_string(bundle, OBJECT_GRAPH_KEY)
        try:
            nodes = parse_object_graph(raw)
        except WireError as exc:
            raise LoadError(f"{OBJECT_GRAPH_KEY} in {index.name} is corrupt ({exc})") from None
        _from_object_graph(graph, bundle, nodes)
    else:
        graph.notes.append("name-based (TF1) checkpoint: no object graph, tensors named by key")
        _name_based(graph, bundle)
    if graph.parameters():
        graph.notes.append(f"{NO_FLAG}: trainability is unknown, so no freeze rule can speak")
    graph.order = list(graph.layers)
    return graph


def parse_object_graph(raw: bytes) -> list[TrackableNode]:
    """``TrackableObjectGraph.nodes``."""
    nodes: list[TrackableNode] = []
    for fn, fw, _fv, fs, fe in fields(raw):
        if fn != 1 or fw != LEN:
            continue
        node = TrackableNode()
        for gn, gw, _gv, gs, ge in fields(raw, fs, fe):
            if gw != LEN:
                continue
            if gn == 1:
                node.children.append(object_reference(raw, gs, ge))
            elif gn == 2:
                attr = ["", "", ""]
                for hn, hw, _hv, hs, he in fields(raw, gs, ge):
                    if hn in (1, 2, 3) and hw == LEN:
                        attr[hn - 1] = text(raw, hs, he)
                if attr[0] == "VARIABLE_VALUE":
                    node.variable = (attr[1], attr[2])
            elif gn == 3:
                node.slot_variables.append(slot_reference(raw, gs, ge))
        nodes.append(node)
        if len(nodes) > MAX_NODES:
            raise WireError(f"more than {MAX_NODES} objects")
    return nodes


def _add(graph: ModelGraph, parts: list[str], dtype: str | None,
         shape: tuple[int, ...] | None) -> Tensor:
    parts = [p for p in parts if p] or ["variable"]
    name = ".".join(parts)
    while name in graph.tensors:
        name += "_"
    is_stat = parts[-1] in STAT_NAMES or (dtype is not None and dtype not in FLOAT_DTYPES)
    tensor = Tensor(name=name, layer=".".join(parts[:-1]),
                    role=TensorRole.BUFFER if is_stat else TensorRole.PARAMETER,
                    shape=shape, dtype=dtype)
    if not is_stat:
        tensor.trainable_fact = Fact(Source.UNKNOWN, NO_FLAG)
    return graph.add_tensor(tensor)


def _name_based(graph: ModelGraph, bundle: Bundle) -> None:
    """TF1 ``Saver`` checkpoints: slots are saved as ``<variable>/<Optimizer>[_1]``."""
    slots: dict[str, list[str]] = {}
    for key in bundle.entries:
        variable, _, last = key.rpartition("/")
        if variable in bundle.entries and TF1_SLOT.match(last):
            slots.setdefault(variable, []).append(last)
    slot_keys = {f"{v}/{slot}" for v, names in slots.items() for slot in names}
    tensors: dict[str, Tensor] = {}
    for key, entry in bundle.entries.items():
        if key not in slot_keys and key not in TF1_GLOBALS:
            tensors[key] = _add(graph, key.split("/"), entry.dtype, entry.shape)
    if not slots:
        return
    type_ = TF1_SLOT.match(next(iter(slots.values()))[0]).group(1)  # type: ignore[union-attr]
    opt = Optimizer(name="optimizer", type=type_, groups=[OptimizerGroup(index=0)],
                    type_fact=Fact(Source.INFERRED, "from the slot names"), alignment="names",
                    alignment_fact=Fact(Source.STORED, "each slot is saved as <variable>/<slot>"),
                    exhaustive=True, size=len(slots))
    for index, (key, names) in enumerate(slots.items()):
        if key in tensors:
            opt.tracked[tensors[key].name] = ParamOptState(index=index, group=0, has_state=True,
                                                           slots=tuple(names))
    graph.optimizers.append(opt)
    _coverage_note(graph, opt)


def _is_optimizer(node: TrackableNode) -> bool:
    """Optimizers of every generation, whatever the checkpoint calls them (``optimizer=``,
    ``opt=``): slot references, or an iteration counter beside the learning rate."""
    names = {name for _, name in node.children}
    return bool(node.slot_variables) or bool(names & OPTIMIZER_COUNTERS) and bool(
        names & {"_learning_rate", "learning_rate", "lr"})


def _children(nodes: list[TrackableNode], node: int) -> dict[str, int]:
    return {name: child for child, name in nodes[node].children if 0 <= child < len(nodes)}


def _from_object_graph(graph: ModelGraph, bundle: Bundle, nodes: list[TrackableNode]) -> None:
    if not nodes:
        return
    optimizers = {i for i, n in enumerate(nodes) if _is_optimizer(n)}
    by_node: dict[int, Tensor] = {}
    seen = {0} | optimizers
    queue = deque(child for name, child in _children(nodes, 0).items()
                  if name not in SKIP_CHILDREN and child not in seen)
    seen.update(queue)
    while queue:
        node = queue.popleft()
        if nodes[node].variable is not None:
            full_name, key = nodes[node].variable
            entry = bundle.entries.get(key)
            parts = full_name.removesuffix(":0").split("/") if full_name else key.split("/")[:-2]
            by_node[node] = _add(graph, parts, entry.dtype if entry else None,
                                 entry.shape if entry else None)
        for child, name in nodes[node].children:
            if name not in SKIP_CHILDREN and 0 <= child < len(nodes) and child not in seen:
                seen.add(child)
                queue.append(child)
    for layer in graph.layers.values():
        if layer.children and not layer.tensors:
            layer.kind = LayerKind.CONTAINER
    for index, node in enumerate(sorted(optimizers)):
        opt = _optimizer(graph, nodes, node, by_node, bundle,
                         "optimizer" if len(optimizers) == 1 else f"optimizer[{index}]")
        if opt is not None:
            graph.optimizers.append(opt)
            _coverage_note(graph, opt)


def _optimizer(graph: ModelGraph, nodes: list[TrackableNode], node: int,
               by_node: dict[int, Tensor], bundle: Bundle, where: str) -> Optimizer | None:
    children = _children(nodes, node)
    opt = Optimizer(name=where, groups=[OptimizerGroup(index=0)])
    if nodes[node].slot_variables:  # legacy optimizer
        slots: dict[str, list[str]] = {}
        for original, slot, _slot_node in nodes[node].slot_variables:
            tensor = by_node.get(original)
            if tensor is not None:
                slots.setdefault(tensor.name, []).append(slot)
        opt.alignment = "identity"
        opt.alignment_fact = Fact(Source.STORED, "slot references name their variables")
        tracked = list(slots.items())
        full = nodes[children["iter"]].variable if "iter" in children else None
        opt.type = full[0].split("/", 1)[0] if full and full[0] else None
    elif "_trainable_variables" in children:  # Keras 3
        refs = _children(nodes, children["_trainable_variables"])
        ordered = sorted(refs.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
        tracked = [(by_node[n].name, []) for _, n in ordered if n in by_node]
        opt.alignment = "identity"
        opt.alignment_fact = Fact(Source.STORED, "optimizer/_trainable_variables are the tracked "
                                                 "model variables")
        full = nodes[children["_iterations"]].variable if "_iterations" in children else None
        opt.type = full[0].split("/", 1)[0] if full and "/" in full[0] else None
    elif "_variables" in children:  # tf_keras 2.11+
        datasets = []
        for _, child in sorted(_children(nodes, children["_variables"]).items(),
                               key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
            if nodes[child].variable is not None:
                full_name, key = nodes[child].variable
                entry = bundle.entries.get(key)
                datasets.append((full_name, entry.shape if entry and entry.shape else ()))
        keys = {t.name.replace(".", "/"): t for t in by_node.values()
                if t.role is TensorRole.PARAMETER}
        type_ = next((n.split("/", 1)[0] for n, _ in datasets if n.count("/") >= 2), None)
        aligned = keras_optim.align_named(
            keras_optim.OptimizerConfig(type=type_, config={}, where="the object graph"),
            datasets, keys, where)
        aligned.alignment_fact = Fact(aligned.alignment_fact.source,
                                      aligned.alignment_fact.evidence.replace(
                                          "(optimizer_weights)", "(full_name in the checkpoint)"))
        return aligned
    else:
        return None
    opt.type_fact = Fact(Source.INFERRED, "from the optimizer variables' names")
    opt.exhaustive = True
    opt.size = len(tracked)
    for index, (name, slot_names) in enumerate(tracked):
        opt.tracked[name] = ParamOptState(index=index, group=0, has_state=True,
                                          slots=tuple(slot_names))
    return opt


def _coverage_note(graph: ModelGraph, opt: Optimizer) -> None:
    params = graph.parameters()
    untracked = [p for p in params if p.name not in opt.tracked]
    layers = list(dict.fromkeys(p.layer or "(root)" for p in untracked))
    graph.metadata[f"{opt.name}_tracks"] = len(opt.tracked)
    text_ = f"{opt.type or 'the optimizer'} ({opt.name}) tracks {len(opt.tracked)} of " \
            f"{len(params)} parameters"
    if untracked and opt.exhaustive:
        shown = ", ".join(layers[:5]) + (f" and {len(layers) - 5} more" if len(layers) > 5 else "")
        text_ += f"; not tracked: {shown} (frozen before the optimizer was built, or never " \
                 "trained: the checkpoint cannot tell)"
    graph.notes.append(text_)
