"""ONNX ``.onnx`` files, read with the pure-Python wire walker (no onnx import, no tensor bytes).

Nodes are grouped into layers by the module scope the exporter recorded: the dynamo exporter's
``pkg.torch.onnx.name_scopes`` / ``class_hierarchy`` node metadata, or the legacy exporter's
node names (``/backbone/bn/BatchNormalization`` -> ``backbone.bn``). A node without a scope is
a layer of its own. Initializers become tensors of the layer their name places them in (a dotted
``backbone.conv.weight``) or else of the first layer that consumes them.

ONNX records no trainability, so every tensor stays ``Trainable.UNKNOWN``. It does record the
train/eval behaviour of BatchNormalization (``training_mode``) and Dropout (its third input).

This module reads the file, sets up the builder's shared state, the model's metadata and its
external-data files; the builder's steps live in layers.py (nodes into layers, layer order),
tensors.py (initializers and Constant weights) and ops.py (layer kinds, train/eval modes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import LoadError
from ...graph import CodeReference, Fact, ModelGraph
from ...io import open_binary
from ...sniff import Sniffed
from .layers import LayerSteps
from .ops import OpSteps
from .records import DATA_TYPES, ModelInfo, NodeInfo, TensorInfo
from .tensors import TensorSteps
from .wire import WireError, read_model


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read an ONNX model's structure. Raises LoadError for malformed or inconsistent files."""
    try:
        with open_binary(path) as handle:
            size = handle.seek(0, 2)
            model = read_model(handle, size)
    except WireError as exc:
        raise LoadError(f"malformed ONNX file: {exc}") from None
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    if model.graph is None:
        raise LoadError("not an ONNX model: the protobuf holds no graph")
    if model.ir_version is None and not model.opsets:
        raise LoadError("not an ONNX model: no ir_version and no opset_import")
    return _Builder(path, model).build()


