"""DeepSpeed save_checkpoint folders, made by a real DeepSpeed run (fixtures/make_deepspeed.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.graph import Source, TensorRole, Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, findings, has_module

HERE = FIXTURES / "deepspeed"
TAG = "global_step3"
W = "warning"

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "ds_clean": set(),
    "ds_stage1_clean": set(),
    "ds_bn_drift": {("PI201", "backbone.bn", W)},
    "ds_frozen_after_init": {("PI301", "backbone.conv", W), ("PI301", "backbone.bn", W)},
    "ds_unfrozen_after_init": {("PI302", "backbone.conv", W), ("PI302", "backbone.bn", W)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deepspeed_checkpoint_findings(name: str) -> None:
    # every finding, PI002 included: the ZeroStageEnum a healthy optimizer partition pickles is
    # an ordinary DeepSpeed class, and a false alarm would fail CI under --fail-on warning
    assert findings(HERE / name / TAG) == EXPECTED[name]


def test_a_run_folder_is_one_checkpoint_per_tag_and_latest_is_followed() -> None:
    report = check(HERE / "ds_clean")
    assert [Path(f.path).name for f in report.files] == [TAG]
    assert not any(f.code == "PI001" for f in report.files[0].findings)
    graph = load(HERE / "ds_frozen_after_init")  # the run folder: `latest` names the tag
    assert graph.path.endswith(TAG) and graph.format == "deepspeed"
    assert graph.metadata["global_step"] == 3 and graph.metadata["zero_stage"] == 2


def test_stored_lists_decide_trainability() -> None:
    graph = load(HERE / "ds_frozen_after_init" / TAG)
    conv = graph.tensors["backbone.conv.weight"]
    assert conv.trainable is Trainable.FROZEN and conv.trainable_fact.source is Source.STORED
    assert graph.tensors["backbone.bn.running_mean"].role is TensorRole.BUFFER
    (opt,) = graph.optimizers
    assert opt.type == "AdamW" and set(opt.tracked) >= {"backbone.conv.weight", "head.weight"}
    stage1 = load(HERE / "ds_stage1_clean" / TAG).tensors["backbone.conv.weight"]
    assert stage1.trainable is Trainable.FROZEN and stage1.trainable_fact.source is Source.INFERRED
    (finding,) = [
        f for f in check(HERE / "ds_frozen_after_init" / TAG).files[0].findings
        if f.location == "backbone.conv"
    ]
    assert "still steps their slice of the partition" in finding.message


def test_broken_model_states_is_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / TAG
    shutil.copytree(HERE / "ds_clean" / TAG, folder)
    states = folder / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[:300])
    (report,) = check(folder).files
    assert {f.code for f in report.findings} == {"PI001"} and "\n" not in report.error


@pytest.mark.skipif(
    not has_module("deepspeed") or not os.environ.get("PARAMINSPECT_SLOW"),
    reason="needs deepspeed and PARAMINSPECT_SLOW=1 (a DeepSpeed run takes about a minute)",
)
def test_regenerated_deepspeed_folders_have_the_same_findings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_deepspeed.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, expected in EXPECTED.items():
        assert findings(tmp_path / name / TAG) == expected, name
