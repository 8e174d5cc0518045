"""Keras 2.0-2.2 ``.h5`` files (per-layer trainable, uniquified weight names, unnamed Adam slots
aligned by block layout and shape) and Keras sub-layers (Bidirectional halves, RNN cells)."""

from __future__ import annotations

import pytest

from paraminspect.graph import Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, findings

LEGACY = FIXTURES / "keras_legacy"
W = "warning"

EXPECTED = {
    "k22_clean.h5": set(),
    "k22_frozen_after_compile.h5": {("PI301", "dense_1", W)},
    "k20_bn_frozen.h5": set(),
    "k20_bn_frozen_after_compile.h5": {("PI301", "batch_normalization_1", W)},
    "bi_backward_frozen.keras": set(),
    "bi_backward_frozen_after_fit.keras": {("PI301", "bi.backward_layer.cell", W)},
    "mha_clean.keras": set(),
    "mha_frozen_after_fit.keras": {
        ("PI301", f"mha.{name}_dense", W) for name in ("query", "key", "value", "output")
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings(name: str) -> None:
    assert findings(LEGACY / name) == EXPECTED[name]


def test_keras_20_list_config_gives_stored_trainability() -> None:
    graph = load(LEGACY / "k20_bn_frozen.h5")
    params = {t.name: t for t in graph.parameters()}
    assert sorted(params) == [
        "batch_normalization_1.beta", "batch_normalization_1.gamma",
        "dense_1.bias", "dense_1.kernel", "dense_2.bias", "dense_2.kernel",
    ]
    assert params["batch_normalization_1.gamma"].trainable is Trainable.FROZEN
    assert params["dense_1.kernel"].trainable is Trainable.TRAINABLE
    assert params["dense_1.kernel"].trainable_fact.source.value == "stored"
    # batch_normalization_1_1/moving_mean:0 is a moving statistic, not a parameter
    assert {t.name for t in graph.buffers()} == {
        "batch_normalization_1.moving_mean", "batch_normalization_1.moving_variance"}


@pytest.mark.parametrize(
    ("name", "tracked"),
    [
        ("k20_bn_frozen.h5", {"dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"}),
        ("k22_frozen_after_compile.h5", {
            "dense_1.kernel", "dense_1.bias", "batch_normalization_1.gamma",
            "batch_normalization_1.beta", "dense_2.kernel", "dense_2.bias"}),
    ],
)
def test_unnamed_slots_aligned_by_order_and_shape(name: str, tracked: set[str]) -> None:
    (opt,) = load(LEGACY / name).optimizers
    assert opt.alignment == "count-and-shape" and opt.exhaustive
    assert set(opt.tracked) == tracked


def test_bidirectional_halves_keep_their_own_flag() -> None:
    graph = load(LEGACY / "bi_backward_frozen.keras")
    assert graph.layers["bi.backward_layer.cell"].class_name == "keras.layers.LSTMCell"
    states = {t.name: t.trainable for t in graph.parameters() if t.layer.startswith("bi.")}
    assert states == {
        "bi.forward_layer.cell.kernel": Trainable.TRAINABLE,
        "bi.forward_layer.cell.recurrent_kernel": Trainable.TRAINABLE,
        "bi.forward_layer.cell.bias": Trainable.TRAINABLE,
        "bi.backward_layer.cell.kernel": Trainable.FROZEN,
        "bi.backward_layer.cell.recurrent_kernel": Trainable.FROZEN,
        "bi.backward_layer.cell.bias": Trainable.FROZEN,
    }
    (opt,) = graph.optimizers
    assert not any(name.startswith("bi.backward_layer") for name in opt.tracked)


def test_keras3_weights_file_names_its_optimizer_without_guessing() -> None:
    graph = load(FIXTURES / "keras" / "fn_clean.weights.h5")
    assert graph.metadata["optimizer_variables"] == 10
    assert all(t.trainable is Trainable.UNKNOWN for t in graph.parameters())
    assert findings(FIXTURES / "keras" / "fn_clean.weights.h5") == set()


def test_attention_projections_are_layers_in_build_order() -> None:
    graph = load(LEGACY / "mha_clean.keras")
    dense = [p for p in graph.order if p.startswith("mha.") and p.endswith("_dense")]
    assert dense == ["mha.query_dense", "mha.key_dense", "mha.value_dense", "mha.output_dense"]
    assert graph.layers["mha.query_dense"].class_name == "keras.layers.EinsumDense"
    (opt,) = graph.optimizers
    assert opt.alignment == "count-and-shape" and len(opt.tracked) == 13


def test_unnamed_counter_and_sgd_moments_are_aligned() -> None:
    """Keras 1 / early 2.0 optimizers name even their counter ``Variable:0``; SGD keeps one
    moment per weight."""
    from paraminspect.loaders.keras.optimizer import OptimizerConfig, align_positional

    graph = load(LEGACY / "k20_bn_frozen.h5")
    params = [t for t in graph.parameters()]
    order = ["dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"]
    trainable = [graph.tensors[n] for n in order]
    shapes = [t.shape for t in trainable]
    names = [f"Variable_{i}:0" for i in range(1, len(shapes) + 1)]
    datasets = [("Variable:0", ()), *zip(names, shapes, strict=True)]
    sgd = align_positional(OptimizerConfig("SGD", {}, "test"), datasets, params, trainable, "w")
    assert sgd.alignment == "count-and-shape" and list(sgd.tracked) == order
    # a moment matching no weight: left unaligned, never guessed
    bad = align_positional(OptimizerConfig("SGD", {}, "test"), [*datasets, ("V:0", (3,))],
                           params, trainable, "w")
    assert bad.alignment == "unaligned" and not bad.tracked
