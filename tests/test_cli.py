"""The CLI as users and CI run it: exit codes, JSON contract, selection, config, folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, TORCH_FIXTURES, run_cli, run_json

BN_TRAIN = str(TORCH_FIXTURES / "cnn_whole_bn_train_frozen.pt")
CLEAN = str(TORCH_FIXTURES / "cnn_whole_clean.pt")
EVIL = str(TORCH_FIXTURES / "evil.pt")
TRUNCATED = str(TORCH_FIXTURES / "truncated.pt")


def test_json_contract_keys() -> None:
    code, data = run_json(BN_TRAIN)
    assert code == 1  # a freezing mistake (a warning) fails under the default --fail-on warning
    assert set(data) >= {"paraminspect", "files", "counts"}
    (file,) = data["files"]
    assert set(file) >= {"path", "format", "error", "summary", "findings"}
    assert set(file["summary"]) >= {
        "layers",
        "params",
        "trainable_params",
        "frozen_params",
        "buffers",
        "trainability",
    }
    assert file["summary"]["trainability"] == "stored"
    assert file["summary"]["params"] == 130 and file["summary"]["frozen_params"] == 120
    (finding,) = file["findings"]
    assert set(finding) >= {"code", "name", "severity", "location", "message", "fix"}
    assert (finding["code"], finding["location"]) == ("PI201", "backbone.bn")
    assert data["counts"] == {"error": 0, "warning": 1, "info": 0}


def test_unknown_trainability_counts_are_null() -> None:
    _, data = run_json(str(TORCH_FIXTURES / "cnn_sd_clean.pt"))
    summary = data["files"][0]["summary"]
    assert summary["trainability"] == "unknown"
    assert summary["trainable_params"] is None and summary["frozen_params"] is None


def test_exit_codes() -> None:
    assert run_cli("check", CLEAN).returncode == 0
    assert run_cli("check", BN_TRAIN).returncode == 1  # the default fails on warnings
    assert run_cli("check", BN_TRAIN, "--fail-on", "error").returncode == 0
    assert run_cli("check", BN_TRAIN, "--fail-on", "warning").returncode == 1
    assert run_cli("check", EVIL).returncode == 1
    assert run_cli("check", EVIL, "--fail-on", "never").returncode == 0
    assert run_cli("check", "--bogus-flag", CLEAN).returncode == 2


def test_unreadable_file_exits_2_after_checking_the_others() -> None:
    code, data = run_json(TRUNCATED, BN_TRAIN)
    assert code == 2
    truncated, bn = data["files"]
    assert truncated["error"] and truncated["findings"][0]["code"] == "PI001"
    assert [f["code"] for f in bn["findings"]] == ["PI201"]


def test_bad_input_prints_one_line_and_no_traceback() -> None:
    proc = run_cli("check", TRUNCATED, str(TORCH_FIXTURES / "not_a_model.pt"), "/nonexistent.pt")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "PI001" in line]
    assert len(lines) == 3


def test_select_and_ignore() -> None:
    _, data = run_json(EVIL, "--select", "PI002")
    assert {f["code"] for f in data["files"][0]["findings"]} == {"PI002"}
    _, data = run_json(EVIL, "--ignore", "PI0")
    assert data["files"][0]["findings"] == []
    _, data = run_json(BN_TRAIN, "--select", "bn-train-in-frozen")
    assert [f["code"] for f in data["files"][0]["findings"]] == ["PI201"]


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = run_cli("check", BN_TRAIN, "--format", "json", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads(out.read_text())["files"][0]["findings"][0]["code"] == "PI201"


def test_text_report_names_findings_and_summary() -> None:
    proc = run_cli("check", BN_TRAIN, "--no-color")
    assert "backbone.bn: PI201 [warning] bn-train-in-frozen" in proc.stdout
    assert "1 file checked" in proc.stdout
    assert "\x1b[" not in proc.stdout


def test_one_finding_per_mistake_text_folds_json_keeps_every_location() -> None:
    deep = str(TORCH_FIXTURES / "deep_whole_bn_train_frozen.pt")
    proc = run_cli("check", deep, "--no-color")
    lines = [ln for ln in proc.stdout.splitlines() if "PI201" in ln]
    assert len(lines) == 1, proc.stdout  # one finding, not six
    assert lines[0].startswith(f"{deep}:backbone.blocks.0.bn (+5 more): PI201 [warning]")
    assert "    at backbone.blocks.0–5.bn ×6" in proc.stdout
    code, data = run_json(deep)
    (finding,) = data["files"][0]["findings"]
    assert (finding["code"], finding["location"], finding["count"]) == (
        "PI201", "backbone.blocks.0.bn", 6)
    assert finding["locations"] == [f"backbone.blocks.{i}.bn" for i in range(6)]
    assert data["counts"]["warning"] == 1


def test_messages_leave_the_location_and_evidence_to_their_own_fields() -> None:
    _, data = run_json(BN_TRAIN)
    (finding,) = data["files"][0]["findings"]
    assert finding["location"] == "backbone.bn"
    assert "backbone.bn" not in finding["message"] and "stored" not in finding["message"]
    assert finding["message"].startswith("BatchNorm2d is in train mode inside a frozen layer.")
    assert finding["evidence"].startswith("mode: module.training stored")
    plain = run_cli("check", BN_TRAIN, "--no-color").stdout
    shown = run_cli("check", BN_TRAIN, "--no-color", "--show-evidence").stdout
    assert "evidence:" not in plain and "    evidence: mode: module.training" in shown


def test_folder_recursion_and_default_current_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(BN_TRAIN, tmp_path / "sub" / "model.pth")
    shutil.copy(CLEAN, tmp_path / "clean.ckpt")
    (tmp_path / "notes.txt").write_text("not a model")
    _, data = run_json(cwd=tmp_path)
    assert sorted(Path(f["path"]).name for f in data["files"]) == ["clean.ckpt", "model.pth"]


def test_format_is_sniffed_not_taken_from_the_name(tmp_path: Path) -> None:
    disguised = tmp_path / "weights.onnx"
    shutil.copy(BN_TRAIN, disguised)
    _, data = run_json(str(disguised))
    assert data["files"][0]["format"] == "pytorch"
    assert data["files"][0]["findings"][0]["code"] == "PI201"


def test_config_from_pyproject(tmp_path: Path) -> None:
    shutil.copy(BN_TRAIN, tmp_path / "m.pt")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paraminspect]\nfail-on = "warning"\n'
        '[tool.paraminspect.per-file-ignores]\n"ignored-*.pt" = ["PI201"]\n'
    )
    assert run_cli("check", "m.pt", cwd=tmp_path).returncode == 1
    assert run_cli("check", "m.pt", "--fail-on", "error", cwd=tmp_path).returncode == 0
    shutil.copy(BN_TRAIN, tmp_path / "ignored-1.pt")
    _, data = run_json("ignored-1.pt", cwd=tmp_path)
    assert data["files"][0]["findings"] == []


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.paraminspect]\nfail-on = "sometimes"\n')
    proc = run_cli("check", CLEAN, cwd=tmp_path)
    assert proc.returncode == 2
    assert "fail-on" in proc.stderr and "Traceback" not in proc.stderr


def test_show_prints_the_freeze_map() -> None:
    proc = run_cli("show", BN_TRAIN, "--no-color")
    assert proc.returncode == 0
    out = proc.stdout
    assert "backbone" in out and "frozen" in out and "train" in out
    assert "trainable params: 10 || all params: 130" in out


def test_rules_and_rule() -> None:
    listing = run_cli("rules").stdout
    for code in ("PI001", "PI002", "PI101", "PI102", "PI103", "PI201", "PI301", "PI302"):
        assert code in listing
    doc = run_cli("rule", "PI201")
    assert doc.returncode == 0 and "## Why it matters" in doc.stdout
    assert run_cli("rule", "PI999").returncode == 2


HEAVY = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "h5py", "safetensors")

PROBE = """
import sys, runpy, atexit, json
def report():
    heavy = sorted(m for m in {heavy!r} if m in sys.modules)
    sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
