"""What a ``torch.save`` pickle holds, read into a graph: a state dict (possibly nested under
``model``, ``state_dict``, ...), a whole pickled ``nn.Module``, or a training checkpoint with
optimizer state (plain, or Lightning's ``optimizer_states``).
"""

from __future__ import annotations

from pathlib import Path

from ...graph import (
    Fact,
    LayerKind,
    Mode,
    ModelGraph,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...kinds import classify, infer_kinds_from_names, is_buffer_name, is_parameter_name
from ..pickle.policy import code_references
from ..pickle.stubs import GlobalLog, Stub
from ..pickle.tensors import TensorRef
from . import optimizer as torch_optim
from . import state_dict_evidence
from .companions import companion_kind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..pickle.tensors import ScalarReader

#: where checkpoints keep the model, most specific first
MODEL_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "model_state",
    "net",
    "network",
    "module",
    "model_ema",
    "ema",
    "weights",
    "params",
)

#: checkpoint keys copied into graph metadata
META_KEYS = ("epoch", "global_step", "step", "iteration", "iter", "best_score", "best_acc")
FLOAT_DTYPES = frozenset({"float32", "float64", "float16", "bfloat16", "complex64", "complex128"})
#: attributes of torch.nn modules worth keeping for rules and ``show``
MODULE_ATTRS = ("track_running_stats", "momentum", "affine", "eps", "num_features", "p")


def as_data_unless_model(graph: ModelGraph, obj: Any) -> ModelGraph:
    """A pickle holding no model (RNG state, training arguments, a config dict) is data: it was
    scanned for unsafe code and has nothing else to check. A pickled module we could not read
    stays "no model found"."""
    module_like = isinstance(obj, Stub) and "Module" in obj.target().rsplit(".", 1)[-1]
    if graph.content == "none" and not graph.optimizers and not module_like:
        graph.content = "data"
        graph.notes = [
            n.replace("no model found: the file holds", "not a model: the file holds")
            for n in graph.notes
        ]
    return graph


#: ``torch.compile`` wrapper, pickled as ``OptimizedModule(original_module, dynamo_context)``
COMPILED_MODULE = "torch._dynamo.eval_frame.OptimizedModule"
#: the attribute name the wrapper keeps the real module under (and the prefix in its state dict)
COMPILED_PREFIX = "_orig_mod."


def unwrap_compiled(value: Any) -> Any:
    """The user's module inside a ``torch.compile`` wrapper (the wrapper holds nothing else)."""
    while isinstance(value, Stub) and value.target() == COMPILED_MODULE:
        inner = value._pi_args[0] if value._pi_args else value.state_dict.get("_modules", {}).get(
            "_orig_mod")
        if inner is None:
            return value
        value = inner
    return value


def strip_compiled(name: str) -> str:
    """A state-dict name without the ``_orig_mod.`` segments ``torch.compile`` adds."""
    if COMPILED_PREFIX not in name:
        return name
    return ".".join(part for part in name.split(".") if part != "_orig_mod")


def is_module(value: Any) -> bool:
    value = unwrap_compiled(value)
    if not isinstance(value, Stub):
        return False
    state = value.state_dict
    return "_parameters" in state and "_modules" in state


def is_state_dict(value: Any) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    tensors = 0
    for key, item in value.items():
        if not isinstance(key, str):
            return False
        if isinstance(item, TensorRef):
            tensors += 1
        elif not key.endswith("_extra_state"):
            return False
    return tensors > 0


def build_graph(
    path: Path, fmt: str, obj: Any, log: GlobalLog, read_scalar: ScalarReader
) -> ModelGraph:
    graph = ModelGraph(path=str(path), format=fmt, framework="pytorch")
    model, model_key, optimizers = _locate(obj, graph)
    undecided: set[str] = set()
    if is_module(model) and unwrap_compiled(model) is not model:
        graph.notes.append("torch.compile wrapper (OptimizedModule) unwrapped to the original module")
        graph.metadata["compiled"] = True
        model = unwrap_compiled(model)
    if is_module(model):
        _add_module(graph, "", model, set(), {})
        graph.content = graph.content if model_key else "module"
    elif model is not None:  # _locate returns a module, a state dict or None
        undecided = _add_state_dict(graph, model)
        graph.content = graph.content if model_key else "state_dict"
    elif graph.content == "optimizer":
        graph.notes.append("an optimizer's state without its model: check the folder that "
                           "holds both")
    elif companion_kind(obj) is not None:
        # a training run's side file (arguments, scheduler, RNG state): no model, not broken
        graph.content = "data"  # scanned for unsafe code; nothing else to check
        graph.notes.append(
            f"a training run's {companion_kind(obj)} file, not a model: check its run folder"
        )
    else:
        graph.content = "none"
        graph.notes.append(f"no model found: the file holds {_describe(obj)}")
    if model_key:
        graph.notes.append(f"model read from checkpoint key {model_key!r}")

    from ..runs.checkpoints import attach_optimizers  # frameworks that say how they built it

    if not attach_optimizers(graph, obj, optimizers, read_scalar):
        for name, value in optimizers:
            raw = torch_optim.parse(name, value)
            raw.names = [None if n is None else strip_compiled(n) for n in raw.names]
            graph.optimizers.append(
                torch_optim.align(raw, graph, read_scalar, optional=undecided)
            )
    state_dict_evidence.settle_roles(graph, undecided)
    torch_optim.infer_trainability(graph)
    state_dict_evidence.infer_bn_train_mode(graph, read_scalar)
    record_code_references(graph, log)
    graph.order = list(graph.layers)
    return graph


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(repr(k)[:40] if isinstance(k, str) else type(k).__name__ for k in list(obj)[:6])
        return f"a dict with keys {keys}" if obj else "an empty dict"
    if isinstance(obj, Stub):
        return f"a {obj.target()} object"
    return f"a {type(obj).__name__}"


