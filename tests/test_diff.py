"""``paraminspect diff``: real before/after checkpoints of short training runs, every tensor
format, each bug against its clean twin. Findings are asserted by code and location."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from paraminspect.config import Policy, Settings
from paraminspect.diff import diff_paths

from .conftest import FIXTURES, run_cli

torch = pytest.importorskip("torch")
DIFF = FIXTURES / "diff"
TORCH_VARIANTS = ("clean", "freeze_after_optimizer", "bn_drift", "dead_lora", "optimizer_reset",
                  "unused_head")
BACKBONE_PARAMS = {("PI501", f"backbone.{i}") for i in (0, 1, 3, 4)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every torch variant trained for 4 real AdamW steps, saved after step 1 and step 4."""
    out = tmp_path_factory.mktemp("runs")
    sys.path.insert(0, str(FIXTURES))
    try:
        import diff_runs
    finally:
        sys.path.remove(str(FIXTURES))
    for variant in TORCH_VARIANTS:
        diff_runs.train(variant, out / f"{variant}-before.pt", out / f"{variant}-after.pt")
    return out


def found(before: Path, after: Path, settings: Settings | None = None,
          **kwargs: float) -> set[tuple[str, str]]:
    report = diff_paths(before, after, settings, **kwargs)
    assert not report.has_errors, [f.error for f in report.files]
    return {(f.code, f.location) for f in report.findings}


EXPECTED = {
    "clean": set(),
    "freeze_after_optimizer": BACKBONE_PARAMS,
    "bn_drift": {("PI502", "backbone.1"), ("PI502", "backbone.4")},
    "dead_lora": {("PI503", "adapter")},
    "optimizer_reset": {("PI504", "")},
    "unused_head": {("PI503", "aux_head")},
}


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
def test_torch_runs(runs: Path, variant: str) -> None:
    assert found(runs / f"{variant}-before.pt", runs / f"{variant}-after.pt") == EXPECTED[variant]


def test_jobs_and_tolerance(runs: Path) -> None:
    before, after = runs / "freeze_after_optimizer-before.pt", runs / "freeze_after_optimizer-after.pt"
    assert found(before, after, jobs=2) == BACKBONE_PARAMS
    # the frozen weights moved by at most ~0.02: a tolerance above that hides the change
    assert found(before, after, atol=0.1) == set()


def test_bn_drift_message_gives_the_size(runs: Path) -> None:
    report = diff_paths(runs / "bn_drift-before.pt", runs / "bn_drift-after.pt")
    finding = next(f for f in report.findings if f.location == "backbone.1")
    assert "num_batches_tracked advanced by 3" in finding.message
    assert "max |change|" in finding.message
    assert set(finding.paths) == {"backbone.1.running_mean", "backbone.1.running_var",
                                  "backbone.1.num_batches_tracked"}


def test_module_summary_folds_blocks(runs: Path) -> None:
    report = diff_paths(runs / "freeze_after_optimizer-before.pt",
                        runs / "freeze_after_optimizer-after.pt")
    rows = {row.module: row for row in report.modules}
    assert rows["backbone.*"].instances == 4
    assert (rows["backbone.*"].changed, rows["backbone.*"].unchanged) == (8, 6)
    assert rows["head"].changed == 2 and rows["adapter.base"].unchanged == 2


def _to_safetensors(src: Path, dst: Path, trainable: bool = True) -> None:
    from safetensors.torch import save_file

    state = torch.load(src, weights_only=True)["model"]
    metadata = None
    if trainable:
        flags = {k: bool(v.requires_grad) for k, v in state.items()
                 if isinstance(v, torch.nn.Parameter)}
        metadata = {"paraminspect.trainable": json.dumps(flags)}
    save_file({k: v.detach().contiguous() for k, v in state.items()}, dst, metadata=metadata)


@pytest.mark.parametrize("variant", ["clean", "freeze_after_optimizer", "dead_lora"])
def test_safetensors_and_mixed_formats(runs: Path, tmp_path: Path, variant: str) -> None:
    before_st, after_st = tmp_path / "before.safetensors", tmp_path / "after.safetensors"
    _to_safetensors(runs / f"{variant}-before.pt", before_st)
    _to_safetensors(runs / f"{variant}-after.pt", after_st)
    assert found(before_st, after_st) == EXPECTED[variant]
    # a safetensors release against the training checkpoint it came from
    assert found(before_st, runs / f"{variant}-after.pt") == EXPECTED[variant]


