"""``torch.export.save`` archives (.pt2), read from their JSON without torch.

The archive holds the exported program as JSON (``models/model.json``): the graph signature names
every lifted parameter and buffer, every node carries ``nn_module_stack`` metadata naming the
module that ran it, and train/eval behaviour is baked into op arguments (``batch_norm training``,
``dropout train``). ``data/weights/model_weights_config.json`` records each weight's
``requires_grad``. Weight bytes are never read. The one pickle inside (``sample_inputs``, plus any
weight saved with ``use_pickle``) is only walked by the restricted unpickler, for its globals.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    Layer,
    LayerKind,
    Mode,
    ModelGraph,
    OrderSource,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...kinds import classify
from ...sniff import Sniffed, open_archive
from ..dataflow import Op, contract, topological_order
from ..pickle.stubs import GlobalLog
from ..pickle.unpickler import unpickle
from .saved_objects import record_code_references

#: torch/_export/serde/schema.py ScalarType
DTYPES = {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32",
    8: "float64", 9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16",
    28: "uint16", 29: "float8_e4m3fn", 30: "float8_e5m2", 31: "float8_e4m3fnuz",
    32: "float8_e5m2fnuz", 33: "float8_e8m0fnu", 34: "uint32", 35: "uint64",
}
#: argument kinds that name graph values (tensors, symbolic ints) a node consumes or produces
VALUE_KEYS = (
    "as_tensor", "as_tensors", "as_optional_tensor", "as_optional_tensors", "as_sym_int",
    "as_sym_ints", "as_sym_bool", "as_sym_bools", "as_sym_float", "as_sym_floats",
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
#: batch-norm ops and what their mode is (None: read the ``training`` argument)
BATCH_NORM_OPS = {
    "batch_norm": None, "native_batch_norm": None, "_native_batch_norm_legit": None,
    "_native_batch_norm_legit_functional": None, "cudnn_batch_norm": None,
    "miopen_batch_norm": None, "_native_batch_norm_legit_no_training": False,
    "_batch_norm_with_update": True, "_batch_norm_with_update_functional": True,
    "_batch_norm_no_update": False, "instance_norm": None,
}
DROPOUT_OPS = {
    "dropout", "dropout_", "native_dropout", "feature_dropout", "feature_dropout_",
    "alpha_dropout", "alpha_dropout_", "feature_alpha_dropout", "feature_alpha_dropout_",
}
MODE_ARGS = ("training", "train", "use_input_stats")


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    prefix = sniffed.detail.get("prefix", "")
    graph = ModelGraph(path=str(path), format="torch-export", content="export",
                       framework="pytorch")
    log = GlobalLog()
    try:
        with open_archive(path, sniffed) as archive:
            names = set(archive.namelist())
            model_name = _pick_model(names, prefix, graph)
            program = _read_json(archive, model_name)
            weights_name = f"{prefix}/data/weights/model_weights_config.json"
            weights = _read_json(archive, weights_name) if weights_name in names else {}
            constants_name = f"{prefix}/data/constants/model_constants_config.json"
            constants = _read_json(archive, constants_name) if constants_name in names else {}
            _walk_pickles(archive, names, prefix, weights, constants, log, graph)
            version = archive.read(f"{prefix}/archive_version") if (
                f"{prefix}/archive_version" in names) else b""
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError, KeyError) as exc:
        raise LoadError(f"corrupt torch.export archive ({exc})") from None
    if version:
        graph.metadata["archive_version"] = version.decode("ascii", "replace").strip()
    _build(graph, program, weights)
    record_code_references(graph, log)
    return graph


# -- archive -------------------------------------------------------------------------------------
def _pick_model(names: set[str], prefix: str, graph: ModelGraph) -> str:
    models = sorted(n for n in names if n.startswith(f"{prefix}/models/") and n.endswith(".json"))
    if not models:
        raise LoadError("torch.export archive without models/*.json (the exported program)")
    preferred = f"{prefix}/models/model.json"
    chosen = preferred if preferred in models else models[0]
    if len(models) > 1:
        graph.notes.append(
            f"archive holds {len(models)} exported programs; read {chosen.rsplit('/', 1)[-1]}"
        )
    return chosen


def _read_json(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{name.split('/', 1)[-1]} is not valid JSON ({exc})") from None


def _walk_pickles(
    archive: zipfile.ZipFile, names: set[str], prefix: str, weights: Any, constants: Any,
    log: GlobalLog, graph: ModelGraph,
) -> None:
    """Walk every pickle torch.export.load would unpickle, only to record its globals."""
    members = sorted(n for n in names if n.startswith(f"{prefix}/data/sample_inputs/"))
    for config, folder in ((weights, "weights"), (constants, "constants")):
        entries = config.get("config") if isinstance(config, dict) else None
        for entry in (entries or {}).values():
            if isinstance(entry, dict) and entry.get("use_pickle") and entry.get("path_name"):
                member = f"{prefix}/data/{folder}/{entry['path_name']}"
                if member in names:
                    members.append(member)
    for member in members:
        try:
            _walk_torch_save(archive.read(member), log)
        except LoadError as exc:
            graph.notes.append(f"could not walk the pickle {member.split('/', 1)[-1]}: {exc}")


def _walk_torch_save(data: bytes, log: GlobalLog) -> None:
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                pickles = [n for n in inner.namelist() if n.count("/") == 1
                           and n.endswith("/data.pkl")]
                payload = inner.read(pickles[0]) if pickles else b""
        except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
            raise LoadError(f"corrupt nested zip ({exc})") from None
        if payload:
            unpickle(payload, log)
    elif data[:1] == b"\x80":
        unpickle(data, log)


# -- program -------------------------------------------------------------------------------------
def _build(graph: ModelGraph, program: Any, weights: Any) -> None:
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise LoadError("models/*.json is not a serialized ExportedProgram (no graph_module)")
    module = program["graph_module"]
    body = module.get("graph") or {}
    signature = module.get("signature") or {}
    nodes = body.get("nodes") or []
    if not isinstance(nodes, list) or not isinstance(signature, dict):
        raise LoadError("models/*.json has no readable graph nodes or signature")
    graph.framework_version = program.get("torch_version") or None
    schema = program.get("schema_version")
    if isinstance(schema, dict):
        graph.metadata["schema_version"] = f"{schema.get('major')}.{schema.get('minor')}"
    if program.get("verifiers"):
        graph.metadata["dialect"] = ",".join(str(v) for v in program["verifiers"])

    # Layers in registration order: module_call_graph lists every submodule fqn.
    graph.ensure_layer("")
    for entry in module.get("module_call_graph") or []:
        if isinstance(entry, dict) and isinstance(entry.get("fqn"), str):
            graph.ensure_layer(entry["fqn"])
    classes: dict[str, str] = {}
    node_layer: list[str | None] = []
    for node in nodes:
        stack = _module_stack(node)
        for path, cls in stack:
            classes.setdefault(path, cls)
            graph.ensure_layer(path)
        node_layer.append(stack[-1][0] if stack else None)
    _add_tensors(graph, signature, weights, body.get("tensor_values") or {})
    _classify(graph, classes)
    _modes(graph, nodes, node_layer, signature)
    _dataflow(graph, nodes, node_layer, signature)


def _module_stack(node: dict[str, Any]) -> list[tuple[str, str]]:
    """``nn_module_stack`` as (path, class) pairs, outermost first."""
    raw = (node.get("metadata") or {}).get("nn_module_stack")
    if not isinstance(raw, str) or not raw:
        return []
    stack = []
    for entry in raw.split(";"):
        _, _, rest = entry.partition(",")
        path, _, cls = rest.rpartition(",")
        stack.append((path, cls))
    return stack


def _spec(entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = next(iter(entry), "")
    value = entry.get(kind)
    return kind, value if isinstance(value, dict) else {}


def _arg_value(arg: Any) -> str | None:
    """The graph value an input/output spec's ``arg`` names (``{"name": ...}`` or as_tensor)."""
    if not isinstance(arg, dict):
        return None
    if isinstance(arg.get("name"), str):
        return arg["name"]
    tensor = arg.get("as_tensor")
    if isinstance(tensor, dict) and isinstance(tensor.get("name"), str):
        return tensor["name"]
    return None


