"""PI004 unsupported-format: a model file in a format paraminspect recognises but cannot check."""

from __future__ import annotations

from ..findings import Severity
from .base import Rule


class UnsupportedFormat(Rule):
    code = "PI004"
    name = "unsupported-format"
    severity = Severity.INFO
    fix = (
        "Check the model in a format paraminspect reads (PyTorch, TorchScript, torch.export, "
        "Keras, ONNX, safetensors), or make this notice fail CI with --fail-on info."
    )
    # Reported by the engine when the bytes name an unsupported format; a graph never shows it.
