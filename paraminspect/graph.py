"""The normalized model graph: the one representation every loader produces and every rule reads.

A loader turns a file into a :class:`ModelGraph`; it never prints and never judges. Every fact a
rule may act on carries its provenance, so a rule can tell "the file says so" from "we worked it
out from the optimizer state" from "nobody can tell" and stay silent on the last.
"""

from __future__ import annotations

import math
from enum import Enum

from .record import FrozenRecord, Record, assign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


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


class Fact(FrozenRecord):
    """A three-valued fact with its provenance and a short human-readable piece of evidence."""

    __slots__ = ("source", "evidence")
    source: Source
    evidence: str

    def __init__(self, source: Source = Source.UNKNOWN, evidence: str = "") -> None:
        assign(self, "source", source)
        assign(self, "evidence", evidence)


#: the default of every fact field: one shared instance (a fact per object cost a quarter of the
#: time of building a 100,000-tensor graph)
NO_FACT = Fact()


class Tensor(Record):
    """A parameter or buffer. ``name`` is the full dotted path (``backbone.bn.weight``)."""

    __slots__ = ("name", "layer", "role", "shape", "dtype", "trainable", "trainable_fact",
                 "origin", "aliases")
    _hidden = ("origin",)
    name: str
    layer: str
    role: TensorRole
    shape: tuple[int, ...] | None
    dtype: str | None
    trainable: Trainable
    trainable_fact: Fact  #: NO_FACT by default, shared: Fact is frozen
    #: loader-private handle on the stored tensor record (identity matching); not part of the API
    origin: object | None
    #: other full names of this same stored tensor (tied weights: one tensor, several modules)
    aliases: list[str]

    def __init__(
        self, name: str, layer: str, role: TensorRole, shape: tuple[int, ...] | None = None,
        dtype: str | None = None, trainable: Trainable = Trainable.UNKNOWN,
        trainable_fact: Fact = NO_FACT, origin: object | None = None,
        aliases: list[str] | None = None,
    ) -> None:
        self.name = name
        self.layer = layer
        self.role = role
        self.shape = shape
        self.dtype = dtype
        self.trainable = trainable
        self.trainable_fact = trainable_fact
        self.origin = origin
        self.aliases = [] if aliases is None else aliases

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


class Layer(Record):
    """A node of the module tree. The root layer has path ``""``."""

    __slots__ = ("path", "class_name", "kind", "kind_fact", "mode", "mode_fact", "children",
                 "tensors", "attrs", "trainable_flag")
    path: str
    class_name: str | None
    kind: LayerKind
    kind_fact: Fact  #: NO_FACT by default, shared: Fact is frozen
    mode: Mode
    mode_fact: Fact
    children: list[str]
    tensors: list[str]  #: names of tensors owned directly
    attrs: dict[str, object]
    #: Explicit layer-level trainable flag where the framework has one (Keras ``trainable``).
    trainable_flag: Trainable

    def __init__(
        self, path: str, class_name: str | None = None, kind: LayerKind = LayerKind.OTHER,
        kind_fact: Fact = NO_FACT, mode: Mode = Mode.UNKNOWN, mode_fact: Fact = NO_FACT,
        children: list[str] | None = None, tensors: list[str] | None = None,
        attrs: dict[str, object] | None = None, trainable_flag: Trainable = Trainable.UNKNOWN,
    ) -> None:
        self.path = path
        self.class_name = class_name
        self.kind = kind
        self.kind_fact = kind_fact
        self.mode = mode
        self.mode_fact = mode_fact
        self.children = [] if children is None else children
        self.tensors = [] if tensors is None else tensors
        self.attrs = {} if attrs is None else attrs
        self.trainable_flag = trainable_flag

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1] if self.path else ""

    @property
    def parent(self) -> str | None:
        if not self.path:
            return None
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""


class ParamOptState(Record):
    """What one optimizer knows about one parameter."""

    __slots__ = ("index", "group", "has_state", "slots", "step", "shape")
    index: int
    group: int
    has_state: bool
    slots: tuple[str, ...]  #: names of per-parameter state entries (exp_avg, momentum, ...)
    step: float | None  #: Adam-family per-parameter step count, when readable
    shape: tuple[int, ...] | None  #: shape of the slot tensors, when stored

    def __init__(
        self, index: int, group: int, has_state: bool, slots: tuple[str, ...] = (),
        step: float | None = None, shape: tuple[int, ...] | None = None,
    ) -> None:
        self.index = index
        self.group = group
        self.has_state = has_state
        self.slots = slots
        self.step = step
        self.shape = shape


class OptimizerGroup(Record):
    __slots__ = ("index", "lr", "weight_decay", "size")
    index: int
    lr: float | None
    weight_decay: float | None
    size: int

    def __init__(
        self, index: int, lr: float | None = None, weight_decay: float | None = None,
        size: int = 0,
    ) -> None:
        self.index = index
        self.lr = lr
        self.weight_decay = weight_decay
        self.size = size


