"""The report people trust: strict configuration, CI defaults, one finding per mistake, robust
paths, and a CLI that starts fast. Each test names the defect it guards against."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect.config import ConfigError, Settings, load_settings
from paraminspect.engine import check_file, iter_model_files

from .conftest import ROOT, TORCH_FIXTURES, run_cli

BN_TRAIN = TORCH_FIXTURES / "cnn_whole_bn_train_frozen.pt"
DEEP = TORCH_FIXTURES / "deep_whole_bn_train_frozen.pt"
CLEAN = TORCH_FIXTURES / "cnn_whole_clean.pt"
TRUNCATED = TORCH_FIXTURES / "truncated.pt"


# -- strict configuration ------------------------------------------------------------------------
def test_unknown_select_code_is_a_usage_error_not_a_silent_pass() -> None:
    """`--select PI999` used to disable every rule and exit 0."""
    proc = run_cli("check", str(BN_TRAIN), "--select", "PI999")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "--select" in line and "'PI999'" in line and "PI201" in line  # names the choices
    assert run_cli("check", str(CLEAN), "--ignore", "PI9").returncode == 2
    # codes, prefixes, names and ALL all come from the registry
    for ok in ("PI2", "PI201", "bn-train-in-frozen", "ALL", "pi2"):
        assert run_cli("check", str(CLEAN), "--select", ok).returncode == 0, ok


def test_unknown_code_in_the_config_names_file_line_and_choices(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[project]\nname = "x"\n\n[tool.paraminspect]\nignore = ["PI103", "PI7"]\n')
    proc = run_cli("check", str(CLEAN), cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert f"{config}:5:" in line and "'PI7'" in line and "PI001" in line
    config.write_text('[tool.paraminspect]\n[tool.paraminspect.per-file-ignores]\n"*.pt" = ["PI2O1"]\n')
    proc = run_cli("check", str(CLEAN), cwd=tmp_path)
    assert proc.returncode == 2 and f"{config}:3:" in proc.stderr and "PI2O1" in proc.stderr


def test_unknown_key_lists_the_valid_keys(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.paraminspect]\nfail_on = "error"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(start=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{config}:2:") and "'fail_on'" in message
    assert "fail-on" in message and "per-file-ignores" in message


def test_unparsable_pyproject_is_an_error_not_skipped(tmp_path: Path) -> None:
    """A syntax error used to be skipped, and the search walked on to the parent's config."""
    (tmp_path / "pyproject.toml").write_text('[tool.paraminspect]\nfail-on = "never"\n')
    child = tmp_path / "project"
    child.mkdir()
    (child / "pyproject.toml").write_text('[tool.paraminspect]\nselect = ["PI2"\n')
    proc = run_cli("check", str(BN_TRAIN), cwd=child)
    assert proc.returncode == 2, proc.stdout
    (line,) = proc.stderr.splitlines()
    assert f"{child / 'pyproject.toml'}:2: invalid TOML" in line
    # a pyproject.toml that never mentions paraminspect is not read at all
    (child / "pyproject.toml").write_text('[project\nname = "broken but not ours"\n')
    assert run_cli("check", str(BN_TRAIN), cwd=child).returncode == 0  # the parent's "never"


def test_an_unlistable_folder_is_reported_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ok").mkdir()
    shutil.copy(CLEAN, tmp_path / "ok" / "model.pt")
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(BN_TRAIN, locked / "hidden.pt")
    real_scandir, real_listdir = os.scandir, os.listdir

    def deny(path: object = ".") -> object:
        if Path(os.fsdecode(path)) == locked:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    def deny_list(path: object = ".") -> list[str]:
        if Path(os.fsdecode(path)) == locked:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", deny)
    monkeypatch.setattr(os, "listdir", deny_list)
    files = list(iter_model_files([tmp_path]))
    assert locked in files and tmp_path / "ok" / "model.pt" in files
    report = check_file(locked, Settings())
    assert report.error and "cannot list this folder" in report.error
    assert [f.code for f in report.findings] == ["PI001"]


