"""paraminspect: a static analyzer for deep-learning checkpoints.

Reads a saved model without executing it, normalizes it into a :class:`ModelGraph` of layers,
parameters and buffers with trainable flags and train/eval modes (each with its provenance), and
runs rules that catch freezing mistakes::

    import paraminspect
    graph = paraminspect.load("model.pt")
    report = paraminspect.check("model.pt")
    for finding in report.findings:
        print(finding.code, finding.location, finding.message)
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .api import check, load
    from .config import Settings
    from .findings import FileReport, Finding, Report, Severity, Summary
    from .graph import (
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
    from .many import check_many

#: public name -> the module defining it; imported on first use, so the CLI starts fast
_LAZY = {
    "check": "api", "load": "api", "check_many": "many", "Settings": "config",
    "FileReport": "findings", "Finding": "findings", "Report": "findings",
    "Severity": "findings", "Summary": "findings",
    "Layer": "graph", "LayerKind": "graph", "Mode": "graph", "ModelGraph": "graph",
    "OrderSource": "graph", "Source": "graph", "Tensor": "graph", "TensorRole": "graph",
    "Trainable": "graph",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paraminspect' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FileReport",
    "Finding",
    "Layer",
    "LayerKind",
    "Mode",
    "ModelGraph",
    "OrderSource",
    "Report",
    "Settings",
    "Severity",
    "Source",
    "Summary",
    "Tensor",
    "TensorRole",
    "Trainable",
    "__version__",
    "check",
    "check_many",
    "load",
]


def guard(model: object, optimizer: object = None, strict: bool = False,
          settings: Settings | None = None) -> object:
    """Guard a hand-written PyTorch training loop (see :mod:`paraminspect.guards.torch`):
    the rules run now, and before the optimizer's first steps the live checks (frozen parameters
    with gradients or optimizer state, BatchNorm statistics moving in frozen blocks, trainable
    parameters without gradients). Warns once per finding; ``strict=True`` raises instead."""
    from .guards.torch import guard as torch_guard

    return torch_guard(model, optimizer, strict=strict, settings=settings)
