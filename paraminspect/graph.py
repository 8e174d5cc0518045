"""The normalized model graph: the one representation every loader produces and every rule reads.

A loader turns a file into a :class:`ModelGraph`; it never prints and never judges. Every fact a
rule may act on carries its provenance, so a rule can tell "the file says so" from "we worked it
out from the optimizer state" from "nobody can tell" and stay silent on the last.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum


class Source(str, Enum):
    """Where a fact came from."""

    STORED = "stored"  #: the file records it directly (requires_grad, training, trainable)
    INFERRED = "inferred"  #: worked out from other evidence (optimizer state, buffer names)
    UNKNOWN = "unknown"  #: the file cannot tell


class Trainable(str, Enum):
    TRAINABLE = "trainable"
    FROZEN = "frozen"
    UNKNOWN = "unknown"


class Mode(str, Enum):
    TRAIN = "train"
    EVAL = "eval"
    UNKNOWN = "unknown"


class TensorRole(str, Enum):
    PARAMETER = "parameter"
    BUFFER = "buffer"


class LayerKind(str, Enum):
    """Framework-neutral layer categories that rules reason about."""

    CONV = "conv"
    LINEAR = "linear"
    BATCHNORM = "batchnorm"  #: BN-type norm that may track running statistics
    FROZEN_BATCHNORM = "frozen_batchnorm"  #: fixed affine + stats, never updates (torchvision)
    INSTANCENORM = "instancenorm"
    LAYERNORM = "layernorm"
    GROUPNORM = "groupnorm"
    RMSNORM = "rmsnorm"
    EMBEDDING = "embedding"
    DROPOUT = "dropout"
    ATTENTION = "attention"
    RECURRENT = "recurrent"
    ACTIVATION = "activation"
    POOLING = "pooling"
    CONTAINER = "container"
    MODEL = "model"  #: a nested model used as a layer (Keras Functional inside Functional)
    INPUT = "input"
    OTHER = "other"


class OrderSource(str, Enum):
    """How trustworthy :attr:`ModelGraph.order` is as a dataflow order."""

    DATAFLOW = "dataflow"  #: real edges from the file (ONNX, torch.export, Keras Functional)
    REGISTRATION = "registration"  #: module registration order; usually, not always, dataflow


@dataclass(frozen=True)
class Fact:
    """A three-valued fact with its provenance and a short human-readable piece of evidence."""

    source: Source = Source.UNKNOWN
    evidence: str = ""


#: the default of every fact field: one shared instance (a fact per object cost a quarter of the
#: time of building a 100,000-tensor graph)
NO_FACT = Fact()


@dataclass
class Tensor:
    """A parameter or buffer. ``name`` is the full dotted path (``backbone.bn.weight``)."""

    name: str
    layer: str
    role: TensorRole
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    trainable: Trainable = Trainable.UNKNOWN
    trainable_fact: Fact = NO_FACT  # shared: Fact is frozen
    #: loader-private handle on the stored tensor record (identity matching); not part of the API
    origin: object | None = field(default=None, repr=False, compare=False)
    #: other full names of this same stored tensor (tied weights: one tensor, several modules)
    aliases: list[str] = field(default_factory=list)

    @property
    def local_name(self) -> str:
        """The name inside its layer (``weight``); the whole name if it is not under the layer."""
        if self.layer and self.name.startswith(self.layer + "."):
            return self.name[len(self.layer) + 1 :]
        return self.name

    @property
    def numel(self) -> int | None:
        if self.shape is None:
            return None
        return math.prod(self.shape)


@dataclass
class Layer:
    """A node of the module tree. The root layer has path ``""``."""

    path: str
    class_name: str | None = None
    kind: LayerKind = LayerKind.OTHER
    kind_fact: Fact = NO_FACT  # shared: Fact is frozen
    mode: Mode = Mode.UNKNOWN
    mode_fact: Fact = NO_FACT  # shared: Fact is frozen
    children: list[str] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)  # names of tensors owned directly
    attrs: dict[str, object] = field(default_factory=dict)
    #: Explicit layer-level trainable flag where the framework has one (Keras ``trainable``).
    trainable_flag: Trainable = Trainable.UNKNOWN

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1] if self.path else ""

    @property
    def parent(self) -> str | None:
        if not self.path:
            return None
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""


@dataclass
class ParamOptState:
    """What one optimizer knows about one parameter."""

    index: int
    group: int
    has_state: bool
    slots: tuple[str, ...] = ()  #: names of per-parameter state entries (exp_avg, momentum, ...)
    step: float | None = None  #: Adam-family per-parameter step count, when readable
    shape: tuple[int, ...] | None = None  #: shape of the slot tensors, when stored


@dataclass
class OptimizerGroup:
    index: int
    lr: float | None = None
    weight_decay: float | None = None
    size: int = 0


@dataclass
class Optimizer:
    """One saved optimizer, aligned (as far as the file allows) with the model's parameters."""

    name: str  #: where it sat in the file (``optimizer``, ``optimizer_states[0]``)
    type: str | None = None  #: ``Adam``, ``SGD``, ... (None when it cannot be told)
    type_fact: Fact = NO_FACT  # shared: Fact is frozen
    groups: list[OptimizerGroup] = field(default_factory=list)
    #: tensor name -> its state; only filled for parameters the alignment could name.
    tracked: dict[str, ParamOptState] = field(default_factory=dict)
    #: number of parameter slots the optimizer holds, named or not.
    size: int = 0
    #: how slots were matched to parameters: identity | names | positional | count-and-shape |
    #: shape | unaligned
    alignment: str = "unaligned"
    alignment_fact: Fact = NO_FACT  # shared: Fact is frozen
    #: whether a parameter absent from ``tracked`` is certainly untracked (exact alignment)
    exhaustive: bool = False

    @property
    def aligned(self) -> bool:
        return self.alignment != "unaligned"