def _locate(obj: Any, graph: ModelGraph) -> tuple[Any, str | None, list[tuple[str, Any]]]:
    """Find the model and the optimizers in whatever was saved."""
    optimizers: list[tuple[str, Any]] = []
    if is_module(obj) or is_state_dict(obj):
        return obj, None, optimizers
    if torch_optim.is_optimizer_object(obj) or torch_optim.is_optimizer_state_dict(obj):
        graph.content = "optimizer"
        return None, None, [("optimizer", obj)]
    if not isinstance(obj, dict):
        return None, None, optimizers

    for key, value in obj.items():
        if torch_optim.is_optimizer_state_dict(value) or torch_optim.is_optimizer_object(value):
            optimizers.append((str(key), value))
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(
                torch_optim.is_optimizer_state_dict(v) or torch_optim.is_optimizer_object(v)
                for v in value
            )
        ):
            optimizers.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
    for key in META_KEYS:
        if isinstance(obj.get(key), (int, float)) and not isinstance(obj.get(key), bool):
            graph.metadata[key] = obj[key]
    if "pytorch-lightning_version" in obj:
        graph.content = "lightning-checkpoint"
        graph.framework_version = f"lightning {obj['pytorch-lightning_version']}"
    else:
        graph.content = "checkpoint"

    candidates = [k for k in MODEL_KEYS if k in obj] + [k for k in obj if k not in MODEL_KEYS]
    for key in candidates:
        value = obj[key]
        if is_module(value) or is_state_dict(value):
            return value, str(key), optimizers
        # one level deeper: {"model": {"state_dict": ...}}
        if isinstance(value, dict) and key in MODEL_KEYS:
            for inner_key in MODEL_KEYS:
                inner = value.get(inner_key)
                if is_module(inner) or is_state_dict(inner):
                    return inner, f"{key}.{inner_key}", optimizers
    if not optimizers:
        graph.content = "none"
    return None, None, optimizers


def _tensor_from_ref(
    graph: ModelGraph, name: str, layer: str, ref: TensorRef, role: TensorRole, role_stored: bool
) -> Tensor:
    tensor = Tensor(name=name, layer=layer, role=role, shape=ref.shape, dtype=ref.dtype)
    tensor.origin = ref  # identity, for optimizers pickled with the model's own tensors
    if role is TensorRole.PARAMETER and role_stored and isinstance(ref.requires_grad, bool):
        tensor.trainable = Trainable.TRAINABLE if ref.requires_grad else Trainable.FROZEN
        tensor.trainable_fact = Fact(Source.STORED, "requires_grad stored with the parameter")
    return graph.add_tensor(tensor)


