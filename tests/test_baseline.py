"""Baselines: write, hide, and still fail on what is new. Fingerprints ignore messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from paraminspect.findings import Finding, Severity

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "fixtures" / "torch"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from paraminspect.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )


def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.paraminspect]\nfail-on = "warning"\n')
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(TORCH / "cnn_whole_bn_train_frozen.pt", models / "a.pt")
    shutil.copy(TORCH / "deep_whole_bn_train_frozen.pt", models / "deep.pt")
    return tmp_path


def test_fingerprint_ignores_message_and_fix_not_path_code_or_location() -> None:
    a = Finding("PI201", "bn-train-in-frozen", Severity.WARNING, "backbone.bn", "old words")
    b = Finding("PI201", "bn-train-in-frozen", Severity.ERROR, "backbone.bn", "new words", "fix")
    assert a.fingerprint("m/a.pt") == b.fingerprint("m/a.pt")
    assert a.fingerprint("m/a.pt") != a.fingerprint("m/b.pt")
    c = Finding("PI201", "bn-train-in-frozen", Severity.WARNING, "backbone.bn2", "old words")
    assert a.fingerprint("m/a.pt") != c.fingerprint("m/a.pt")


def test_round_trip_hides_recorded_findings_and_fails_on_new_ones(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cli("check", "models", cwd=root).returncode == 1

    wrote = cli("check", "models", "--write-baseline", "baseline.json", cwd=root)
    assert wrote.returncode == 0, wrote.stderr
    data = json.loads((root / "baseline.json").read_text())
    entries = {(e["path"], e["code"], e["location"]) for e in data["findings"]}
    assert ("models/a.pt", "PI201", "backbone.bn") in entries and len(data["findings"]) == 7
    assert all("message" not in e for e in data["findings"])

    clean = cli("check", "models", "--baseline", "baseline.json", "--format", "json", cwd=root)
    assert clean.returncode == 0, clean.stdout
    assert json.loads(clean.stdout)["counts"] == {"error": 0, "warning": 0, "info": 0}
    assert "7 findings hidden by the baseline" in clean.stderr

    # a new file with a new finding fails, and only the new finding is reported
    shutil.copy(TORCH / "cnn_whole_head_frozen.pt", root / "models" / "b.pt")
    new = cli("check", "models", "--baseline", "baseline.json", "--format", "json", cwd=root)
    assert new.returncode == 1
    files = json.loads(new.stdout)["files"]
    found = {(file["path"], f["code"], f["location"]) for file in files for f in file["findings"]}
    assert found == {("models/b.pt", "PI102", "head")}


def test_baseline_paths_are_relative_to_the_project_root(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cli("check", "models", "--write-baseline", "baseline.json", cwd=root).returncode == 0
    # from a subfolder, naming the files differently, the same findings are recognized
    sub = cli("check", ".", "--baseline", "../baseline.json", cwd=root / "models")
    assert sub.returncode == 0, sub.stdout


def test_each_entry_hides_one_finding(tmp_path: Path) -> None:
    root = project(tmp_path)
    cli("check", "models/a.pt", "--write-baseline", "baseline.json", cwd=root)
    data = json.loads((root / "baseline.json").read_text())
    assert len(data["findings"]) == 1
    (root / "baseline.json").write_text(json.dumps({**data, "findings": []}))
    assert cli("check", "models/a.pt", "--baseline", "baseline.json", cwd=root).returncode == 1


def test_a_baseline_never_hides_an_unreadable_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    shutil.copy(TORCH / "truncated.pt", root / "models" / "bad.pt")
    wrote = cli("check", "models", "--write-baseline", "baseline.json", cwd=root)
    assert wrote.returncode == 2
    assert cli("check", "models", "--baseline", "baseline.json", cwd=root).returncode == 2


def test_a_broken_baseline_is_a_usage_error(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "baseline.json").write_text("{not json")
    proc = cli("check", "models", "--baseline", "baseline.json", cwd=root)
    assert proc.returncode == 2 and "baseline.json" in proc.stderr
    assert "Traceback" not in proc.stderr
    (root / "other.json").write_text('{"files": []}')
    assert cli("check", "models", "--baseline", "other.json", cwd=root).returncode == 2