def _add_tensors(graph: ModelGraph, signature: dict[str, Any], weights: Any,
                 tensor_values: dict[str, Any]) -> None:
    config = weights.get("config") if isinstance(weights, dict) else None
    config = config if isinstance(config, dict) else {}
    for entry in signature.get("input_specs") or []:
        kind, spec = _spec(entry)
        if kind not in ("parameter", "buffer"):
            continue
        name = spec.get(f"{kind}_name")
        if not isinstance(name, str):
            continue
        layer, _, _ = name.rpartition(".")
        meta = (config.get(name) or {}).get("tensor_meta")
        where = "model_weights_config.json"
        if not isinstance(meta, dict):
            meta, where = tensor_values.get(_arg_value(spec.get("arg")) or ""), "graph tensor_values"
        meta = meta if isinstance(meta, dict) else {}
        role = TensorRole.PARAMETER if kind == "parameter" else TensorRole.BUFFER
        tensor = Tensor(name=name, layer=layer, role=role, shape=_shape(meta.get("sizes")),
                        dtype=DTYPES.get(meta.get("dtype")))  # type: ignore[arg-type]
        requires_grad = meta.get("requires_grad")
        if role is TensorRole.PARAMETER and isinstance(requires_grad, bool):
            tensor.trainable = Trainable.TRAINABLE if requires_grad else Trainable.FROZEN
            tensor.trainable_fact = Fact(Source.STORED, f"requires_grad stored in the export ({where})")
        if kind == "buffer" and spec.get("persistent") is False:
            graph.ensure_layer(layer).attrs.setdefault("non_persistent_buffers", []).append(  # type: ignore[union-attr]
                name.rpartition(".")[2])
        graph.add_tensor(tensor)