# -- CI defaults ---------------------------------------------------------------------------------
def test_a_freezing_mistake_fails_ci_by_default_and_info_never_does(tmp_path: Path) -> None:
    """PI201 used to exit 0 under the old default --fail-on error."""
    assert run_cli("check", str(BN_TRAIN)).returncode == 1
    bitfit = TORCH_FIXTURES / "cnn_whole_bitfit.pt"  # one PI103 at info severity
    proc = run_cli("check", str(bitfit), "--format", "json")
    assert {f["severity"] for f in json.loads(proc.stdout)["files"][0]["findings"]} == {"info"}
    assert proc.returncode == 0
    (tmp_path / "pyproject.toml").write_text('[tool.paraminspect]\nfail-on = "error"\n')
    assert run_cli("check", str(BN_TRAIN), cwd=tmp_path).returncode == 0  # config still wins


def test_ignore_applies_to_pi001_too() -> None:
    """`--ignore PI001` used to hide the finding but still exit 2."""
    assert run_cli("check", str(TRUNCATED)).returncode == 2
    proc = run_cli("check", str(TRUNCATED), str(CLEAN), "--ignore", "PI001")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{TRUNCATED}: skipped: unreadable" in proc.stdout and "PI001 is ignored" in proc.stdout


def test_data_files_with_a_model_extension_get_a_notice_with_non_models_notice(
    tmp_path: Path,
) -> None:
    """The pre-commit hook used to fail (exit 2) on data files that end in .h5 or .bin."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "features.h5", "w") as handle:
        handle["x"] = [1.0, 2.0, 3.0]
    (tmp_path / "vocab.bin").write_bytes(b"\x00\x01 token table, not a model \xff" * 10)
    shutil.copy(TRUNCATED, tmp_path / "broken.pt")
    data = [str(tmp_path / "features.h5"), str(tmp_path / "vocab.bin")]
    assert run_cli("check", *data).returncode == 2  # named explicitly: still an error by default
    proc = run_cli("check", *data, "--quiet", "--non-models", "notice")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{data[0]}: skipped: HDF5 file that is not a Keras model" in proc.stdout
    assert f"{data[1]}: skipped: not a model file" in proc.stdout
    # a real model that is truncated is not a "non-model": it still fails the hook
    broken = run_cli("check", str(tmp_path / "broken.pt"), "--non-models", "notice")
    assert broken.returncode == 2
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "--non-models notice" in hooks


# -- non-UTF-8 file names ------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_non_utf8_file_names_work_in_every_report_and_the_baseline(tmp_path: Path) -> None:
    """A non-UTF-8 name used to crash SARIF and baseline fingerprints with a traceback."""
    name = os.fsdecode(b"mod\xe8le-\xff.pt")
    target = tmp_path / name
    shutil.copy(BN_TRAIN, target)
    outputs = {fmt: tmp_path / f"report.{fmt}" for fmt in ("sarif", "junit", "json", "markdown")}
    args = [f"{fmt}={path}" for fmt, path in outputs.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "paraminspect", "check", "--no-color", "--format", "github",
         *[item for arg in args for item in ("-o", arg)], name],
        capture_output=True, cwd=tmp_path, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 1
    assert b"PI201" in proc.stdout
    sarif = json.loads(outputs["sarif"].read_text(encoding="utf-8"))
    (result,) = sarif["runs"][0]["results"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "mod%E8le-%FF.pt"
    assert result["partialFingerprints"]
    assert "PI201" in outputs["junit"].read_text(encoding="utf-8")
    data = json.loads(outputs["json"].read_text(encoding="utf-8"))
    assert data["files"][0]["findings"][0]["code"] == "PI201"
    text = subprocess.run([sys.executable, "-m", "paraminspect", "check", name],
                          capture_output=True, cwd=tmp_path, timeout=120)
    # the undecodable bytes are shown escaped, never as raw bytes that could confuse a terminal
    assert b"mod\\xe8le-\\xff.pt:backbone.bn: PI201" in text.stdout
    assert b"Traceback" not in text.stderr
    # baseline: write, then hide; the entry round-trips through JSON
    baseline = tmp_path / "baseline.json"
    write = subprocess.run([sys.executable, "-m", "paraminspect", "check", name,
                            "--write-baseline", str(baseline)],
                           capture_output=True, cwd=tmp_path, timeout=120)
    assert write.returncode == 0, write.stderr
    again = subprocess.run([sys.executable, "-m", "paraminspect", "check", name,
                            "--baseline", str(baseline)],
                           capture_output=True, cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr


# -- grouped findings and baselines --------------------------------------------------------------
def test_a_baseline_accepts_grouped_findings_location_by_location(tmp_path: Path) -> None:
    deep = tmp_path / "deep.pt"
    shutil.copy(DEEP, deep)
    (tmp_path / "pyproject.toml").write_text("[tool.paraminspect]\n")
    baseline = tmp_path / "b.json"
    assert run_cli("check", "deep.pt", "--write-baseline", str(baseline), cwd=tmp_path
                   ).returncode == 0
    entries = json.loads(baseline.read_text())["findings"]
    assert sorted(e["location"] for e in entries) == [f"backbone.blocks.{i}.bn" for i in range(6)]
    assert run_cli("check", "deep.pt", "--baseline", str(baseline), cwd=tmp_path).returncode == 0
    # accept four of the six: the finding stays, naming only the two that are new
    data = json.loads(baseline.read_text())
    data["findings"] = [e for e in data["findings"] if e["location"][-4] not in "45"]
    baseline.write_text(json.dumps(data))
    proc = run_cli("check", "deep.pt", "--baseline", str(baseline), "-f", "json", cwd=tmp_path)
    assert proc.returncode == 1
    (finding,) = json.loads(proc.stdout)["files"][0]["findings"]
    assert finding["locations"] == ["backbone.blocks.4.bn", "backbone.blocks.5.bn"]


# -- the command line itself ---------------------------------------------------------------------
@pytest.mark.parametrize("args", [["-h"], ["check", "-h"], ["show", "-h"], ["rules", "-h"],
                                  ["rule", "-h"], ["--help"]])
def test_dash_h_works_everywhere(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: paraminspect")


def test_unknown_command_and_option_are_usage_errors() -> None:
    proc = run_cli("chek", str(CLEAN))
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "check" in proc.stderr
    assert run_cli("check", "--bogus", str(CLEAN)).returncode == 2
    assert run_cli("--version").stdout.startswith("paraminspect ")


#: what a check of one small torch file must not import: each costs milliseconds of start-up
SLOW_IMPORTS = ("typer", "click", "pydantic", "rich", "tomllib", "hashlib", "torch", "numpy",
                "dataclasses", "typing", "inspect", "ast", "multiprocessing", "concurrent.futures",
                "paraminspect.loaders.runs.trainer", "paraminspect.loaders.runs.accelerate")


def test_the_check_path_imports_only_what_it_needs(tmp_path: Path) -> None:
    """`check small.pt` used to import typer's pydantic adapter, rich, dataclasses (and with them
    inspect and ast) and typing before reading a byte."""
    small = tmp_path / "small.pt"
    shutil.copy(CLEAN, small)
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['paraminspect', 'check', {str(small)!r}]\n"
        "try:\n    runpy.run_module('paraminspect', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print(sorted(m for m in {SLOW_IMPORTS!r} if m in sys.modules), code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[] 0", proc.stdout + proc.stderr


def test_an_onnx_check_imports_neither_dataclasses_nor_typing(tmp_path: Path) -> None:
    """A legacy export: a dynamo export's node metadata are Python literals, read with ast."""
    model = ROOT / "fixtures" / "onnx" / "cnn_legacy_eval.onnx"
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['paraminspect', 'check', {str(model)!r}]\n"
        "try:\n    runpy.run_module('paraminspect', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print(sorted(m for m in ('dataclasses', 'typing', 'inspect', 'ast', 'onnx')"
        " if m in sys.modules), code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[] 0", proc.stdout + proc.stderr