def _add_state_dict(graph: ModelGraph, state_dict: dict[str, Any]) -> set[str]:
    """Add a state dict's tensors; returns the names whose role (parameter or buffer) only an
    optimizer can decide: float tensors named neither like a parameter nor like a buffer."""
    undecided: set[str] = set()
    names = [k for k, v in state_dict.items() if isinstance(v, TensorRef)]
    if names and all(n.startswith("module.") for n in names):
        graph.stripped_prefix = "module."
        graph.notes.append("'module.' prefix of DataParallel/DDP removed from names")
    compiled = any(COMPILED_PREFIX in n for n in names)
    if compiled:
        graph.metadata["compiled"] = True
        graph.notes.append("'_orig_mod.' of torch.compile removed from names")
    # a stored tensor -> the first name it was seen under: its bytes (storage, offset, shape),
    # or the record itself when those are not all known
    seen: dict[Any, str] = {}
    # local name -> (named like a buffer, named like a parameter): a 100,000-tensor state dict
    # has a handful of distinct local names, each otherwise matched against the patterns again
    conventions: dict[str, tuple[bool, bool]] = {}
    prefix_length = len(graph.stripped_prefix)
    for key in names:
        ref = state_dict[key]
        name = strip_compiled(key[prefix_length:]) if compiled else key[prefix_length:]
        identity = _storage_identity(ref) or id(ref)
        owner = seen.get(identity)
        if owner is not None:  # tied weights: one tensor, like model.parameters() dedups it
            graph.notes.append(f"{name} is the same tensor as {owner}")
            graph.tensors[owner].aliases.append(name)
            continue
        seen[identity] = name
        layer, _, local = name.rpartition(".")
        convention = conventions.get(local)
        if convention is None:
            convention = conventions[local] = (is_buffer_name(local), is_parameter_name(local))
        is_buffer = convention[0] or (ref.dtype is not None and ref.dtype not in FLOAT_DTYPES)
        # keep_vars=True state dicts keep Parameters: then the role and requires_grad are stored.
        role = TensorRole.BUFFER if is_buffer and not ref.is_parameter else TensorRole.PARAMETER
        _tensor_from_ref(graph, name, layer, ref, role, role_stored=ref.is_parameter)
        if role is TensorRole.PARAMETER and not ref.is_parameter and not convention[1]:
            undecided.add(name)
    infer_kinds_from_names(graph, "a state dict stores no layer classes")
    return undecided


def _add_module(
    graph: ModelGraph, path: str, module: Stub, seen: set[int], tensors: dict[int, str]
) -> None:
    layer = graph.ensure_layer(path)
    seen.add(id(module))
    state = module.state_dict
    layer.class_name = module.target()
    layer.kind = classify(layer.class_name)
    layer.kind_fact = Fact(Source.STORED, "module class stored in the pickle")
    if layer.kind is LayerKind.OTHER and state.get("_modules"):
        layer.kind = LayerKind.CONTAINER
    training = state.get("training")
    if isinstance(training, bool):
        layer.mode = Mode.TRAIN if training else Mode.EVAL
        layer.mode_fact = Fact(Source.STORED, "module.training stored in the pickle")
    for attr in MODULE_ATTRS:
        value = state.get(attr)
        if isinstance(value, (bool, int, float)) or value is None and attr in state:
            layer.attrs[attr] = value

    for local, ref in _items(state.get("_parameters")):
        if isinstance(ref, TensorRef):
            _add_unique(graph, path, local, ref, TensorRole.PARAMETER, tensors)
    non_persistent = state.get("_non_persistent_buffers_set")
    for local, ref in _items(state.get("_buffers")):
        if isinstance(ref, TensorRef):
            tensor = _add_unique(graph, path, local, ref, TensorRole.BUFFER, tensors)
            if (
                tensor is not None
                and isinstance(non_persistent, (set, frozenset))
                and local in non_persistent
            ):
                layer.attrs.setdefault("non_persistent_buffers", []).append(local)  # type: ignore[union-attr]
    for local, child in _items(state.get("_modules")):
        if not is_module(child):
            continue
        child = unwrap_compiled(child)  # a submodule compiled on its own
        child_path = f"{path}.{local}" if path else str(local)
        if id(child) in seen:
            graph.notes.append(f"{child_path} is the same module object as one seen before")
            continue
        _add_module(graph, child_path, child, seen, tensors)


def _add_unique(
    graph: ModelGraph,
    layer: str,
    local: str,
    ref: TensorRef,
    role: TensorRole,
    seen: dict[int, str],
) -> Tensor | None:
    """Add a tensor once: a tied weight appears once, as in ``model.parameters()``."""
    name = f"{layer}.{local}" if layer else local
    owner = seen.get(id(ref))
    if owner is not None:
        graph.notes.append(f"{name} is the same tensor as {owner}")
        graph.tensors[owner].aliases.append(name)
        return None
    seen[id(ref)] = name
    return _tensor_from_ref(graph, name, layer, ref, role, role_stored=True)


def _storage_identity(ref: TensorRef) -> tuple[str, int, tuple[int, ...]] | None:
    """Two records over the same bytes (storage key, offset, shape) are one tensor stored twice."""
    if ref.storage is None or not ref.shape:
        return None
    return (ref.storage.key, ref.offset, ref.shape)


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, Stub):  # an OrderedDict subclass pickled by class
        return [(str(k), v) for k, v in value._pi_items.items()]
    return []


def record_code_references(graph: ModelGraph, log: GlobalLog) -> None:
    graph.code_references.extend(code_references(log))