def _shape(sizes: Any) -> tuple[int, ...] | None:
    if not isinstance(sizes, list):
        return None
    dims = [s.get("as_int") if isinstance(s, dict) else None for s in sizes]
    return tuple(dims) if all(isinstance(d, int) for d in dims) else None  # type: ignore[arg-type]


def _classify(graph: ModelGraph, classes: dict[str, str]) -> None:
    for layer in graph.layers.values():
        cls = classes.get(layer.path)
        if cls:
            layer.class_name = cls
            layer.kind = classify(cls)
            layer.kind_fact = Fact(Source.STORED, "class recorded in the nodes' nn_module_stack")
            if layer.kind is LayerKind.OTHER and layer.children:
                layer.kind = LayerKind.CONTAINER
        elif layer.children and not layer.tensors:
            layer.kind = LayerKind.CONTAINER
        else:
            layer.kind_fact = Fact(Source.UNKNOWN, "module never runs in the exported program, "
                                   "so its class is not recorded")


def _op_name(node: dict[str, Any]) -> str:
    """``torch.ops.aten.batch_norm.default`` -> ``batch_norm``."""
    target = str(node.get("target", ""))
    parts = target.split(".")
    if len(parts) >= 2 and parts[-2] and target.startswith("torch.ops."):
        return parts[-2]
    return parts[-1]


def _literal_bool(node: dict[str, Any], names: tuple[str, ...]) -> bool | None:
    for item in node.get("inputs") or []:
        if isinstance(item, dict) and item.get("name") in names:
            value = (item.get("arg") or {}).get("as_bool")
            return value if isinstance(value, bool) else None
    return None


def _set_mode(layer: Layer, mode: Mode, evidence: str) -> None:
    # Train wins: one op running in training mode is enough for the layer to be in train mode.
    if layer.mode is Mode.TRAIN:
        return
    layer.mode, layer.mode_fact = mode, Fact(Source.STORED, evidence)


