"""The freeze map as data: per layer its trainability, mode and counts, computed bottom-up once
(linear in the model), with repeated blocks (``layer.0`` … ``layer.11``, identical below) folded
into one item. The text map (``freeze_map``) and the HTML picture (``freeze_html``) draw it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Mode, ModelGraph, Source, Trainable


@dataclass(frozen=True)
class NodeSummary:
    state: str  #: trainable / frozen / mixed / unknown / - (no parameters)
    mode: str  #: train / eval / unknown / mixed
    params: int
    layers: int  #: layers below (not counting itself)


@dataclass
class Item:
    """One line of the map: a layer, or a run of identical sibling blocks."""

    path: str  #: the first layer's path
    label: str  #: ``blocks.0–11`` for a fold, else the layer's own name
    summary: NodeSummary
    repeat: int = 1  #: how many identical blocks the item stands for
    children: list[Item] = field(default_factory=list)
    #: the parameters of a partly frozen layer: (name, shape, state)
    own: list[tuple[str, str, str]] = field(default_factory=list)
    depth: int = 0

    @property
    def uniform(self) -> bool:
        return self.summary.state != "mixed" and self.summary.mode != "mixed"


class FreezeTree:
    """Summaries for every layer of ``graph`` and the folded item tree."""

    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.summaries: dict[str, NodeSummary] = {}
        self._shape: dict[str, tuple[object, ...]] = {}
        self._states: dict[str, set[Trainable]] = {}
        self._modes: dict[str, set[Mode]] = {}
        order = list(graph.walk(""))
        for layer in reversed(order):  # children before parents
            params = graph.own_parameters(layer.path)
            states = {p.trainable for p in params}
            modes = {layer.mode}
            count = sum(p.numel or 0 for p in params)
            below = 0
            for child in layer.children:
                states |= self._states[child]
                modes |= self._modes[child]
                count += self.summaries[child].params
                below += 1 + self.summaries[child].layers
            self._states[layer.path] = states
            self._modes[layer.path] = modes
            if not states:
                state = "-"
            elif len(states) == 1:
                state = next(iter(states)).value
            elif Trainable.UNKNOWN in states:
                state = "unknown"
            else:
                state = "mixed"
            # a layer with no mode of its own (a conv in Keras) does not make its block "mixed"
            known = modes - {Mode.UNKNOWN}
            mode = (
                next(iter(known)).value if len(known) == 1
                else "unknown" if not known else "mixed"
            )
            self.summaries[layer.path] = NodeSummary(state, mode, count, below)
            own_shape = tuple(
                (p.local_name, p.shape, p.trainable.value) for p in params
            )
            self._shape[layer.path] = (
                layer.class_name, state, mode, count, own_shape,
                tuple((self.graph.layers[c].name, self._shape[c]) for c in layer.children),
            )

    def items(self, path: str = "", fold: bool = True, depth: int = 0) -> list[Item]:
        """The children of ``path`` as items, runs of identical numbered blocks folded."""
        children = self.graph.layers[path].children
        out: list[Item] = []
        index = 0
        while index < len(children):
            child = children[index]
            run = 1
            name = self.graph.layers[child].name
            if fold and name.isdigit():
                while index + run < len(children):
                    other = children[index + run]
                    if (
                        self.graph.layers[other].name != str(int(name) + run)
                        or self._shape[other] != self._shape[child]
                    ):
                        break
                    run += 1
            label = name if run == 1 else f"{name}–{int(name) + run - 1}"
            item = Item(child, label, self.summaries[child], repeat=run, depth=depth + 1)
            params = self.graph.own_parameters(child)
            if len({p.trainable for p in params}) > 1:
                item.own = [
                    (p.local_name, str(p.shape), p.trainable.value) for p in params
                ]
            out.append(item)
            index += run
        return out

    def expand(self, item: Item, fold: bool = True) -> None:
        item.children = self.items(item.path, fold, item.depth)


def class_label(graph: ModelGraph, path: str) -> str:
    layer = graph.layers[path]
    cls = (layer.class_name or "").rsplit(".", 1)[-1]
    if cls:
        return cls
    return f"<{layer.kind.value}>" if layer.kind.value != "other" else ""


#: what "trainable / frozen" and "train / eval" mean, in the terms of the file's framework
LEGENDS = {
    "torch": (
        "trainable / frozen: requires_grad of the parameters",
        "train / eval: module.training (model.train() / model.eval())",
    ),
    "keras": (
        "trainable / frozen: the layers' trainable flags",
        "train / eval: whether BatchNormalization updates its moving statistics",
    ),
    "onnx": (
        "ONNX files store no trainability",
        "train / eval: the training_mode of BatchNormalization and Dropout nodes",
    ),
    "ort-training": (
        "trainable / frozen: requires_grad_params / frozen_params of the training checkpoint",
        "",
    ),
    "safetensors": (
        "trainable / frozen: the paraminspect.trainable metadata key, else names only "
        "(trainability unknown)",
        "",
    ),
}
OTHER = ("trainable / frozen: whether training updates the parameters", "train / eval: the mode")
#: where a saved optimizer, not a stored flag, says what trains
FROM_OPTIMIZER = (
    "trainable / frozen: inferred from the saved optimizer (the parameters it steps train; the "
    "others were frozen when it was built)"
)
#: where something else the file stores says it (a framework's freeze list, a PEFT adapter)
INFERRED = "trainable / frozen: inferred from what the file stores (see each parameter's evidence)"


def legend(graph: ModelGraph) -> str:
    fmt = graph.format or ""
    if fmt.startswith("keras"):
        key = "keras"
    elif fmt == "onnx":
        key = "onnx"
    elif fmt in LEGENDS:
        key = fmt
    elif fmt in ("pytorch", "pytorch-legacy", "pickle", "torchscript", "torch-export", "live"):
        key = "torch"
    else:
        key = ""
    trainability, mode = LEGENDS.get(key, OTHER)
    reasons = {t.trainable_fact.evidence for t in graph.tensors.values()
               if t.trainable_fact.source is Source.INFERRED and t.trainable is not Trainable.UNKNOWN}
    if reasons:
        trainability = FROM_OPTIMIZER if any("optimizer" in r for r in reasons) else INFERRED
    return "; ".join(part for part in (trainability, mode) if part)
