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
