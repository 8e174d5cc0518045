"""ONNX loader: real torch.onnx exports (fixtures/make_onnx.py) against their exact findings,
recovered layer paths and modes, external-data handling, malformed input, and no framework import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import paraminspect
from paraminspect import LayerKind, Mode, Trainable
from paraminspect.errors import LoadError
from paraminspect.graph import OrderSource
from paraminspect.loaders.onnx.wire import read_model

from .conftest import FIXTURES, findings, has_module

ONNX = FIXTURES / "onnx"
W, E, I = "warning", "error", "info"  # noqa: E741

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    # legacy exporter, eval: BN folded into Conv, Dropout removed
    "cnn_legacy_eval.onnx": set(),
    # legacy TRAINING without constant folding: BN training_mode=1, Dropout training input true
    "cnn_legacy_training.onnx": {("PI202", "backbone.bn", E), ("PI202", "drop", E)},
    # legacy PRESERVE with only backbone.bn in train mode
    "cnn_legacy_preserve_bn_train.onnx": {("PI202", "backbone.bn", E)},
    # dynamo exporter, eval: BN folded (the Conv node keeps the BN scope)
    "cnn_dynamo_eval.onnx": set(),
    # dynamo TRAINING: BN folded as inference BN (the exporter drops train mode), Dropout kept
    "cnn_dynamo_training.onnx": {("PI202", "drop", E)},
    # dynamo optimize=False: an inference BatchNormalization node, Dropout as Identity
    "cnn_dynamo_unoptimized.onnx": set(),
    # legacy eval export with every initializer in cnn_external.onnx.data
    "cnn_external.onnx": set(),
    # external data location ../../etc/passwd: not opened, reported
    "external_escape.onnx": {("PI003", "fc.weight", E)},
    # broken input
    "external_missing.onnx": {("PI001", "", E)},
    "truncated.onnx": {("PI001", "", E)},
    "garbage.onnx": {("PI001", "", E)},
}


def test_every_fixture_has_an_expectation():
    assert {p.name for p in ONNX.glob("*.onnx")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings(name: str) -> None:
    assert findings(ONNX / name) == EXPECTED[name]


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("cnn_legacy_training.onnx",
         {"backbone", "backbone.conv", "backbone.bn", "backbone.relu", "pool", "drop", "head"}),
        ("cnn_dynamo_unoptimized.onnx",
         {"backbone", "backbone.conv", "backbone.bn", "backbone.relu", "pool", "drop", "head"}),
        ("cnn_dynamo_eval.onnx", {"backbone.bn", "backbone.relu", "pool", "head"}),
    ],
)
def test_layer_paths_from_scopes(name: str, paths: set[str]) -> None:
    graph = paraminspect.load(ONNX / name)
    assert paths <= set(graph.layers)
    assert graph.format == "onnx" and graph.content == "export" and graph.framework == "onnx"
    assert graph.order_source is OrderSource.DATAFLOW
    assert graph.outputs == ["head"]
    assert graph.order[0] == ""
    assert graph.order.index("backbone.bn") < graph.order.index("head")


def test_legacy_training_graph() -> None:
    graph = paraminspect.load(ONNX / "cnn_legacy_training.onnx")
    assert graph.framework_version == "pytorch 2.13.0"
    bn, drop = graph.layers["backbone.bn"], graph.layers["drop"]
    assert (bn.kind, bn.mode) == (LayerKind.BATCHNORM, Mode.TRAIN)
    assert bn.mode_fact.evidence == "training_mode=1 in the ONNX node"
    assert (drop.kind, drop.mode) == (LayerKind.DROPOUT, Mode.TRAIN)
    assert set(bn.tensors) == {f"backbone.bn.{n}" for n in
                               ("weight", "bias", "running_mean", "running_var")}
    assert graph.tensors["backbone.bn.running_mean"].role.value == "buffer"
    assert graph.tensors["backbone.bn.weight"].role.value == "parameter"
    assert ("backbone.bn", "backbone.relu") in (graph.edges or [])
    assert ("drop", "head") in (graph.edges or [])
    # ONNX stores no trainability: unknown stays unknown
    assert all(t.trainable is Trainable.UNKNOWN for t in graph.tensors.values())
    assert graph.metadata["tensor_bytes_skipped"] > 0


def test_dynamo_graph_classes_and_folding_note() -> None:
    graph = paraminspect.load(ONNX / "cnn_dynamo_eval.onnx")
    assert graph.layers[""].class_name == "torch_models.SmallCNN"
    assert graph.layers["backbone"].class_name == "torch_models.Backbone"
    bn = graph.layers["backbone.bn"]
    assert bn.class_name == "torch.nn.modules.batchnorm.BatchNorm2d"
    assert bn.mode is Mode.UNKNOWN  # folded into a Conv: no BN op left to tell
    assert any("folded into a Conv" in n for n in graph.notes)
    # the folded weights keep their torch names and land in the layer those names say
    assert graph.tensors["backbone.conv.weight"].layer == "backbone.conv"
    assert graph.order.index("backbone.conv") < graph.order.index("backbone.bn")
    unopt = paraminspect.load(ONNX / "cnn_dynamo_unoptimized.onnx")
    assert unopt.layers["backbone.bn"].mode is Mode.EVAL


def test_external_data_escape_is_recorded_not_opened() -> None:
    graph = paraminspect.load(ONNX / "external_escape.onnx")
    refs = [r for r in graph.code_references if r.how == "external-data-escape"]
    assert [(r.target, r.location) for r in refs] == [("../../etc/passwd", "fc.weight")]
    assert any("outside the model's folder" in n for n in graph.notes)


def test_external_data_in_folder_is_checked(tmp_path: Path) -> None:
    graph = paraminspect.load(ONNX / "cnn_external.onnx")
    assert graph.metadata["external_data"] == ["cnn_external.onnx.data"]
    assert not graph.code_references
    # a side file that is too short is an error naming the file
    (tmp_path / "m.onnx").write_bytes((ONNX / "cnn_external.onnx").read_bytes())
    (tmp_path / "cnn_external.onnx.data").write_bytes(b"\0" * 100)
    with pytest.raises(LoadError, match=r"cnn_external\.onnx\.data is too short"):
        paraminspect.load(tmp_path / "m.onnx")


@pytest.mark.parametrize("name", ["truncated.onnx", "garbage.onnx", "external_missing.onnx"])
def test_malformed_input_gives_one_line_load_error(name: str) -> None:
    with pytest.raises(LoadError) as info:
        paraminspect.load(ONNX / name)
    assert "\n" not in str(info.value) and str(info.value)


def test_every_truncation_is_a_clean_load_error(tmp_path: Path) -> None:
    data = (ONNX / "cnn_legacy_training.onnx").read_bytes()
    target = tmp_path / "cut.onnx"
    for cut in range(2, len(data), 37):
        target.write_bytes(data[:cut])
        try:
            paraminspect.load(target)
        except LoadError as exc:
            assert "\n" not in str(exc)


def test_loading_imports_no_framework() -> None:
    code = (
        "import sys, paraminspect\n"
        f"paraminspect.load({str(ONNX / 'cnn_legacy_training.onnx')!r})\n"
        f"paraminspect.load({str(ONNX / 'cnn_dynamo_training.onnx')!r})\n"
        "bad = [m for m in ('onnx', 'onnxruntime', 'torch', 'safetensors', 'numpy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.skipif(not has_module("onnx"), reason="onnx is not installed")
@pytest.mark.parametrize("name", ["cnn_legacy_training.onnx", "cnn_dynamo_training.onnx",
                                  "cnn_external.onnx"])
def test_wire_walker_agrees_with_onnx(name: str) -> None:
    import onnx

    proto = onnx.load(str(ONNX / name), load_external_data=False)
    with open(ONNX / name, "rb") as handle:
        info = read_model(handle, handle.seek(0, 2))
    assert info.graph is not None
    assert info.ir_version == proto.ir_version
    assert info.producer_name == proto.producer_name
    assert info.opsets == {o.domain: o.version for o in proto.opset_import}
    assert [(n.name, n.op_type, n.inputs, n.outputs) for n in info.graph.nodes] == [
        (n.name, n.op_type, list(n.input), list(n.output)) for n in proto.graph.node
    ]
    assert [(t.name, t.dims, t.data_type) for t in info.graph.initializers] == [
        (t.name, list(t.dims), t.data_type) for t in proto.graph.initializer
    ]
    assert [dict(t.external_data) for t in info.graph.initializers] == [
        {e.key: e.value for e in t.external_data} for t in proto.graph.initializer
    ]
    for mine, theirs in zip(info.graph.nodes, proto.graph.node, strict=True):
        assert set(mine.attributes) == {a.name for a in theirs.attribute}
        for attr in theirs.attribute:
            value = onnx.helper.get_attribute_value(attr)
            if isinstance(value, (int, float, list)) and not isinstance(value, bool):
                got = mine.attributes[attr.name].value()
                assert got == pytest.approx(value), attr.name
