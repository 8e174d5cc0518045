"""Keras fixtures against the exact findings they must produce, plus the loader's guarantees.

The fixtures are real Keras 3 / tf-keras files made by fixtures/make_keras.py. An empty set means
the file is clean: a finding there is a false positive.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from paraminspect import api
from paraminspect.errors import LoadError
from paraminspect.graph import Mode, OrderSource, Source, TensorRole, Trainable

from .conftest import FIXTURES, findings

KERAS_FIXTURES = FIXTURES / "keras"
FROZEN_BASE = {("PI301", "base.conv"), ("PI301", "base.bn")}

EXPECTED: dict[str, set[tuple[str, str]]] = {
    # Keras 3 .keras, nested Functional base (conv, bn) + Dense head
    "fn_clean.keras": set(),
    "fn_frozen_after_compile.keras": FROZEN_BASE,
    "fn_recompiled.keras": set(),
    # correct training, but compile() reused the optimizer object: same layout as the bug (4b)
    "fn_recompiled_same_opt.keras": FROZEN_BASE,
    "fn_unfrozen_after_compile.keras": {("PI302", "base.conv"), ("PI302", "base.bn")},
    "fn_all_frozen.keras": {("PI101", "")},
    "fn_head_frozen.keras": {("PI102", "head")},
    "fn_lambda.keras": {("PI002", "scale")},
    "seq_clean.keras": set(),
    "seq_frozen_after_compile.keras": {("PI301", "conv"), ("PI301", "bn")},
    # no layer graph and no inner trainable flags: nothing can be proven
    "subclassed.keras": set(),
    # Keras 3 legacy .h5 and weights-only
    "fn_clean.h5": set(),
    "fn_frozen_after_compile.h5": FROZEN_BASE,
    "fn_clean.weights.h5": set(),
    # tf-keras (Keras 2)
    "tfk_fn_clean.h5": set(),
    "tfk_fn_frozen_after_compile.h5": FROZEN_BASE,
    "tfk_fn_clean.keras": set(),
    "tfk_fn_frozen_after_compile.keras": FROZEN_BASE,
}


def codes(path: Path) -> set[tuple[str, str]]:
    return {(code, location) for code, location, _ in findings(path)}


def has(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {p.name for p in KERAS_FIXTURES.iterdir() if p.name != "VERSION"}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings(name: str) -> None:
    assert codes(KERAS_FIXTURES / name) == EXPECTED[name]


def test_severities() -> None:
    assert {s for c, _, s in findings(KERAS_FIXTURES / "fn_all_frozen.keras")} == {"error"}
    assert {s for c, _, s in findings(KERAS_FIXTURES / "fn_frozen_after_compile.keras")} == {
        "warning"
    }


# -- the graph -------------------------------------------------------------------------------------
def test_functional_graph() -> None:
    graph = api.load(KERAS_FIXTURES / "fn_frozen_after_compile.keras")
    assert (graph.format, graph.framework, graph.content) == ("keras", "keras", "model")
    assert graph.framework_version == "3.15.1"
    assert graph.order_source is OrderSource.DATAFLOW
    assert graph.outputs == ["head"]
    assert set(graph.edges or []) == {
        ("img", "base.base_in"), ("base.base_in", "base.conv"), ("base.conv", "base.bn"),
        ("base.bn", "base.relu"), ("base.relu", "base.gap"), ("base.gap", "fc"),
        ("fc", "drop"), ("drop", "head"),
    }
    order = graph.order
    assert order.index("base.conv") < order.index("base.bn") < order.index("fc") < order.index("head")
    assert graph.layers["base"].kind.value == "model"
    assert graph.layers["base.bn"].class_name == "keras.layers.BatchNormalization"
    kernel = graph.tensors["base.conv.kernel"]
    assert (kernel.shape, kernel.dtype, kernel.role) == ((3, 3, 3, 4), "float32", TensorRole.PARAMETER)
    assert kernel.trainable is Trainable.FROZEN
    assert kernel.trainable_fact.source is Source.STORED
    assert kernel.trainable_fact.evidence == "trainable=False on base"
    assert graph.tensors["base.bn.moving_mean"].role is TensorRole.BUFFER
    assert graph.tensors["head.kernel"].trainable is Trainable.TRAINABLE
    bn = graph.layers["base.bn"]
    assert bn.mode is Mode.EVAL and bn.mode_fact.source is Source.INFERRED
    assert graph.layers["fc"].mode is Mode.UNKNOWN
    # the recorded call kwarg is kept, never trusted as a mode
    assert graph.layers["base"].attrs.get("call_training_kwarg") is False
    (opt,) = graph.optimizers
    assert (opt.type, opt.alignment, opt.exhaustive) == ("Adam", "count-and-shape", True)
    assert set(opt.tracked) == {
        f"{layer}.{w}" for layer, ws in (
            ("base.conv", ("kernel", "bias")), ("base.bn", ("gamma", "beta")),
            ("fc", ("kernel", "bias")), ("head", ("kernel", "bias")),
        ) for w in ws
    }
    assert opt.tracked["fc.kernel"].slots == ("momentum", "velocity")


def test_clean_optimizer_tracks_only_the_head() -> None:
    (opt,) = api.load(KERAS_FIXTURES / "fn_clean.keras").optimizers
    assert set(opt.tracked) == {"fc.kernel", "fc.bias", "head.kernel", "head.bias"}
    assert opt.exhaustive


@pytest.mark.parametrize("name", ["fn_frozen_after_compile.h5", "tfk_fn_frozen_after_compile.h5"])
def test_legacy_h5_aligns_by_name(name: str) -> None:
    graph = api.load(KERAS_FIXTURES / name)
    assert graph.format == "keras-h5"
    (opt,) = graph.optimizers
    assert (opt.alignment, opt.exhaustive) == ("names", True)
    assert "base.conv.kernel" in opt.tracked
    assert graph.order_source is OrderSource.DATAFLOW and graph.outputs == ["head"]


def test_sequential_chain() -> None:
    graph = api.load(KERAS_FIXTURES / "seq_clean.keras")
    assert graph.edges == [("img", "conv"), ("conv", "bn"), ("bn", "gap"), ("gap", "head")]
    assert graph.outputs == ["head"] and graph.order_source is OrderSource.DATAFLOW


def test_subclassed_falls_back_to_registration_order() -> None:
    graph = api.load(KERAS_FIXTURES / "subclassed.keras")
    assert graph.order_source is OrderSource.REGISTRATION
    assert any("subclassed" in note for note in graph.notes)
    assert graph.layers[""].class_name == "fixtures>TinyNet"
    assert graph.trainability_source() is Source.UNKNOWN
    assert {"conv", "bn", "gap", "head"} <= set(graph.layers)


def test_weights_only_file() -> None:
    graph = api.load(KERAS_FIXTURES / "fn_clean.weights.h5")
    assert graph.content == "weights"
    assert graph.tensors["base.conv.kernel"].shape == (3, 3, 3, 4)
    assert all(p.trainable is Trainable.UNKNOWN for p in graph.parameters())
    assert not graph.optimizers


def test_lambda_is_a_code_reference_never_decoded() -> None:
    graph = api.load(KERAS_FIXTURES / "fn_lambda.keras")
    refs = [(r.target, r.how, r.location) for r in graph.code_references]
    assert refs == [("keras.layers.Lambda", "bytecode", "scale")]


# -- guarantees ------------------------------------------------------------------------------------
def test_loading_imports_no_framework() -> None:
    script = (
        "import sys, pathlib\n"
        "from paraminspect import api\n"
        f"for p in sorted(pathlib.Path({str(KERAS_FIXTURES)!r}).iterdir()):\n"
        "    if p.name != 'VERSION': api.load(p)\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'tf_keras', 'torch', 'jax')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_load_is_fast() -> None:
    api.load(KERAS_FIXTURES / "fn_clean.keras")  # h5py import paid once
    start = time.perf_counter()
    api.load(KERAS_FIXTURES / "fn_frozen_after_compile.keras")
    assert time.perf_counter() - start < 0.5


def _rezip(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in replace:
                data = replace[info.filename]
                if data is not None:
                    zout.writestr(info.filename, data)
            else:
                zout.writestr(info.filename, zin.read(info.filename))
    return dst


def test_malformed_config_json(tmp_path: Path) -> None:
    bad = _rezip(KERAS_FIXTURES / "fn_clean.keras", tmp_path / "bad.keras",
                 {"config.json": b'{"class_name": "Functional", "config": {'})
    with pytest.raises(LoadError, match="config.json is not valid JSON"):
        api.load(bad)
    assert codes(bad) == {("PI001", "")}


def test_config_that_is_not_a_model(tmp_path: Path) -> None:
    bad = _rezip(KERAS_FIXTURES / "fn_clean.keras", tmp_path / "list.keras",
                 {"config.json": b"[1, 2, 3]"})
    with pytest.raises(LoadError, match="not a Keras model config"):
        api.load(bad)


def test_corrupt_weights_h5(tmp_path: Path) -> None:
    bad = _rezip(KERAS_FIXTURES / "fn_clean.keras", tmp_path / "w.keras",
                 {"model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 64})
    with pytest.raises(LoadError):
        api.load(bad)


def test_non_keras_hdf5(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(3,), dtype="f4")
    with pytest.raises(LoadError, match="not a Keras model"):
        api.load(path)


# -- against Keras itself ----------------------------------------------------------------------------
@pytest.mark.skipif(not (has("keras") and has("tensorflow")), reason="keras is not installed")
def test_counts_match_what_keras_reports() -> None:
    names = ["fn_clean.keras", "fn_frozen_after_compile.keras", "fn_head_frozen.keras",
             "seq_frozen_after_compile.keras", "fn_clean.h5"]
    script = (
        "import os, sys, json\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import keras\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    m = keras.models.load_model(p, compile=False)\n"
        "    out[os.path.basename(p)] = [len(m.trainable_weights), len(m.non_trainable_weights)]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *(str(KERAS_FIXTURES / n) for n in names)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reported = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in names:
        graph = api.load(KERAS_FIXTURES / name)
        trainable = [p for p in graph.parameters() if p.trainable is Trainable.TRAINABLE]
        frozen = [p for p in graph.parameters() if p.trainable is Trainable.FROZEN]
        assert [len(trainable), len(frozen) + len(graph.buffers())] == reported[name], name


@pytest.mark.skipif(
    not (has("keras") and has("tf_keras")) and os.environ.get("PARAMINSPECT_REGEN") != "1",
    reason="keras / tf_keras are not installed",
)
def test_regenerated_fixtures_give_the_same_findings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_keras.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, expected in EXPECTED.items():
        assert codes(tmp_path / name) == expected, name
