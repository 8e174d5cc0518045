"""The live-object API: a graph from an in-memory ``torch.nn.Module`` (and its optimizer).

For training scripts and notebooks, to catch a freezing mistake before the run, not after::

    from paraminspect.live import graph_from_module
    report = paraminspect.check(graph_from_module(model, optimizer))
    assert not report.findings, report.findings

Needs torch (the ``torch`` extra); everything is read from the objects, nothing is run. Facts are
exact: ``requires_grad`` and ``training`` are read from the module, and the optimizer is aligned
with the parameters by identity.
"""

from __future__ import annotations

from .graph import (
    Fact,
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
from .kinds import classify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ATTRS = ("track_running_stats", "momentum", "affine", "eps", "num_features", "p")


def graph_from_module(module: Any, optimizer: Any = None, name: str = "<module>") -> ModelGraph:
    """Build a :class:`ModelGraph` from a live ``nn.Module`` and, optionally, its optimizer."""
    import torch  # the caller already has it loaded; imported here so the CLI never does

    graph = ModelGraph(
        path=name,
        format="live",
        content="module",
        framework="pytorch",
        framework_version=torch.__version__,
    )
    names_by_id: dict[int, str] = {}
    for path, sub in module.named_modules():
        layer = graph.ensure_layer(path)
        cls = type(sub)
        layer.class_name = f"{cls.__module__}.{cls.__qualname__}"
        layer.kind = classify(layer.class_name)
        layer.kind_fact = Fact(Source.STORED, "class of the live module")
        layer.mode = Mode.TRAIN if sub.training else Mode.EVAL
        layer.mode_fact = Fact(Source.STORED, "module.training of the live module")
        for attr in _ATTRS:
            value = getattr(sub, attr, None)
            if isinstance(value, (bool, int, float)):
                layer.attrs[attr] = value
        tensors = [(n, t, TensorRole.PARAMETER) for n, t in sub.named_parameters(recurse=False)]
        tensors += [(n, t, TensorRole.BUFFER) for n, t in sub.named_buffers(recurse=False)]
        for local, value, role in tensors:
            if value is None or id(value) in names_by_id:
                continue  # tied weights appear once, as in model.parameters()
            full = f"{path}.{local}" if path else local
            names_by_id[id(value)] = full
            tensor = Tensor(
                name=full,
                layer=path,
                role=role,
                shape=tuple(value.shape),
                dtype=str(value.dtype).removeprefix("torch."),
            )
            if role is TensorRole.PARAMETER:
                tensor.trainable = Trainable.TRAINABLE if value.requires_grad else Trainable.FROZEN
                tensor.trainable_fact = Fact(Source.STORED, "requires_grad of the live parameter")
            graph.add_tensor(tensor)
    graph.order = list(graph.layers)
    if optimizer is not None:
        graph.optimizers.append(_optimizer(optimizer, names_by_id))
    return graph


def _optimizer(optimizer: Any, names_by_id: dict[int, str]) -> Optimizer:
    opt = Optimizer(
        name="optimizer",
        type=type(optimizer).__name__,
        type_fact=Fact(Source.STORED, "class of the live optimizer"),
        alignment="identity",
        exhaustive=True,
        alignment_fact=Fact(Source.STORED, "the optimizer holds the module's parameter objects"),
    )
    position = 0
    for index, group in enumerate(optimizer.param_groups):
        params = list(group["params"])
        opt.groups.append(
            OptimizerGroup(
                index=index,
                lr=_number(group.get("lr")),
                weight_decay=_number(group.get("weight_decay")),
                size=len(params),
            )
        )
        for param in params:
            state = optimizer.state.get(param, {})
            name = names_by_id.get(id(param))
            if name is not None:
                step = state.get("step")
                opt.tracked[name] = ParamOptState(
                    index=position,
                    group=index,
                    has_state=bool(state),
                    slots=tuple(k for k in state if k != "step"),
                    step=float(step) if step is not None else None,
                    shape=tuple(param.shape),
                )
            position += 1
    opt.size = position
    return opt


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