atexit.register(report)
sys.argv = ["paraminspect", *{args!r}]
runpy.run_module("paraminspect", run_name="__main__")
"""


def _imported(*args: str) -> list[str]:
    code = PROBE.format(heavy=HEAVY, args=list(args))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY="))
    return json.loads(line[len("HEAVY=") :])


def test_cli_imports_no_framework() -> None:
    assert (
        _imported(
            "check",
            BN_TRAIN,
            str(TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim.pt"),
            str(TORCH_FIXTURES / "lightning_like.ckpt"),
        )
        == []
    )
    assert _imported("rules") == []


def test_show_of_a_pickle_without_layers_draws_the_bare_model() -> None:
    """A pickle holding no layer (the unsafe-pickle fixture) still has a root to draw."""
    proc = run_cli("show", EVIL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("(model)")


def test_a_bug_of_ours_is_one_line_not_a_traceback(monkeypatch, capsys) -> None:  # noqa: ANN001
    from paraminspect import cli
    from paraminspect.reporters import freeze_map

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(freeze_map, "render", broken)
    monkeypatch.delenv("PARAMINSPECT_DEBUG", raising=False)
    assert cli.run(["show", CLEAN]) == 2
    err = capsys.readouterr().err
    assert err == ("paraminspect: internal error: RuntimeError: boom "
                   "(PARAMINSPECT_DEBUG=1 shows where)\n")
