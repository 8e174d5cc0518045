"""torch.distributed.checkpoint folders (FSDP2 and plain), made by fixtures/make_dcp.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.graph import TensorRole, Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, findings, needs_torch

HERE = FIXTURES / "dcp"
W, I = "warning", "info"  # noqa: E741
#: the .metadata pickle calls these two inert torch helpers: recorded, and not reported
DCP_HELPERS = {
    "torch.serialization._get_layout",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
}

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "dcp_clean": set(),
    "dcp_frozen_after_optim": {("PI301", "backbone.conv", W), ("PI301", "backbone.bn", W)},
    "dcp_plain_frozen_after_optim": {
        ("PI301", "backbone.conv", W),
        ("PI301", "backbone.bn", W),
    },
    "dcp_frozen_before_step": {("PI303", "backbone.conv", I), ("PI303", "backbone.bn", I)},
}


def _own_findings(path: Path) -> set[tuple[str, str, str]]:
    """Every finding, PI002 included: the metadata pickle's torch helpers are ordinary and must
    not warn (a warning fails CI under the default --fail-on)."""
    return findings(path)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dcp_folder_findings(name: str) -> None:
    assert _own_findings(HERE / name) == EXPECTED[name]


def test_dcp_folder_is_one_model_read_by_name() -> None:
    report = check(HERE)
    assert sorted(Path(f.path).name for f in report.files) == sorted(EXPECTED)
    graph = load(HERE / "dcp_frozen_after_optim")
    assert graph.format == "pytorch-dcp"
    (opt,) = graph.optimizers
    assert opt.name == "optim" and opt.type == "AdamW" and opt.alignment == "names"
    assert opt.exhaustive
    assert opt.tracked["backbone.conv.weight"].step == 2.0
    assert opt.tracked["head.weight"].step == 5.0
    assert opt.tracked["head.weight"].shape == (2, 4)
    assert opt.groups[0].weight_decay == pytest.approx(0.01)
    assert graph.tensors["backbone.bn.running_mean"].role is TensorRole.BUFFER
    assert graph.tensors["head.weight"].trainable is Trainable.TRAINABLE
    assert {r.target for r in graph.code_references} >= DCP_HELPERS


def test_dcp_step_lag_message_names_the_steps() -> None:
    report = check(HERE / "dcp_frozen_after_optim")
    (conv,) = [f for f in report.files[0].findings if f.location == "backbone.conv"]
    assert "stopped being stepped at step 2 of 5" in conv.message


def test_broken_dcp_folders_are_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(HERE / "dcp_frozen_after_optim", folder)
    (folder / ".metadata").write_bytes((folder / ".metadata").read_bytes()[:200])
    assert findings(folder) == {("PI001", "", "error")}
    shutil.copy(HERE / "dcp_frozen_after_optim" / ".metadata", folder / ".metadata")
    (folder / "__0_0.distcp").write_bytes(b"x" * 10)
    (report,) = check(folder).files
    assert report.error and "truncated" in report.error


def test_a_hostile_metadata_pickle_is_reported_not_run(tmp_path: Path) -> None:
    import pickle

    class Payload:
        def __reduce__(self):  # would run `true` if unpickled for real; only pickled here
            return (__import__("os").system, ("true",))

    folder = tmp_path / "ckpt"
    shutil.copytree(HERE / "dcp_clean", folder)
    (folder / ".metadata").write_bytes(pickle.dumps({"x": Payload()}))
    got = findings(folder)
    assert ("PI001", "", "error") in got and ("PI002", "", "error") in got


@needs_torch
def test_regenerated_dcp_folders_have_the_same_findings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_dcp.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, expected in EXPECTED.items():
        assert _own_findings(tmp_path / name) == expected, name