def _shard(src: Path, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir()
    state = {k: v.detach().contiguous()
             for k, v in torch.load(src, weights_only=True)["model"].items()}
    keys = list(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, folder / name)
    index = {"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


POLICY = Settings(policies=(Policy(frozen=("backbone", "adapter.base"),
                                   trainable=("head", "adapter.lora_*")),))


@pytest.mark.parametrize("variant", ["clean", "freeze_after_optimizer", "dead_lora"])
def test_sharded_safetensors_with_policy(runs: Path, tmp_path: Path, variant: str) -> None:
    _shard(runs / f"{variant}-before.pt", tmp_path / "before")
    _shard(runs / f"{variant}-after.pt", tmp_path / "after")
    # the shards store no trainability: silent without a policy, the policy decides with one
    assert found(tmp_path / "before", tmp_path / "after") == set()
    assert found(tmp_path / "before", tmp_path / "after", POLICY) == EXPECTED[variant]


@pytest.mark.parametrize(("case", "expected"), [
    ("keras_clean", set()),
    ("keras_frozen_after_compile", {("PI501", "backbone.dense"), ("PI501", "backbone.bn"),
                                    ("PI502", "backbone.bn")}),
])
def test_keras(case: str, expected: set[tuple[str, str]]) -> None:
    assert found(DIFF / f"{case}-before.keras", DIFF / f"{case}-after.keras") == expected


@pytest.mark.parametrize(("case", "expected"), [
    ("onnx_clean", set()), ("onnx_freeze_after_optimizer", BACKBONE_PARAMS),
])
def test_onnx_with_policy(case: str, expected: set[tuple[str, str]]) -> None:
    before, after = DIFF / f"{case}-before.onnx", DIFF / f"{case}-after.onnx"
    assert found(before, after) == set()  # ONNX stores no trainability
    assert found(before, after, POLICY) == expected


def test_strided_tensor_is_read_in_logical_order(tmp_path: Path) -> None:
    from paraminspect.diff.tensors import open_tensors
    from paraminspect.loaders import load

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    path = tmp_path / "t.pt"
    torch.save({"w": base.t(), "b": base[1]}, path)  # a transposed view and an offset view
    data = open_tensors(path, load(path))
    assert np.array_equal(data["w"].read(0, 12), base.t().contiguous().numpy().reshape(-1))
    assert np.array_equal(data["w"].read(5, 4), base.t().contiguous().numpy().reshape(-1)[5:9])
    assert np.array_equal(data["b"].read(0, 4), base[1].numpy())


def test_bfloat16_against_float32(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weight = torch.randn(64, 64)
    save_file({"layer.weight": weight.to(torch.bfloat16)}, tmp_path / "a.safetensors")
    save_file({"layer.weight": weight}, tmp_path / "b.safetensors")
    report = diff_paths(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert report.counts_by_status == {"changed": 1}  # rounding to bf16 is a change...
    report = diff_paths(tmp_path / "a.safetensors", tmp_path / "b.safetensors", rtol=1e-2)
    assert report.counts_by_status == {"unchanged": 1}  # ...within bf16 precision it is not


def test_cli_json_and_exit_codes(runs: Path, tmp_path: Path) -> None:
    before, after = runs / "freeze_after_optimizer-before.pt", runs / "freeze_after_optimizer-after.pt"
    result = run_cli("diff", str(before), str(after), "--format", "json", "--jobs", "2")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert {(f["code"], f["location"]) for f in data["files"][0]["findings"]} == BACKBONE_PARAMS
    assert data["diff"]["tensors"] == {"changed": 12, "unchanged": 8}
    text = run_cli("diff", str(runs / "clean-before.pt"), str(runs / "clean-after.pt"))
    assert text.returncode == 0 and "tensors per module" in text.stdout
    missing = run_cli("diff", str(before), str(tmp_path / "nope.pt"))
    assert missing.returncode == 2 and "Traceback" not in missing.stdout + missing.stderr
    assert "PI001" in missing.stdout