def _modes(graph: ModelGraph, nodes: list[Any], node_layer: list[str | None],
           signature: dict[str, Any]) -> None:
    for node, path in zip(nodes, node_layer):
        if path is None or path not in graph.layers:
            continue
        layer = graph.layers[path]
        op = _op_name(node)
        if op in BATCH_NORM_OPS and layer.kind in (LayerKind.BATCHNORM, LayerKind.INSTANCENORM):
            fixed = BATCH_NORM_OPS[op]
            training = fixed if fixed is not None else _literal_bool(node, MODE_ARGS)
            if training is not None:
                _set_mode(layer, Mode.TRAIN if training else Mode.EVAL,
                          f"training={training} baked into the exported {op} op")
        elif op in DROPOUT_OPS and layer.kind is LayerKind.DROPOUT:
            train = _literal_bool(node, MODE_ARGS)
            if train is not None:
                _set_mode(layer, Mode.TRAIN if train else Mode.EVAL,
                          f"train={train} baked into the exported {op} op")
    # Running statistics written back are train mode whatever the op says.
    for entry in signature.get("output_specs") or []:
        kind, spec = _spec(entry)
        name = spec.get("buffer_name")
        if kind == "buffer_mutation" and isinstance(name, str):
            layer_path, _, local = name.rpartition(".")
            layer = graph.layers.get(layer_path)
            if layer is not None and layer.kind is LayerKind.BATCHNORM and local in (
                    "running_mean", "running_var", "num_batches_tracked"):
                _set_mode(layer, Mode.TRAIN, f"the exported program writes back {local} "
                          "(buffer_mutation output)")
    buffers = {
        _arg_value(spec.get("arg")): spec.get("buffer_name")
        for kind, spec in map(_spec, signature.get("input_specs") or [])
        if kind == "buffer"
    }
    for node in nodes:
        if _op_name(node) not in ("add_", "add"):
            continue
        for item in node.get("inputs") or []:
            name = buffers.get(_arg_value((item or {}).get("arg")))
            if isinstance(name, str) and name.endswith(".num_batches_tracked"):
                layer = graph.layers.get(name.rpartition(".")[0])
                if layer is not None and layer.kind is LayerKind.BATCHNORM:
                    _set_mode(layer, Mode.TRAIN,
                              "the exported program increments num_batches_tracked")


# -- dataflow ------------------------------------------------------------------------------------
def _values(arg: Any) -> list[str]:
    """Names of the graph values inside one serialized argument."""
    if not isinstance(arg, dict):
        return []
    found: list[str] = []
    for key in VALUE_KEYS:
        item = arg.get(key)
        for element in item if isinstance(item, list) else [item]:
            if isinstance(element, dict):
                if isinstance(element.get("name"), str):
                    found.append(element["name"])
                elif isinstance(element.get("as_name"), str):
                    found.append(element["as_name"])
                elif isinstance(element.get("as_tensor"), dict):
                    found.extend(_values(element))
    return found


def _dataflow(graph: ModelGraph, nodes: list[Any], node_layer: list[str | None],
              signature: dict[str, Any]) -> None:
    # A layer is a node of the layer graph if it is a leaf or holds tensors itself; ops of pure
    # containers (the root's torch.flatten) are transparent glue.
    real = {p for p, layer in graph.layers.items() if not layer.children or layer.tensors}
    ops: list[Op] = []
    nested = False
    for node, path in zip(nodes, node_layer):
        inputs = [v for item in node.get("inputs") or [] for v in _values((item or {}).get("arg"))]
        outputs = [v for item in node.get("outputs") or [] for v in _values(item)]
        nested = nested or any("as_graph" in ((item or {}).get("arg") or {})
                               for item in node.get("inputs") or [])
        ops.append(Op(path if path in real else None, inputs, outputs))
    sources: dict[str, str | None] = {}
    for entry in signature.get("input_specs") or []:
        kind, spec = _spec(entry)
        value = _arg_value(spec.get("arg"))
        name = spec.get(f"{kind}_name")
        if value and kind in ("parameter", "buffer") and isinstance(name, str):
            sources[value] = name.rpartition(".")[0]
        elif value:
            sources[value] = None
    user_outputs = [
        _arg_value(spec.get("arg")) or ""
        for kind, spec in map(_spec, signature.get("output_specs") or [])
        if kind in ("user_output", "loss_output")
    ]
    if not user_outputs:
        graph.notes.append("the exported program declares no user output; no dataflow edges")
        graph.order = list(graph.layers)
        return
    edges, outputs = contract(ops, sources, user_outputs)
    order, cyclic = topological_order(list(graph.layers), edges)
    graph.edges, graph.order, graph.order_source = edges, order, OrderSource.DATAFLOW
    graph.outputs = [p for p in order if p in set(outputs)]
    if cyclic:
        graph.notes.append("a module runs more than once, so the layer graph has a cycle; "
                           "order breaks it at the earliest registered layer")
    if nested:
        graph.notes.append("control-flow subgraphs (cond/map) are treated as one op each")
