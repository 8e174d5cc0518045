"""check_many: any executor (a real Dask LocalCluster here), JSON Lines out, resumable."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from paraminspect import check_many

from .conftest import TORCH_FIXTURES

SAMPLES = ["cnn_ckpt_frozen_after_optim.pt", "cnn_ckpt_clean.pt", "truncated.pt", "cnn_sd_clean.pt"]


def _registry(tmp_path: Path, copies: int = 3) -> Path:
    root = tmp_path / "registry"
    for i in range(copies):
        folder = root / f"model{i}"
        folder.mkdir(parents=True)
        for name in SAMPLES:
            shutil.copy(TORCH_FIXTURES / name, folder / name)
    return root


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_dask_local_cluster_writes_jsonl_and_resumes(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    root = _registry(tmp_path)
    out = tmp_path / "audit.jsonl"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        first = check_many([root], executor=client, out=out)
        assert (first.checked, first.skipped, first.errors) == (12, 0, 3)
        records = {Path(r["path"]).relative_to(root).as_posix(): r for r in _records(out)}
        assert len(records) == 12
        hit = records["model1/cnn_ckpt_frozen_after_optim.pt"]
        assert {
            (f["code"], location)
            for f in hit["findings"]  # type: ignore[union-attr]
            for location in f["locations"]
        } == {("PI301", "backbone.conv"), ("PI301", "backbone.bn"), ("PI201", "backbone.bn")}
        assert records["model2/truncated.pt"]["error"]

        # interrupted audit: the last record was cut mid-line; one file changed since
        text = out.read_text().splitlines(keepends=True)
        out.write_text("".join(text[:-1]) + text[-1][: len(text[-1]) // 2])
        changed = root / "model0" / "cnn_sd_clean.pt"
        os.utime(changed, ns=(1, 1))
        second = check_many([root], executor=client.get_executor(), out=out)
    cut = Path(json.loads(text[-1])["path"])
    expected_again = {cut, changed}
    assert second.checked == len(expected_again) and second.skipped == 12 - len(expected_again)
    latest = [Path(r["path"]) for r in _records_tolerant(out)][-len(expected_again):]
    assert set(latest) == expected_again


def _records_tolerant(out: Path) -> list[dict[str, object]]:
    rows = []
    for line in out.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def test_serial_without_executor(tmp_path: Path) -> None:
    root = _registry(tmp_path, copies=1)
    out = tmp_path / "audit.jsonl"
    summary = check_many([root], out=out)
    assert (summary.checked, summary.findings, summary.errors) == (4, 3, 1)
    again = check_many([root], out=out)
    assert (again.checked, again.skipped) == (0, 4)
