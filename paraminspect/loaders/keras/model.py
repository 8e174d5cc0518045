"""Keras files (``.keras`` zip, legacy ``.h5``, ``*.weights.h5``), read as data.

Neither Keras nor TensorFlow is imported and nothing is deserialized: ``config.json`` /
``model_config`` are parsed as JSON, the HDF5 weights with h5py for dataset names, shapes and
dtypes only (never a value). Functional and Sequential configs give the layer tree, per-layer
``trainable`` flags and real dataflow edges; subclassed models store no graph, so their layers
come from the weights file. See FORMATS.md section 2.

This module reads the containers; :mod:`.builder` builds the layer tree from the config and
:mod:`.weights` matches the HDF5 variables with it.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError, NotAModel
from ...graph import ModelGraph
from ...io import is_remote, open_binary, open_member
from ...sniff import Sniffed, open_archive
from ...zipguard import read_entry
from ..pickle.limits import DEFAULT_LIMITS
from . import optimizer as keras_optim
from .builder import Builder
from .hdf5_attrs import attr_text
from .hdf5_guard import guard
from .weights import (
    attach_legacy_optimizer,
    attach_legacy_weights,
    attach_v3_optimizer,
    attach_v3_weights,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# -- entry point ---------------------------------------------------------------------------------
def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read a ``.keras`` zip (format ``keras``) or an HDF5 Keras file (format ``keras-h5``)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a core dependency
        raise LoadError("reading Keras files needs h5py (pip install h5py)") from None
    try:
        if sniffed.format == "keras":
            return _load_zip(path, sniffed, h5py)
        return _load_hdf5(path, h5py)
    except (
        OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, SystemError,
        AttributeError,
    ) as exc:
        # libhdf5 reports damaged structures lazily, as whatever error the access raised
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise LoadError(f"corrupt HDF5 data ({type(exc).__name__}: {detail})") from None


# -- .keras zip ----------------------------------------------------------------------------------
def _load_zip(path: Path, sniffed: Sniffed, h5py: Any) -> ModelGraph:
    try:
        with open_archive(path, sniffed) as archive:
            return _load_zip_archive(path, archive, h5py)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise LoadError(f"corrupt .keras archive ({exc})") from None


def _load_zip_archive(path: Path, archive: zipfile.ZipFile, h5py: Any) -> ModelGraph:
    entries = {info.filename: info for info in archive.infolist()}
    names = set(entries)
    if "config.json" not in names:
        raise LoadError(".keras archive without config.json")
    limits = DEFAULT_LIMITS

    def read(name: str) -> bytes:  # bounded: a JSON bomb is a clear error, not an outage
        return read_entry(archive, entries[name], limits.max_json_bytes,
                          limits.max_compression_ratio)

    config_bytes = read("config.json")
    meta_bytes = read("metadata.json") if "metadata.json" in names else b""
    config = _json(config_bytes, "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise LoadError("config.json is not a Keras model config (no class_name)")
    graph = ModelGraph(path=str(path), format="keras", content="model", framework="keras")
    if meta_bytes:
        meta = _json(meta_bytes, "metadata.json")
        if isinstance(meta, dict) and meta.get("keras_version"):
            graph.framework_version = str(meta["keras_version"])
            graph.metadata["keras_version"] = graph.framework_version
    builder = Builder(graph)
    builder.add_root(config, "config.json")
    if "model.weights.h5" not in names:
        graph.notes.append("no model.weights.h5 in the archive: weights unknown")
        builder.finish()
        return graph
    # HDF5 reached in place through the member's offset: only its object headers are read, never
    # the weights (reading the member whole cost its size in memory plus a CRC pass over it).
    try:
        handle = h5py.File(open_member(archive, "model.weights.h5"), "r")
    except (OSError, ValueError) as exc:
        raise LoadError(f"model.weights.h5 is not readable HDF5 ({exc})") from None
    with handle:
        guard(handle, h5py)
        attach_v3_weights(builder, handle)
        builder.finish()
        opt_cfg = keras_optim.parse_config(
            (config.get("compile_config") or {}).get("optimizer")
            if isinstance(config.get("compile_config"), dict) else None,
            "compile_config in config.json",
        )
        attach_v3_optimizer(builder, handle, opt_cfg)
    return graph


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{what} is not valid JSON ({exc})") from None


# -- HDF5: legacy model.save("m.h5"), weights-only files -------------------------------------------
def _load_hdf5(path: Path, h5py: Any) -> ModelGraph:
    try:
        # a URL goes through the range-reading stream; h5py reads only the object headers
        handle = h5py.File(open_binary(path) if is_remote(path) else path, "r")
    except (OSError, ValueError) as exc:
        raise LoadError(f"unreadable HDF5 file ({exc})") from None
    with handle:
        guard(handle, h5py)
        attrs = handle.attrs
        graph = ModelGraph(path=str(path), format="keras-h5", framework="keras")
        version = attr_text(attrs.get("keras_version"))
        if version is None and "model_weights" in handle:
            version = attr_text(handle["model_weights"].attrs.get("keras_version"))
        graph.framework_version = version
        if version:
            graph.metadata["keras_version"] = version
        builder = Builder(graph)
        if "model_config" in attrs:
            config = _json(attr_text(attrs["model_config"]) or "", "model_config")
            if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
                raise LoadError("model_config is not a Keras model config (no class_name)")
            graph.content = "model"
            builder.add_root(config, "model_config")
            if "model_weights" not in handle:
                raise LoadError("legacy Keras .h5 without its model_weights group")
            attach_legacy_weights(builder, handle["model_weights"])
            builder.finish()
            training = attrs.get("training_config")
            if training is not None:
                tc = _json(attr_text(training) or "", "training_config")
                opt_cfg = keras_optim.parse_config(
                    tc.get("optimizer_config") if isinstance(tc, dict) else None,
                    "training_config",
                )
                attach_legacy_optimizer(builder, handle, opt_cfg)
            return graph
        graph.content = "weights"
        graph.notes.append("weights-only file: no model config, so trainability is unknown")
        if "layer_names" in attrs:  # tf.keras 2 / legacy save_weights
            attach_legacy_weights(builder, handle, weights_only=True)
        elif "layers" in handle or "vars" in handle:  # Keras 3 save_weights
            attach_v3_weights(builder, handle, weights_only=True)
            opt_vars = handle.get("optimizer/vars")
            if opt_vars is not None and len(opt_vars):
                graph.metadata["optimizer_variables"] = len(opt_vars)
                graph.notes.append(
                    f"optimizer/vars holds {len(opt_vars)} variables (indices only): without the "
                    "model config they cannot be matched to trainable weights"
                )
        else:
            raise NotAModel("HDF5 file that is not a Keras model or weights file")
        builder.finish()
        return graph
