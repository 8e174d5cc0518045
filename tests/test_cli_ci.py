"""The CI-facing CLI: formats, several outputs at once, exit codes, statistics, step summary,
per-file ignores, Git LFS pointers, progress, and the GitHub Action's run script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "fixtures" / "torch"
BN_TRAIN = str(TORCH / "cnn_whole_bn_train_frozen.pt")
DEEP = str(TORCH / "deep_whole_bn_train_frozen.pt")
CLEAN = str(TORCH / "cnn_ckpt_clean.pt")
TRUNCATED = str(TORCH / "truncated.pt")
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 104857600\n"
)


def cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE")}
    full_env = {**inherited, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from paraminspect.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, env=full_env,
    )


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif", "markdown", "junit"])
def test_every_format_runs_and_keeps_exit_codes(fmt: str) -> None:
    proc = cli("check", "--output-format", fmt, BN_TRAIN, "--fail-on", "warning")
    assert proc.returncode == 1, proc.stderr
    assert "PI201" in proc.stdout
    assert cli("check", "-f", fmt, CLEAN).returncode == 0


def test_several_reports_at_once(tmp_path: Path) -> None:
    sarif, junit, data = tmp_path / "r.sarif", tmp_path / "r.xml", tmp_path / "r.json"
    proc = cli("check", BN_TRAIN, "--format", "github",
               "--output", f"sarif={sarif}", "-o", f"junit={junit}", "-o", f"json={data}")
    assert proc.returncode == 1
    assert proc.stdout.startswith("::warning file=")
    assert json.loads(sarif.read_text())["runs"][0]["results"][0]["ruleId"] == "PI201"
    assert ET.parse(junit).getroot().tag == "testsuites"
    assert json.loads(data.read_text())["counts"]["warning"] == 1
    # the old form still works: --output FILE takes the --format report
    plain = tmp_path / "plain.json"
    assert cli("check", BN_TRAIN, "-f", "json", "-o", str(plain)).stdout == ""
    assert json.loads(plain.read_text())["files"][0]["findings"][0]["code"] == "PI201"
    assert cli("check", BN_TRAIN, "-o", "a.txt", "-o", "b.txt").returncode == 2


def test_exit_zero_turns_findings_into_success_but_not_errors() -> None:
    assert cli("check", BN_TRAIN, "--fail-on", "warning", "--exit-zero").returncode == 0
    assert cli("check", TRUNCATED, "--exit-zero").returncode == 2
    assert cli("check", "--no-such-flag", BN_TRAIN, "--exit-zero").returncode == 2


def test_statistics_counts_per_rule() -> None:
    proc = cli("check", BN_TRAIN, DEEP, TRUNCATED, "--statistics")
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows == [["7", "PI201", "bn-train-in-frozen", "warning", "(2", "findings)"],
                    ["1", "PI001", "unreadable-file", "error"]]
    assert proc.returncode == 2


def test_statistics_keep_severities_of_one_rule_apart() -> None:
    bitfit, mixed = str(TORCH / "cnn_whole_bitfit.pt"), str(TORCH / "cnn_whole_mixed.pt")
    rows = [ln.split() for ln in cli("check", bitfit, mixed, "--statistics").stdout.splitlines()]
    assert ["1", "PI103", "mixed-layer-freeze", "info"] in rows
    assert ["1", "PI103", "mixed-layer-freeze", "warning"] in rows


def test_github_step_summary_is_appended_when_asked(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    cli("check", BN_TRAIN, "--github-summary", "-q", env=env)
    cli("check", DEEP, "--github-summary", "-q", env=env)
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and text.count("## paraminspect") == 2
    cli("check", CLEAN, "-q", env=env)  # not asked: untouched
    assert summary.read_text().count("## paraminspect") == 2
    no_env = cli("check", CLEAN, "--github-summary")
    assert no_env.returncode == 0 and "GITHUB_STEP_SUMMARY is not set" in no_env.stderr


def test_per_file_ignores_from_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paraminspect]\nfail-on = "warning"\n'
        '[tool.paraminspect.per-file-ignores]\n"legacy/*.pt" = ["PI201"]\n'
    )
    for folder in ("legacy", "new"):
        (tmp_path / folder).mkdir()
        shutil.copy(BN_TRAIN, tmp_path / folder / "m.pt")
    assert cli("check", "legacy", cwd=tmp_path).returncode == 0
    proc = cli("check", ".", "-q", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout.splitlines() == [
        line for line in proc.stdout.splitlines() if line.startswith("new/m.pt:backbone.bn: PI201")
    ]


def test_git_lfs_pointers_are_skipped_with_an_info_line_not_unreadable(tmp_path: Path) -> None:
    pointer = tmp_path / "model.safetensors"
    pointer.write_text(LFS_POINTER)
    quiet = cli("check", "-q", "--fail-on", "info", str(pointer))
    assert quiet.returncode == 0
    assert quiet.stdout.strip() == f"{pointer}: skipped: Git LFS pointer file, not the model itself (run `git lfs pull`)"
    data = json.loads(cli("check", "-f", "json", str(tmp_path)).stdout)
    (file,) = data["files"]
    assert file["skipped"] and file["error"] is None and file["findings"] == []
    assert "unreadable" not in cli("check", str(pointer)).stdout


def test_no_progress_bar_or_color_when_not_interactive() -> None:
    proc = cli("check", BN_TRAIN, DEEP, CLEAN, env={"TERM": "xterm-256color"})
    assert "checking" not in proc.stderr and "\x1b[" not in proc.stdout + proc.stderr


def test_policy_violations_fail_ci_with_pi401(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paraminspect]\n[[tool.paraminspect.policy]]\nfiles = "checkpoints/finetune-*.pt"\n'
        'frozen = ["backbone.*"]\ntrainable = ["head.*", "*.lora_*"]\neval = ["backbone.*"]\n'
        "min-trainable-params = 10\n"
    )
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(BN_TRAIN, tmp_path / "checkpoints" / "finetune-1.pt")
    shutil.copy(TORCH / "cnn_whole_clean.pt", tmp_path / "checkpoints" / "finetune-2.pt")
    proc = cli("check", "checkpoints", "-f", "json", cwd=tmp_path)
    assert proc.returncode == 1
    by_file = {f["path"]: {(x["code"], x["location"]) for x in f["findings"]}
               for f in json.loads(proc.stdout)["files"]}
    assert ("PI401", "backbone") in by_file["checkpoints/finetune-1.pt"]
    assert by_file["checkpoints/finetune-2.pt"] == set()


# -- the GitHub Action ------------------------------------------------------------------------
def test_action_is_a_composite_with_the_documented_inputs() -> None:
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert {"paths", "fail-on", "format"} <= set(action["inputs"])
    assert all(step.get("shell") == "bash" for step in action["runs"]["steps"] if "run" in step)
    assert not any("upload" in str(step.get("uses", "")) for step in action["runs"]["steps"])


@pytest.mark.parametrize(("extra", "expected"), [("", 1), ("--exit-zero", 0)])
def test_action_run_script_annotates_summarizes_and_writes_sarif(
    tmp_path: Path, extra: str, expected: int
) -> None:
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    script = next(s["run"] for s in action["runs"]["steps"] if s.get("id") == "check")
    wrapper = tmp_path / "paraminspect"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'from paraminspect.cli import main; main()' \"$@\"\n")
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PARAMINSPECT_BIN": str(wrapper),
        "INPUT_PATHS": f"{BN_TRAIN}\n{CLEAN}",
        "INPUT_FAIL_ON": "warning",
        "INPUT_FORMAT": "github",
        "INPUT_SARIF": str(tmp_path / "out.sarif"),
        "INPUT_SUMMARY": "true",
        "INPUT_ARGS": extra,
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    # the shell GitHub uses for `shell: bash`
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == expected, proc.stderr
    assert "::warning file=fixtures/torch/cnn_whole_bn_train_frozen.pt" in proc.stdout
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    assert outputs["exit-code"] == str(expected)
    assert json.loads(Path(outputs["sarif-file"]).read_text())["version"] == "2.1.0"
    assert "## paraminspect" in (tmp_path / "summary.md").read_text()
