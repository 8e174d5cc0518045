"""State-dict precision: buffers vs parameters, never-updated members, step-lag tolerance, BN
drift from ``num_batches_tracked``. Fixtures: fixtures/make_torch_precision.py (real runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.graph import Mode, TensorRole, Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, findings, needs_torch

HERE = FIXTURES / "torch_precision"
W, I = "warning", "info"  # noqa: E741

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "float_buffers_clean.pt": set(),
    "float_buffers_bias_frozen.pt": {("PI103", "frontend.proj", W)},
    "never_updated_clean.pt": set(),
    "never_updated_branch.pt": {("PI303", "unused", I)},
    "step_lag_intermittent.pt": set(),
    "step_lag_appended_group.pt": set(),
    "step_lag_experts.pt": set(),
    "step_lag_frozen_at_epoch.pt": {("PI301", "aux", W)},
    "bn_drift_clean.pt": set(),
    "bn_drift_pretrained_clean.pt": set(),
    "bn_drift_global_step.pt": {("PI201", "backbone.bn", W)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_precision_fixture_findings(name: str) -> None:
    assert findings(HERE / name) == EXPECTED[name]


def test_float_buffers_are_buffers_and_optimizer_covered_names_are_parameters() -> None:
    graph = load(HERE / "float_buffers_clean.pt")
    for name in ("window", "mel_filters", "n_seen", "centroids"):
        assert graph.tensors[f"frontend.{name}"].role is TensorRole.BUFFER, name
    pos = graph.tensors["frontend.pos_table"]
    assert pos.role is TensorRole.PARAMETER and pos.trainable is Trainable.TRAINABLE
    assert any("frontend.centroids" in note and "buffers" in note for note in graph.notes)


def test_frozen_bias_is_named_without_the_buffers() -> None:
    (finding,) = check(HERE / "float_buffers_bias_frozen.pt").files[0].findings
    assert finding.paths == ("frontend.proj.bias",)
    assert "window" not in finding.message and "centroids" not in finding.message


def test_never_updated_is_not_a_freeze() -> None:
    graph = load(HERE / "never_updated_branch.pt")
    assert graph.tensors["unused.weight"].trainable is Trainable.UNKNOWN
    (finding,) = check(HERE / "never_updated_branch.pt").files[0].findings
    assert finding.code == "PI303" and "never received a gradient" in finding.message


def test_intermittent_supervision_is_tolerated_and_a_remaining_lag_names_the_ambiguity() -> None:
    aux = load(HERE / "step_lag_intermittent.pt").tensors["aux.weight"]
    assert aux.trainable is Trainable.TRAINABLE
    assert "not a whole number of the 6 steps per epoch" in aux.trainable_fact.evidence
    expert = load(HERE / "step_lag_experts.pt").tensors["experts.3.weight"]
    assert expert.trainable is Trainable.TRAINABLE
    assert "4 different lagging step counts below 12" in expert.trainable_fact.evidence
    appended = load(HERE / "step_lag_appended_group.pt").tensors["aux.bias"]
    assert appended.trainable is Trainable.TRAINABLE
    assert "a group appended later" in appended.trainable_fact.evidence
    (finding,) = check(HERE / "step_lag_frozen_at_epoch.pt").files[0].findings
    assert "step 6 of 12" in finding.message
    assert "the file cannot tell the two apart" in finding.message


def test_bn_drift_is_inferred_from_num_batches_tracked() -> None:
    graph = load(HERE / "bn_drift_global_step.pt")
    bn = graph.layers["backbone.bn"]
    assert bn.mode is Mode.TRAIN and bn.attrs["num_batches_tracked"] == 4
    assert "equals the trainer's global_step" in bn.mode_fact.evidence
    (finding,) = check(HERE / "bn_drift_global_step.pt").files[0].findings
    assert "inferred: num_batches_tracked = 4" in finding.evidence
    pretrained = load(HERE / "bn_drift_pretrained_clean.pt").layers["backbone.bn"]
    assert pretrained.mode is Mode.UNKNOWN and pretrained.attrs["num_batches_tracked"] == 7


@needs_torch
def test_regenerated_precision_fixtures_have_the_same_findings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_torch_precision.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, expected in EXPECTED.items():
        assert findings(tmp_path / name) == expected, name
