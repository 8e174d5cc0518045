"""onnxruntime-training checkpoints (fixtures/make_ort_training.py, real generate_artifacts and
CheckpointState.save_checkpoint output): exact findings, the graph, malformed input, no imports.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import Trainable
from paraminspect.errors import LoadError
from paraminspect.graph import Source
from paraminspect.loaders import load

from .conftest import FIXTURES, ROOT, findings

ORT = FIXTURES / "ort_training"
HEAD = {"head.weight", "head.bias"}
BACKBONE = {"backbone.fc.weight", "backbone.fc.bias"}

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    # head trainable, backbone frozen, as generate_artifacts writes it (no optimizer state)
    "clean": set(),
    # the freeze inverted (backbone trainable, head frozen). PI102 frozen-head would catch this,
    # but it needs the layer order and the checkpoint stores none (parameters by name only), so
    # nothing fires; PI101 needs every parameter frozen, which generate_artifacts refuses to
    # write together with an optimizer (IndexError on an empty requires_grad list).
    "head_frozen": set(),
    # clean after one AdamW step, saved with optimizer state: the optimizer tracks exactly the
    # trainable head, so PI301/PI302 stay silent
    "trained": set(),
}


def test_every_fixture_has_an_expectation():
    assert {p.parent.name for p in ORT.glob("*/checkpoint")} == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_findings(case: str) -> None:
    assert findings(ORT / case / "checkpoint") == EXPECTED[case]


@pytest.mark.parametrize(("case", "trainable", "frozen"),
                         [("clean", HEAD, BACKBONE), ("head_frozen", BACKBONE, HEAD),
                          ("trained", HEAD, BACKBONE)])
def test_graph(case: str, trainable: set[str], frozen: set[str]) -> None:
    graph = load(ORT / case / "checkpoint")
    assert (graph.format, graph.content, graph.framework) == (
        "ort-training", "checkpoint", "onnxruntime-training")
    params = {t.name: t for t in graph.parameters()}
    assert {n for n, t in params.items() if t.trainable is Trainable.TRAINABLE} == trainable
    assert {n for n, t in params.items() if t.trainable is Trainable.FROZEN} == frozen
    assert {n: t.shape for n, t in params.items()} == {
        "backbone.fc.weight": (4, 3), "backbone.fc.bias": (4,), "head.weight": (2, 4),
        "head.bias": (2,)}
    assert {t.dtype for t in params.values()} == {"float32"}
    assert {t.trainable_fact.source for t in params.values()} == {Source.STORED}
    assert graph.trainability_source() is Source.STORED
    assert graph.order == [] and graph.notes
    assert graph.layers["backbone.fc"].tensors and "backbone.fc" in graph.layers["backbone"].children
    assert graph.metadata["is_nominal_state"] is False


def test_optimizer_state() -> None:
    assert load(ORT / "clean" / "checkpoint").optimizers == []
    (opt,) = load(ORT / "trained" / "checkpoint").optimizers
    assert set(opt.tracked) == HEAD
    assert (opt.alignment, opt.alignment_fact.source, opt.exhaustive, opt.size) == (
        "names", Source.STORED, True, 2)
    assert opt.type is None  # ORT names the group "group0", not the optimizer
    assert all(s.has_state and s.slots == ("momentum0", "momentum1") and s.step == 1.0
               for s in opt.tracked.values())
    assert opt.tracked["head.weight"].shape == (2, 4)
    assert len(opt.groups) == 1 and opt.groups[0].lr == pytest.approx(1e-3)


def test_truncated_and_garbage(tmp_path: Path) -> None:
    data = (ORT / "trained" / "checkpoint").read_bytes()
    truncated = tmp_path / "truncated"
    truncated.write_bytes(data[:60])
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xff\xff\x7fODTC" + bytes(range(256)) * 2)
    for path in (truncated, garbage):
        with pytest.raises(LoadError) as info:
            load(path)
        assert "\n" not in str(info.value)
        assert findings(path) == {("PI001", "", "error")}


def test_every_truncation_and_random_corruption_is_a_load_error_or_a_graph(tmp_path: Path) -> None:
    data = (ORT / "trained" / "checkpoint").read_bytes()
    rng = random.Random(0)
    variants = [data[:n] for n in range(8, len(data))]
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(3):
            mutated[rng.randrange(8, len(data))] = rng.randrange(256)
        variants.append(bytes(mutated))
    path = tmp_path / "checkpoint"
    for blob in variants:
        path.write_bytes(blob)
        try:
            load(path)
        except LoadError as exc:
            assert "\n" not in str(exc)


def test_loading_imports_no_framework() -> None:
    code = (
        "import sys; from paraminspect.loaders import load; "
        f"load({str(ORT / 'trained' / 'checkpoint')!r}); "
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'torch', 'flatbuffers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
