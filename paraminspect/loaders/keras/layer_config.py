"""A Keras layer as its config describes it (:class:`LayerSpec`), read as plain JSON data, and
what Keras' naming rules say about it: the variable names and weight-file group names of built-in
layers, which of those variables are buffers, and the sub-layers a layer builds implicitly.
"""

from __future__ import annotations

import re

from ...errors import LoadError
from ...graph import Fact, Trainable
from ...record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: non-trainable-by-construction variables of built-in layers (by local name)
BUFFER_NAMES = frozenset({
    "moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev",
    "seed_generator_state", "state",
})
#: built-in layers whose variables are all non-trainable statistics
STAT_LAYERS = frozenset({"Normalization", "Discretization", "StringLookup", "IntegerLookup"})
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", "bfloat16"})
#: Keras class -> snake name Keras uses for the layer's group in ``.keras`` weights
SNAKE_CLASSES = {
    "dense": "Dense", "einsum_dense": "EinsumDense", "conv1d": "Conv1D", "conv2d": "Conv2D",
    "conv3d": "Conv3D", "depthwise_conv2d": "DepthwiseConv2D", "separable_conv2d":
    "SeparableConv2D", "conv2d_transpose": "Conv2DTranspose", "batch_normalization":
    "BatchNormalization", "layer_normalization": "LayerNormalization", "group_normalization":
    "GroupNormalization", "embedding": "Embedding", "input_layer": "InputLayer", "dropout":
    "Dropout", "re_lu": "ReLU", "activation": "Activation", "functional": "Functional",
    "sequential": "Sequential", "global_average_pooling2d": "GlobalAveragePooling2D",
    "max_pooling2d": "MaxPooling2D", "flatten": "Flatten", "lambda": "Lambda",
}
#: attributes of layer configs worth keeping for rules and ``show``
CONFIG_ATTRS = ("momentum", "epsilon", "center", "scale", "use_bias", "rate", "synchronized")


class LayerSpec(Record):
    """One layer as the config describes it."""

    __slots__ = ("path", "name", "class_name", "bare", "config", "custom", "trainable",
                 "trainable_fact", "children", "raw_layers", "kind")
    path: str
    name: str
    class_name: str
    bare: str
    config: dict[str, Any]
    custom: bool
    trainable: Trainable
    trainable_fact: Fact
    children: list[LayerSpec]
    raw_layers: list[dict[str, Any]] | None  #: for models: the config's layer list
    kind: str  #: layer | functional | sequential | subclassed

    def __init__(
        self, path: str, name: str, class_name: str, bare: str, config: dict[str, Any],
        custom: bool, trainable: Trainable, trainable_fact: Fact,
        children: list[LayerSpec] | None = None, raw_layers: list[dict[str, Any]] | None = None,
        kind: str = "layer",
    ) -> None:
        self.path = path
        self.name = name
        self.class_name = class_name
        self.bare = bare
        self.config = config
        self.custom = custom
        self.trainable = trainable
        self.trainable_fact = trainable_fact
        self.children = [] if children is None else children
        self.raw_layers = raw_layers
        self.kind = kind


def check_layer_count(config: Any, limit: int) -> None:
    """Count layer entries (dicts with a class_name) before building anything: linear."""
    count = 0
    todo = [config]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            count += "class_name" in item
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        if count > limit:
            raise LoadError(f"model config with more than {limit:,} layers: refused")


def snake_case(class_name: str) -> str:
    """Keras' ``to_snake_case`` (``Conv2D`` -> ``conv2d``, ``ReLU`` -> ``re_lu``)."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def local_names(bare: str, cfg: dict[str, Any], count: int) -> list[str] | None:
    """Variable names of a built-in layer in save order, if ``count`` confirms them."""
    use_bias = cfg.get("use_bias", True) is not False
    bias = ["bias"] if use_bias else []
    names: list[str] | None
    if bare in ("Dense",) or re.fullmatch(r"Conv\dD(Transpose)?", bare):
        names = ["kernel", *bias]
    elif bare == "EinsumDense":
        names = ["kernel", "bias"] if cfg.get("bias_axes") else ["kernel"]
    elif bare.startswith("DepthwiseConv"):
        names = ["kernel", *bias]
    elif bare.startswith("SeparableConv"):
        names = ["depthwise_kernel", "pointwise_kernel", *bias]
    elif bare in ("BatchNormalization", "SyncBatchNormalization"):
        names = (["gamma"] if cfg.get("scale", True) else []) + (
            ["beta"] if cfg.get("center", True) else []) + ["moving_mean", "moving_variance"]
    elif bare in ("LayerNormalization", "GroupNormalization"):
        names = (["gamma"] if cfg.get("scale", True) else []) + (
            ["beta"] if cfg.get("center", True) else [])
    elif bare in ("LSTMCell", "GRUCell", "SimpleRNNCell"):
        names = ["kernel", "recurrent_kernel", *bias]
    elif bare == "Embedding":
        names = ["embeddings"]
    elif bare == "PReLU":
        names = ["alpha"]
    elif count == 0:
        names = []
    else:
        names = None
    return names if names is not None and len(names) == count else None


#: recurrent layer -> the cell class Keras 3 stores its weights under (``<layer>/cell/vars``)
_CELLS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
#: sub-layers in the order their owner builds them (the weights file lists them alphabetically)
_BUILD_ORDER = {
    "Bidirectional": ("forward_layer", "backward_layer"),
    "MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense"),
}


def config_name(entry: dict[str, Any]) -> str:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(cfg.get("name") or entry.get("name") or "")


def sublayer_order(bare: str, keys: list[str]) -> list[str]:
    known = _BUILD_ORDER.get(bare, ())
    return [k for k in known if k in keys] + sorted(k for k in keys if k not in known)


def implicit_class(parent: LayerSpec, key: str) -> tuple[str | None, dict[str, Any]]:
    if key == "cell" and parent.bare in _CELLS:
        return _CELLS[parent.bare], {"use_bias": parent.config.get("use_bias", True)}
    if parent.bare == "MultiHeadAttention" and key.endswith("_dense"):
        use_bias = parent.config.get("use_bias", True) is not False
        return "EinsumDense", {"bias_axes": "x" if use_bias else None}
    return None, {}
