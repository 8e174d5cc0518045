"""torch.export .pt2 archives: loader facts, dataflow edges and exact findings.

Fixtures: fixtures/torch_export/ (made by fixtures/make_torch_export.py, see its README.md).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from paraminspect.errors import LoadError
from paraminspect.graph import LayerKind, Mode, OrderSource, Source, TensorRole, Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, findings

EXPORT = FIXTURES / "torch_export"
W, E = "warning", "error"

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "cnn_export_clean.pt2": set(),
    "cnn_export_train.pt2": {("PI201", "backbone.bn", W), ("PI202", "backbone.bn", E),
                             ("PI202", "drop", E)},
    "cnn_export_train_decomp.pt2": {("PI201", "backbone.bn", W), ("PI202", "backbone.bn", E),
                                    ("PI202", "drop", E)},
    "cnn_export_head_frozen.pt2": {("PI102", "head", W)},
    "cnn_export_unused_head.pt2": {("PI104", "aux_head", W)},
}
CHAIN = [
    ("backbone.conv", "backbone.bn"), ("backbone.bn", "backbone.relu"),
    ("backbone.relu", "pool"), ("pool", "drop"), ("drop", "head"),
]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(name: str) -> None:
    assert findings(EXPORT / name) == EXPECTED[name]


def test_every_export_fixture_has_an_expectation() -> None:
    assert {p.name for p in EXPORT.glob("*.pt2")} == set(EXPECTED)


def test_graph_facts_with_provenance() -> None:
    graph = load(EXPORT / "cnn_export_train.pt2")
    assert (graph.format, graph.content, graph.framework) == ("torch-export", "export", "pytorch")
    assert graph.framework_version and graph.framework_version.startswith("2.")
    assert graph.metadata["dialect"] == "TRAINING"
    conv_w = graph.tensors["backbone.conv.weight"]
    assert (conv_w.role, conv_w.shape, conv_w.dtype) == (TensorRole.PARAMETER, (4, 3, 3, 3), "float32")
    assert conv_w.trainable is Trainable.FROZEN
    assert conv_w.trainable_fact.source is Source.STORED
    assert graph.tensors["head.weight"].trainable is Trainable.TRAINABLE
    nbt = graph.tensors["backbone.bn.num_batches_tracked"]
    assert (nbt.role, nbt.dtype, nbt.shape, nbt.trainable) == (
        TensorRole.BUFFER, "int64", (), Trainable.UNKNOWN)
    bn = graph.layers["backbone.bn"]
    assert bn.class_name == "torch.nn.modules.batchnorm.BatchNorm2d"
    assert bn.kind is LayerKind.BATCHNORM and bn.kind_fact.source is Source.STORED
    assert bn.mode is Mode.TRAIN and bn.mode_fact.source is Source.STORED
    assert "training=True baked into the exported batch_norm op" in bn.mode_fact.evidence
    assert graph.layers["drop"].mode is Mode.TRAIN
    assert graph.layers["head"].mode is Mode.UNKNOWN  # no module flag is stored in an export
    assert graph.layers["backbone"].kind is LayerKind.CONTAINER


def test_eval_export_modes() -> None:
    graph = load(EXPORT / "cnn_export_clean.pt2")
    assert graph.layers["backbone.bn"].mode is Mode.EVAL
    assert graph.layers["drop"].mode is Mode.EVAL


def test_decomposed_export_reads_functional_batch_norm() -> None:
    graph = load(EXPORT / "cnn_export_train_decomp.pt2")
    assert graph.metadata["dialect"] == "ATEN"
    assert graph.layers["backbone.bn"].mode is Mode.TRAIN
    assert "_native_batch_norm_legit_functional" in graph.layers["backbone.bn"].mode_fact.evidence
    # buffer mutations are not model outputs
    assert graph.outputs == ["head"]
    assert graph.edges == CHAIN


def test_dataflow_edges_outputs_and_order() -> None:
    graph = load(EXPORT / "cnn_export_clean.pt2")
    assert graph.order_source is OrderSource.DATAFLOW
    # the root's torch.flatten is container glue: pool -> drop passes through it
    assert graph.edges == CHAIN
    assert graph.outputs == ["head"]
    for src, dst in graph.edges:
        assert graph.order.index(src) < graph.order.index(dst)


def test_dataflow_order_differs_from_registration_order() -> None:
    graph = load(EXPORT / "cnn_export_head_frozen.pt2")
    assert list(graph.layers)[:2] == ["", "head"]  # registered first ...
    assert graph.order[-1] == "head"  # ... runs last
    assert graph.edges == CHAIN


def test_unused_module_is_a_layer_without_edges() -> None:
    graph = load(EXPORT / "cnn_export_unused_head.pt2")
    aux = graph.layers["aux_head"]
    assert aux.class_name is None and aux.kind_fact.source is Source.UNKNOWN
    assert graph.tensors["aux_head.weight"].trainable is Trainable.TRAINABLE
    assert all("aux_head" not in edge for edge in graph.edges or [])
    assert graph.outputs == ["head"]


def test_nested_sample_inputs_pickle_is_walked_not_run() -> None:
    graph = load(EXPORT / "cnn_export_clean.pt2")
    targets = {ref.target for ref in graph.code_references}
    assert "torch._utils._rebuild_tensor_v2" in targets


def test_loading_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from paraminspect.loaders import load\n"
        f"for p in sorted(__import__('pathlib').Path({str(EXPORT)!r}).glob('*.pt2')):\n"
        "    load(p)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            suffix = info.filename.split("/", 1)[1]
            if suffix in replace:
                if replace[suffix] is not None:
                    zout.writestr(info.filename, replace[suffix])
                continue
            zout.writestr(info, zin.read(info.filename))
    return dst


def test_broken_program_json_is_one_line_load_error(tmp_path: Path) -> None:
    bad = _rewrite(EXPORT / "cnn_export_clean.pt2", tmp_path / "bad.pt2",
                   {"models/model.json": b"{not json"})
    with pytest.raises(LoadError) as info:
        load(bad)
    assert "\n" not in str(info.value) and "JSON" in str(info.value)
    assert findings(bad) == {("PI001", "", E)}


def test_program_without_graph_module(tmp_path: Path) -> None:
    bad = _rewrite(EXPORT / "cnn_export_clean.pt2", tmp_path / "empty.pt2",
                   {"models/model.json": b"{}"})
    with pytest.raises(LoadError, match="ExportedProgram"):
        load(bad)


def test_missing_weights_config_leaves_trainability_from_tensor_values(tmp_path: Path) -> None:
    path = _rewrite(EXPORT / "cnn_export_train.pt2", tmp_path / "noconfig.pt2",
                    {"data/weights/model_weights_config.json": None})
    graph = load(path)
    weight = graph.tensors["head.weight"]
    assert weight.trainable is Trainable.TRAINABLE
    assert "tensor_values" in weight.trainable_fact.evidence


def test_truncated_archive(tmp_path: Path) -> None:
    data = (EXPORT / "cnn_export_clean.pt2").read_bytes()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(data[: len(data) // 2])
    assert findings(cut) == {("PI001", "", E)}