@dataclass(frozen=True)
class CodeReference:
    """Something in the file that would run code when loaded by its framework.

    ``how`` is ``call`` (invoked while unpickling), ``instantiate`` (class created without calling
    its constructor), ``reference`` (only named), ``bytecode`` (serialized code, e.g. a Keras
    Lambda) or ``source`` (class source stored beside the weights).
    """

    target: str
    how: str
    location: str = ""
    count: int = 1
    #: the pickle policy's tier for this target (error, warning, info; "" = ordinary)
    danger: str = ""
    reason: str = ""  #: why, as the policy explains it


@dataclass
class ModelGraph:
    """A model file, normalized. Built by a loader, read by rules, never tied to one framework."""

    path: str
    format: str  #: the container format (``pytorch``, ``torchscript``, ``keras``, ...)
    content: str = "model"  #: what it holds: state_dict, module, checkpoint, ...
    framework: str | None = None
    framework_version: str | None = None
    layers: dict[str, Layer] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  #: layer paths, inputs first
    order_source: OrderSource = OrderSource.REGISTRATION
    edges: list[tuple[str, str]] | None = None  #: layer-level dataflow, where the format has it
    outputs: list[str] = field(default_factory=list)  #: layers producing model outputs, if known
    optimizers: list[Optimizer] = field(default_factory=list)
    code_references: list[CodeReference] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: a prefix removed from every name for display (``module.`` of DataParallel)
    stripped_prefix: str = ""

    # -- building ---------------------------------------------------------------------------
    def ensure_layer(self, path: str) -> Layer:
        """Return the layer at ``path``, creating it and its ancestors in registration order."""
        layer = self.layers.get(path)
        if layer is not None:
            return layer
        if path:
            parent_path = path.rsplit(".", 1)[0] if "." in path else ""
            parent = self.ensure_layer(parent_path)
            parent.children.append(path)
        layer = Layer(path=path)
        self.layers[path] = layer
        return layer

    def add_tensor(self, tensor: Tensor) -> Tensor:
        self.ensure_layer(tensor.layer).tensors.append(tensor.name)
        self.tensors[tensor.name] = tensor
        return tensor

    # -- reading ----------------------------------------------------------------------------
    @property
    def root(self) -> Layer:
        return self.ensure_layer("")

    def parameters(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.role is TensorRole.PARAMETER]

    def buffers(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.role is TensorRole.BUFFER]

    def walk(self, path: str = "") -> Iterator[Layer]:
        """Layers of the subtree at ``path``, depth first, in registration order."""
        stack = [path]
        while stack:
            layer = self.layers[stack.pop()]
            yield layer
            stack.extend(reversed(layer.children))

    def subtree_parameters(self, path: str) -> list[Tensor]:
        return [
            self.tensors[name]
            for layer in self.walk(path)
            for name in layer.tensors
            if self.tensors[name].role is TensorRole.PARAMETER
        ]

    def own_parameters(self, path: str) -> list[Tensor]:
        return [
            self.tensors[n]
            for n in self.layers[path].tensors
            if self.tensors[n].role is TensorRole.PARAMETER
        ]

    def ancestors(self, path: str) -> list[str]:
        """Paths of the enclosing layers, nearest first, ending with the root ``""``."""
        out = []
        while path:
            path = path.rsplit(".", 1)[0] if "." in path else ""
            out.append(path)
        return out

    def display(self, name: str) -> str:
        """A name as users should see it (DataParallel's ``module.`` removed)."""
        if self.stripped_prefix and name.startswith(self.stripped_prefix):
            return name[len(self.stripped_prefix) :]
        return name

    def trainability_source(self) -> Source:
        """The weakest provenance over all parameters (UNKNOWN if any one is unknown)."""
        params = self.parameters()
        if not params or any(p.trainable is Trainable.UNKNOWN for p in params):
            return Source.UNKNOWN
        if any(p.trainable_fact.source is Source.INFERRED for p in params):
            return Source.INFERRED
        return Source.STORED


def subtree_state(params: list[Tensor]) -> Trainable | None:
    """Uniform trainability of ``params``: TRAINABLE, FROZEN, UNKNOWN, or None when mixed/empty."""
    states = {p.trainable for p in params}
    if len(states) == 1:
        return states.pop()
    if Trainable.UNKNOWN in states:
        return Trainable.UNKNOWN
    return None
