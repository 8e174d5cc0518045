"""The module tree of a TorchScript ``data.pkl`` as graph layers and tensors: each module's class,
kind and mode (stored, or baked into traced code), its constants, and which of its tensors are
parameters or buffers, as its saved class says."""

from __future__ import annotations

from ...graph import Fact, LayerKind, Mode, ModelGraph, Source, Tensor, TensorRole, Trainable
from ...kinds import classify
from ..pickle.stubs import Stub
from ..pickle.tensors import TensorRef
from .torchscript_code import ClassInfo, SavedClasses, clean_class_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: class constants (``Final``) worth keeping as layer attributes
CONSTANT_ATTRS = ("track_running_stats", "momentum", "affine", "eps", "num_features", "p")


def is_module(value: Any) -> bool:
    """Whether an unpickled value is a TorchScript module: a ``__torch__`` object with its
    ``training`` flag."""
    return (
        isinstance(value, Stub)
        and value.target().startswith("__torch__.")
        and isinstance(value._pi_state, dict)
        and isinstance(value._pi_state.get("training"), bool)
    )


def add_module(
    graph: ModelGraph, path: str, module: Stub, classes: SavedClasses,
    instances: dict[str, tuple[Stub, ClassInfo]], seen: set[int], tensors: dict[int, str],
) -> None:
    """Add ``module``'s layer at ``path`` and its tensors, then its children's; each module met is
    recorded in ``instances`` with its saved class (the dataflow follows their code)."""
    seen.add(id(module))
    layer = graph.ensure_layer(path)
    info = classes.get(module.target())
    instances[path] = (module, info)
    state: dict[str, Any] = module._pi_state
    layer.class_name = clean_class_name(module.target())
    layer.attrs["torchscript_class"] = module.target()
    layer.kind = classify(layer.class_name)
    layer.kind_fact = Fact(Source.STORED, "module class stored in the TorchScript archive")
    children = [(k, v) for k, v in state.items() if is_module(v)]
    if layer.kind is LayerKind.OTHER and children:
        layer.kind = LayerKind.CONTAINER
    layer.mode = Mode.TRAIN if state["training"] else Mode.EVAL
    layer.mode_fact = Fact(Source.STORED, "module.training stored in the TorchScript archive")
    _baked_mode(layer, info)
    for attr in CONSTANT_ATTRS:
        value = info.constants.get(attr, state.get(attr))
        if isinstance(value, (bool, int, float)):
            layer.attrs[attr] = value

    roles = {**dict.fromkeys(info.buffers, TensorRole.BUFFER),
             **dict.fromkeys(info.parameters, TensorRole.PARAMETER)}
    for local, ref in state.items():
        if not isinstance(ref, TensorRef) or local not in roles:
            continue
        name = f"{path}.{local}" if path else local
        if id(ref) in tensors:  # tied: one tensor, as in module.parameters()
            graph.notes.append(f"{name} is the same tensor as {tensors[id(ref)]}")
            continue
        tensors[id(ref)] = name
        tensor = Tensor(name=name, layer=path, role=roles[local], shape=ref.shape, dtype=ref.dtype)
        tensor.origin = ref
        if tensor.role is TensorRole.PARAMETER and isinstance(ref.requires_grad, bool):
            tensor.trainable = Trainable.TRAINABLE if ref.requires_grad else Trainable.FROZEN
            tensor.trainable_fact = Fact(
                Source.STORED, "requires_grad stored with the tensor (_rebuild_tensor_v2)")
        graph.add_tensor(tensor)
    for local, child in children:
        child_path = f"{path}.{local}" if path else local
        if id(child) in seen:
            graph.notes.append(f"{child_path} is the same module object as one seen before")
            continue
        add_module(graph, child_path, child, classes, instances, seen, tensors)


def _baked_mode(layer: Any, info: ClassInfo) -> None:
    """Traced code fixes the mode as a literal argument; that literal is what runs."""
    family = {LayerKind.BATCHNORM: "batch_norm", LayerKind.INSTANCENORM: "batch_norm",
              LayerKind.DROPOUT: "dropout"}.get(layer.kind)
    values = [(op, value) for fam, op, value in info.baked if fam == family]
    if not values:
        return
    op, value = next(((o, v) for o, v in values if v), values[0])  # any train-mode op wins
    layer.mode = Mode.TRAIN if value else Mode.EVAL
    layer.mode_fact = Fact(
        Source.STORED, f"training={value} baked into traced code (torch.{op})")
