"""Map framework class names onto :class:`~paraminspect.graph.LayerKind`.

One table for every framework, keyed by the bare class name (``BatchNorm2d``, ``Dense``), so that
loaders share it and rules never see framework class names.
"""

from __future__ import annotations

import re

from .graph import Fact, LayerKind, ModelGraph, Source

_EXACT: dict[str, LayerKind] = {
    # torch.nn
    "Linear": LayerKind.LINEAR,
    "LazyLinear": LayerKind.LINEAR,
    "Bilinear": LayerKind.LINEAR,
    "NonDynamicallyQuantizableLinear": LayerKind.LINEAR,
    "Embedding": LayerKind.EMBEDDING,
    "EmbeddingBag": LayerKind.EMBEDDING,
    "LayerNorm": LayerKind.LAYERNORM,
    "GroupNorm": LayerKind.GROUPNORM,
    "RMSNorm": LayerKind.RMSNORM,
    "LocalResponseNorm": LayerKind.OTHER,
    "MultiheadAttention": LayerKind.ATTENTION,
    "Sequential": LayerKind.CONTAINER,
    "ModuleList": LayerKind.CONTAINER,
    "ModuleDict": LayerKind.CONTAINER,
    "ParameterList": LayerKind.CONTAINER,
    "ParameterDict": LayerKind.CONTAINER,
    "Identity": LayerKind.OTHER,
    "Flatten": LayerKind.OTHER,
    # Keras
    "Dense": LayerKind.LINEAR,
    "EinsumDense": LayerKind.LINEAR,
    "BatchNormalization": LayerKind.BATCHNORM,
    "SyncBatchNormalization": LayerKind.BATCHNORM,
    "LayerNormalization": LayerKind.LAYERNORM,
    "GroupNormalization": LayerKind.GROUPNORM,
    "UnitNormalization": LayerKind.OTHER,
    "RMSNormalization": LayerKind.RMSNORM,
    "MultiHeadAttention": LayerKind.ATTENTION,
    "Attention": LayerKind.ATTENTION,
    "InputLayer": LayerKind.INPUT,
    "Functional": LayerKind.MODEL,
    "Model": LayerKind.MODEL,
    "Activation": LayerKind.ACTIVATION,
    "ReLU": LayerKind.ACTIVATION,
    "Softmax": LayerKind.ACTIVATION,
}

# Checked in order; the first pattern that matches the class name wins. Compiled on the first
# class name met: state dicts and safetensors have none.
_PATTERN_SOURCES: tuple[tuple[str, LayerKind], ...] = (
    (r"FrozenBatchNorm", LayerKind.FROZEN_BATCHNORM),
    (r"BatchNorm|BatchNormalization", LayerKind.BATCHNORM),
    (r"InstanceNorm", LayerKind.INSTANCENORM),
    (r"LayerNorm", LayerKind.LAYERNORM),
    (r"GroupNorm", LayerKind.GROUPNORM),
    (r"RMSNorm|RmsNorm", LayerKind.RMSNORM),
    (r"^(Lazy)?Conv(Transpose)?\d?[dD]?$|^Conv\dDTranspose$|^(Depthwise|Separable)Conv",
     LayerKind.CONV),
    (r"^(Alpha|Feature|Gaussian|Spatial)?Dropout\d?[dD]?$", LayerKind.DROPOUT),
    (r"^(LSTM|GRU|RNN)(Cell)?$|^SimpleRNN|^Bidirectional$", LayerKind.RECURRENT),
    (r"Pool(ing)?\d?[dD]?$", LayerKind.POOLING),
    (
        r"^(ReLU\d*|LeakyReLU|PReLU|ELU|SELU|CELU|GELU|SiLU|Mish|Sigmoid|Tanh|Softplus|Softsign|"
        r"Hardswish|Hardsigmoid|Hardtanh|LogSoftmax|Softmax2d|Threshold|Tanhshrink|Softshrink)$",
        LayerKind.ACTIVATION,
    ),
    (r"Embedding", LayerKind.EMBEDDING),
)
_PATTERNS: list[tuple[re.Pattern[str], LayerKind]] = []


def bare_class_name(qualified: str) -> str:
    """``torch.nn.modules.batchnorm.BatchNorm2d`` -> ``BatchNorm2d``."""
    return qualified.rsplit(".", 1)[-1]


def classify(qualified_class_name: str | None) -> LayerKind:
    """The layer kind for a class name, or OTHER when the name says nothing we trust."""
    if not qualified_class_name:
        return LayerKind.OTHER
    name = bare_class_name(qualified_class_name)
    if name in _EXACT:
        return _EXACT[name]
    if not _PATTERNS:
        _PATTERNS.extend((re.compile(source), kind) for source, kind in _PATTERN_SOURCES)
    for pattern, kind in _PATTERNS:
        if pattern.search(name):
            return kind
    return LayerKind.OTHER


#: Tensor names that are buffers by convention, for formats that do not say (state dicts,
#: safetensors, ONNX initializers).
BUFFER_NAMES = frozenset(
    {
        "running_mean",
        "running_var",
        "num_batches_tracked",
        "inv_freq",
        "position_ids",
        "token_type_ids",
        "relative_position_index",
        "masked_bias",
        "window",
        "mel_filters",
        "mel_basis",
        "mel_fb",
        "melmat",
        "fbank",
        "filterbank",
        "freqs_cis",
        "cos_cached",
        "sin_cached",
        "_float_tensor",
        "anchor_grid",
    }
)

#: Name shapes that are buffers by convention: counters and sizes (``n_averaged``, ``n_fft``
#: stored as tensors), analysis windows (``hann_window``), caches.
BUFFER_NAME_PATTERN = re.compile(r"^(n|num)_[a-z]|(^|_)window$|_cached$|^(mel|fbank)_")

#: Local names that are parameters by convention (``weight``, ``in_proj_bias``, ``weight_ih_l0``,
#: ``bias_k``, LayerNorm ``gamma``/``beta``). Anything else in a state dict is a parameter or a
#: buffer; only an optimizer that covers it, or one that provably does not, can tell.
PARAMETER_NAME_PATTERN = re.compile(r"(^|_)(weight|bias)(_|\d|$)|^(gamma|beta)$")


def is_buffer_name(local: str) -> bool:
    """Whether a tensor's local name marks it as a buffer by convention."""
    return local in BUFFER_NAMES or bool(BUFFER_NAME_PATTERN.search(local))


def is_parameter_name(local: str) -> bool:
    """Whether a tensor's local name marks it as a parameter by convention."""
    return bool(PARAMETER_NAME_PATTERN.search(local))


def infer_kinds_from_names(graph: ModelGraph, no_classes: str) -> None:
    """Layer kinds for files without layer classes: BatchNorm from its running-stat tensors,
    containers from having children; everything else stays unknown, saying ``no_classes``."""
    unknown = Fact(Source.UNKNOWN, no_classes)
    batchnorm = Fact(Source.INFERRED, "has running_mean and running_var tensors")
    tensors = graph.tensors
    for layer in graph.layers.values():
        names = layer.tensors
        if len(names) >= 2 and any(n.endswith("running_var") for n in names):
            local = {tensors[n].local_name for n in names}
            if {"running_mean", "running_var"} <= local:
                layer.kind = LayerKind.BATCHNORM
                layer.kind_fact = batchnorm
                continue
        if names or not layer.children:
            layer.kind_fact = unknown
        else:
            layer.kind = LayerKind.CONTAINER
