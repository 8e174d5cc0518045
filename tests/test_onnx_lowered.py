"""Training-mode Dropout / BatchNorm lowered to plain ONNX ops (PI202), each export with its
eval-mode twin, and weights kept in Constant nodes counted as frozen parameters."""

from __future__ import annotations

import pytest

from paraminspect import check
from paraminspect.loaders import load

from .conftest import FIXTURES, findings

LOWERED = FIXTURES / "onnx_lowered"
E = "error"

EXPECTED = {
    # torch dynamo exporter, model.train(): rand_like mask dropout + bernoulli_ DropPath
    "torch_train.onnx": {("PI202", "drop", E), ("PI202", "path", E)},
    "torch_eval.onnx": set(),
    # eval-mode VAE: RandomNormalLike scales the activation, never masks it
    "torch_vae.onnx": set(),
    # tf2onnx of tf_keras Dropout called with training=True
    "tfkeras_train.onnx": {("PI202", "sequential.drop", E)},
    "tfkeras_eval.onnx": set(),
    # tf2onnx of Keras 3 BatchNormalization (batch moments) + Dropout (stateless draw)
    "keras3_train.onnx": {("PI202", "functional_1.bn_1", E), ("PI202", "functional_1.drop_1", E)},
    "keras3_eval.onnx": set(),
    "constant_weights.onnx": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lowered_train_mode_findings(name: str) -> None:
    assert findings(LOWERED / name) == EXPECTED[name]


def test_lowered_findings_name_the_op_chain() -> None:
    (file,) = check(LOWERED / "keras3_train.onnx").files
    messages = {f.location: f.message for f in file.findings}
    assert messages["functional_1.drop_1"].endswith(
        "StatelessRandomUniformV2 -> GreaterOrEqual -> Cast -> Mul")
    assert "ReduceMean over the batch axis -> Sub -> Mul" in messages["functional_1.bn_1"]
    assert all("training=False" in f.fix for f in file.findings)


def test_constant_node_weights_are_frozen_parameters() -> None:
    graph = load(LOWERED / "constant_weights.onnx")
    params = {t.name: t for t in graph.parameters()}
    assert set(params) == {"fc1.weight", "fc1.bias", "head.weight", "head.bias"}
    assert params["fc1.weight"].shape == (16, 8)
    assert all(t.trainable.value == "frozen" for t in params.values())
    (file,) = check(LOWERED / "constant_weights.onnx").files
    assert (file.summary.params, file.summary.frozen_params) == (178, 178)
    # the initializer twin: same count, trainability unknown (ONNX stores none)
    (twin,) = check(LOWERED / "torch_eval.onnx").files
    assert (twin.summary.params, twin.summary.frozen_params) == (178, None)


def _node(index: int, op: str, inputs: list[str], outputs: list[str], name: str = ""):
    from paraminspect.loaders.onnx.wire import NodeInfo

    return NodeInfo(index=index, name=name, op_type=op, inputs=inputs, outputs=outputs)


@pytest.mark.parametrize(
    ("branches", "expected"),
    [
        (["x", "zero"], [("dropout", "block.drop")]),  # Where(mask, activation, 0): dropout
        (["one", "zero"], []),  # Where over two constants: a random 0/1 tensor, no gating
        (["x", "input"], []),  # a choice between two computed tensors: a selection, not dropout
    ],
)
def test_where_gated_mask(branches: list[str], expected: list[tuple[str, str]]) -> None:
    from paraminspect.loaders.onnx.lowered import find_lowered
    from paraminspect.loaders.onnx.wire import TensorInfo

    nodes = [
        _node(0, "Relu", ["input"], ["x"]),
        _node(1, "RandomUniformLike", ["x"], ["r"], "block/drop/random_uniform/RandomUniformLike"),
        _node(2, "Less", ["r", "keep"], ["mask"], "block/drop/Less"),
        _node(3, "Where", ["mask", *branches], ["y"], "block/drop/Where"),
    ]
    consts = {n: TensorInfo(name=n, data_type=1) for n in ("keep", "zero", "one")}
    found = find_lowered(nodes, consts, {})
    assert [(f.kind, f.scope) for f in found] == expected