class Optimizer(Record):
    """One saved optimizer, aligned (as far as the file allows) with the model's parameters."""

    __slots__ = ("name", "type", "type_fact", "groups", "tracked", "size", "alignment",
                 "alignment_fact", "exhaustive")
    name: str  #: where it sat in the file (``optimizer``, ``optimizer_states[0]``)
    type: str | None  #: ``Adam``, ``SGD``, ... (None when it cannot be told)
    type_fact: Fact
    groups: list[OptimizerGroup]
    #: tensor name -> its state; only filled for parameters the alignment could name.
    tracked: dict[str, ParamOptState]
    #: number of parameter slots the optimizer holds, named or not.
    size: int
    #: how slots were matched to parameters: identity | names | positional | count-and-shape |
    #: shape | unaligned
    alignment: str
    alignment_fact: Fact
    #: whether a parameter absent from ``tracked`` is certainly untracked (exact alignment)
    exhaustive: bool

    def __init__(
        self, name: str, type: str | None = None, type_fact: Fact = NO_FACT,  # noqa: A002
        groups: list[OptimizerGroup] | None = None,
        tracked: dict[str, ParamOptState] | None = None, size: int = 0,
        alignment: str = "unaligned", alignment_fact: Fact = NO_FACT, exhaustive: bool = False,
    ) -> None:
        self.name = name
        self.type = type
        self.type_fact = type_fact
        self.groups = [] if groups is None else groups
        self.tracked = {} if tracked is None else tracked
        self.size = size
        self.alignment = alignment
        self.alignment_fact = alignment_fact
        self.exhaustive = exhaustive

    @property
    def aligned(self) -> bool:
        return self.alignment != "unaligned"


class CodeReference(FrozenRecord):
    """Something in the file that would run code when loaded by its framework.

    ``how`` is ``call`` (invoked while unpickling), ``instantiate`` (class created without calling
    its constructor), ``reference`` (only named), ``bytecode`` (serialized code, e.g. a Keras
    Lambda) or ``source`` (class source stored beside the weights).
    """

    __slots__ = ("target", "how", "location", "count", "danger", "reason")
    target: str
    how: str
    location: str
    count: int
    #: the pickle policy's tier for this target (error, warning, info; "" = ordinary)
    danger: str
    reason: str  #: why, as the policy explains it

    def __init__(
        self, target: str, how: str, location: str = "", count: int = 1, danger: str = "",
        reason: str = "",
    ) -> None:
        assign(self, "target", target)
        assign(self, "how", how)
        assign(self, "location", location)
        assign(self, "count", count)
        assign(self, "danger", danger)
        assign(self, "reason", reason)


class ModelGraph(Record):
    """A model file, normalized. Built by a loader, read by rules, never tied to one framework."""

    __slots__ = ("path", "format", "content", "framework", "framework_version", "layers",
                 "tensors", "order", "order_source", "edges", "outputs", "optimizers",
                 "code_references", "metadata", "notes", "stripped_prefix")
    path: str
    format: str  #: the container format (``pytorch``, ``torchscript``, ``keras``, ...)
    content: str  #: what it holds: state_dict, module, checkpoint, ...
    framework: str | None
    framework_version: str | None
    layers: dict[str, Layer]
    tensors: dict[str, Tensor]
    order: list[str]  #: layer paths, inputs first
    order_source: OrderSource
    edges: list[tuple[str, str]] | None  #: layer-level dataflow, where the format has it
    outputs: list[str]  #: layers producing model outputs, if known
    optimizers: list[Optimizer]
    code_references: list[CodeReference]
    metadata: dict[str, object]
    notes: list[str]
    #: a prefix removed from every name for display (``module.`` of DataParallel)
    stripped_prefix: str

    def __init__(
        self, path: str, format: str, content: str = "model",  # noqa: A002
        framework: str | None = None, framework_version: str | None = None,
        layers: dict[str, Layer] | None = None, tensors: dict[str, Tensor] | None = None,
        order: list[str] | None = None, order_source: OrderSource = OrderSource.REGISTRATION,
        edges: list[tuple[str, str]] | None = None, outputs: list[str] | None = None,
        optimizers: list[Optimizer] | None = None,
        code_references: list[CodeReference] | None = None,
        metadata: dict[str, object] | None = None, notes: list[str] | None = None,
        stripped_prefix: str = "",
    ) -> None:
        self.path = path
        self.format = format
        self.content = content
        self.framework = framework
        self.framework_version = framework_version
        self.layers = {} if layers is None else layers
        self.tensors = {} if tensors is None else tensors
        self.order = [] if order is None else order
        self.order_source = order_source
        self.edges = edges
        self.outputs = [] if outputs is None else outputs
        self.optimizers = [] if optimizers is None else optimizers
        self.code_references = [] if code_references is None else code_references
        self.metadata = {} if metadata is None else metadata
        self.notes = [] if notes is None else notes
        self.stripped_prefix = stripped_prefix

    # -- building ---------------------------------------------------------------------------
    def ensure_layer(self, path: str) -> Layer:
        """Return the layer at ``path``, creating it and its ancestors in registration order."""
        layers = self.layers
        layer = layers.get(path)
        if layer is not None:
            return layer
        parent = path.rpartition(".")[0]
        if parent in layers:  # the common case when a loader walks names in order
            layer = layers[path] = Layer(path)
            layers[parent].children.append(path)
            return layer
        missing = []  # path and its missing ancestors, deepest first
        while path not in layers:
            missing.append(path)
            if not path:
                break
            path = path.rpartition(".")[0]
        for path in reversed(missing):
            layer = layers[path] = Layer(path)
            if path:
                layers[path.rpartition(".")[0]].children.append(path)
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
            layer = self.layers.get(stack.pop())
            if layer is None:  # a file with no layer at all has no root either
                continue
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
        parameter = TensorRole.PARAMETER
        return [t for t in map(self.tensors.__getitem__, self.layers[path].tensors)
                if t.role is parameter]

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
