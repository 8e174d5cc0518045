"""Loaders: bytes in, :class:`~paraminspect.graph.ModelGraph` out.

Each format maps to ``module:function``; the module is imported only when a file of that format is
met, so checking a PyTorch file never imports the ONNX reader and the CLI starts fast. A loader
takes ``(path, sniffed)``, returns a graph, raises :class:`LoadError` for unreadable input, and
never prints.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import LoadError, Skip, Unsupported
from ..graph import ModelGraph
from ..io import as_path, is_remote
from ..sniff import Sniffed, sniff

#: format id -> "module:function" relative to this package. A new format is one line here.
LOADERS: dict[str, str] = {
    "pytorch": "torch.saved_files:load_zip",
    "pytorch-legacy": "torch.saved_files:load_legacy",
    "pickle": "torch.saved_files:load_plain_pickle",
    "torchscript": "torch.torchscript:load",
    "torch-export": "torch.export:load",
    "keras": "keras.model:load",
    "keras-h5": "keras.model:load",
    "onnx": "onnx.model:load",
    "safetensors": "safetensors.model:load",
    "ort-training": "onnx.ort_training:load",
    "pickle-carrier": "pickle.scan:load",
    "tf-savedmodel": "tf.savedmodel:load",
    "tf-bundle-index": "tf.checkpoint:load",
}

#: file endings worth opening when a folder is checked (the format itself is sniffed).
MODEL_SUFFIXES = (
    ".pt", ".pth", ".bin", ".ckpt", ".pt2", ".onnx", ".keras", ".h5", ".hdf5", ".safetensors",
    ".pkl", ".pickle", ".tar", ".joblib", ".npy", ".npz", ".zip", ".7z",
)


def load(path: str | Path) -> ModelGraph:
    """Read the model at ``path`` (a file, a model folder or a URL) into a graph.

    Raises LoadError or Skip."""
    path = as_path(path)
    if not is_remote(path) and path.is_dir():  # type: ignore[union-attr]  # a model folder
        from ..other_formats import identify_folder
        from .runs import load_folder

        if (other := identify_folder(path)) is not None:
            raise Unsupported(other)

        return load_folder(path)  # type: ignore[arg-type]
    sniffed = sniff(path)
    try:
        if sniffed.format == "git-lfs-pointer":
            raise Skip("Git LFS pointer file, not the model itself (run `git lfs pull`)")
        if sniffed.format == "unsupported":
            raise Unsupported(sniffed.detail["name"])
        if sniffed.format == "companion":
            raise Skip(f"companion file ({sniffed.detail['name']}), not a model")
        target = LOADERS.get(sniffed.format)
        if target is None:
            raise LoadError(f"{sniffed.format} files are not supported yet")
        module_name, function_name = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        loader = getattr(module, function_name)
        graph: ModelGraph = loader(path, sniffed)
    finally:
        sniffed.close()
    graph.ensure_layer("")  # every graph has its root, even a pickle that holds no layer
    return graph


__all__ = ["LOADERS", "MODEL_SUFFIXES", "LoadError", "Skip", "Sniffed", "Unsupported", "load"]