class _Builder(LayerSteps, TensorSteps, OpSteps):
    """One model's graph, built in steps; the state the steps share is set up here."""

    def __init__(self, path: Path, model: ModelInfo) -> None:
        assert model.graph is not None
        self.path = path
        self.model = model
        self.g = model.graph
        self.graph = ModelGraph(path=str(path), format="onnx", content="export", framework="onnx")
        self.node_layer: list[str] = []  # node index -> layer path
        #: layer path -> its BatchNormalization and Dropout nodes, in order
        self.mode_nodes: dict[str, list[NodeInfo]] = {}
        self.node_layers: set[str] = set()
        self.node_paths: list[str] = []
        self.initializers = {t.name: t for t in self.g.initializers}
        self.constants: dict[str, TensorInfo | int | float] = {}  # Constant node outputs
        self.opset = model.opsets.get("", model.opsets.get("ai.onnx", 0))
        #: tensor-owning layer without nodes -> the node layer that first reads its tensors
        self.first_reader: dict[str, str] = {}
        self.remote_external = 0  #: external-data initializers of a remote model (not opened)
        self.op_facts: dict[str, Fact] = {}  #: "ONNX op X" kind facts by op type

    def build(self) -> ModelGraph:
        graph = self.graph
        producer = " ".join(p for p in (self.model.producer_name, self.model.producer_version) if p)
        graph.framework_version = producer or None
        self._metadata()
        self._collect_constants()
        self._assign_layers()
        self._initializers()
        self._constant_weights()
        if self.remote_external:
            graph.notes.append(
                f"{self.remote_external} initializer(s) keep their data in external files, which "
                "are not checked for a remote model"
            )
        self._kinds_and_modes()
        self._lowered_train_mode()
        self._edges_and_order()
        return graph

    # -- metadata ---------------------------------------------------------------------------
    def _metadata(self) -> None:
        m, graph = self.model, self.graph
        graph.metadata.update({
            "ir_version": m.ir_version,
            "opset": dict(m.opsets),
            "producer": m.producer_name,
            "producer_version": m.producer_version,
            "graph_name": self.g.name,
            "inputs": [i for i in self.g.inputs if i not in self.initializers],
            "outputs": list(self.g.outputs),
            "nodes": len(self.g.nodes),
            "initializers": len(self.g.initializers),
            "tensor_bytes_skipped": m.skipped_bytes,
        })
        if m.metadata:
            graph.metadata["model_metadata"] = dict(m.metadata)
        if m.training_infos:
            graph.notes.append(
                f"the model carries {m.training_infos} TrainingInfoProto record(s); inference "
                "runtimes ignore them and they were not analysed"
            )
        if m.functions:
            graph.notes.append(
                f"{len(m.functions)} model-local function(s) ({', '.join(m.functions[:4])}) "
                "were not expanded: ops inside them are not analysed"
            )
        if self.g.subgraphs:
            graph.notes.append(
                f"{self.g.subgraphs} control-flow subgraph(s) (If/Loop/Scan bodies) were not analysed"
            )
        if self.g.sparse_initializers:
            graph.notes.append(f"{self.g.sparse_initializers} sparse initializer(s) not listed")

    def _collect_constants(self) -> None:
        """Outputs of Constant nodes whose value is a tiny scalar (Dropout's training_mode)."""
        for node in self.g.nodes:
            if node.op_type != "Constant" or not node.outputs:
                continue
            attrs = node.attributes
            if "value" in attrs and attrs["value"].t is not None:
                self.constants[node.outputs[0]] = attrs["value"].t
            elif "value_int" in attrs and attrs["value_int"].i is not None:
                self.constants[node.outputs[0]] = attrs["value_int"].i
            elif "value_float" in attrs and attrs["value_float"].f is not None:
                self.constants[node.outputs[0]] = attrs["value_float"].f

    def _external(self, init: TensorInfo, folder: Path) -> None:
        location = init.external_data.get("location", "")
        if not location:
            raise LoadError(f"initializer {init.name} is stored externally but names no file")
        try:
            offset = int(init.external_data.get("offset", "0") or 0)
            length = init.external_data.get("length")
            length_n = int(length) if length else _payload_size(init)
        except ValueError:
            raise LoadError(f"initializer {init.name} has a non-numeric external-data offset/length") from None
        target = _inside(folder, location)
        if target is None:
            self.graph.notes.append(
                f"initializer {init.name} points at external data {location!r} outside the model's "
                "folder; it was not opened (onnx refuses such paths; a crafted file can use them "
                "to read other files)"
            )
            self.graph.code_references.append(
                CodeReference(target=location, how="external-data-escape", location=init.name)
            )
            return
        if target not in self.external_sizes:
            try:
                self.external_sizes[target] = os.stat(target).st_size
            except OSError as exc:
                self.external_sizes[target] = exc
        size = self.external_sizes[target]
        if isinstance(size, FileNotFoundError):
            raise LoadError(f"external data file {location} (initializer {init.name}) is missing")
        if isinstance(size, OSError):
            raise LoadError(f"external data file {location} cannot be read: {size.strerror}")
        if offset < 0 or (length_n is not None and offset + length_n > size):
            need = offset + (length_n or 0)
            raise LoadError(
                f"external data file {location} is too short: initializer {init.name} needs bytes "
                f"up to {need}, the file has {size}"
            )
        self.graph.metadata.setdefault("external_data", [])
        files = self.graph.metadata["external_data"]
        if isinstance(files, list) and location not in files:
            files.append(location)


# -- helpers ----------------------------------------------------------------------------------
def _payload_size(init: TensorInfo) -> int | None:
    entry = DATA_TYPES.get(init.data_type)
    if entry is None or not entry[1]:
        return None
    numel = 1
    for d in init.dims:
        numel *= d
    return (numel * entry[1] + 7) // 8


def _inside(folder: Path, location: str) -> Path | None:
    """``folder/location`` if it stays inside ``folder`` (lexically and after symlinks)."""
    if (
        not location
        or "\x00" in location
        or os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", location)
    ):
        return None
    candidate = os.path.normpath(os.path.join(folder, location))
    if os.path.commonpath([candidate, str(folder)]) != str(folder):
        return None
    real = os.path.realpath(candidate)
    if os.path.commonpath([real, os.path.realpath(folder)]) != os.path.realpath(folder):
        return None
    return Path(candidate)
