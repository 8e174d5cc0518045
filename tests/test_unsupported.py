"""Unsupported formats are named (PI004), companions are passed over, folder scans choose files by
their bytes, and a folder scan that finds no model exits 3."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from paraminspect import check
from paraminspect.engine import iter_model_files

from .conftest import FIXTURES, TORCH_FIXTURES, run_cli

UNSUPPORTED = FIXTURES / "unsupported"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("model.tflite", "TFLite"),
        ("model.gguf", "GGUF"),
        ("model.mlmodel", "Core ML model"),
        ("Net.mlpackage", "Core ML package"),
        ("ir.xml", "OpenVINO IR"),
        ("model.plan", "TensorRT engine"),
        ("yolo.engine", "TensorRT engine"),
        ("model_z.joblib", "joblib (zlib-compressed)"),
    ],
)
def test_unsupported_formats_are_named_not_unreadable(name: str, label: str) -> None:
    (file,) = check(UNSUPPORTED / name).files
    assert file.error is None and file.skipped is None
    assert file.format == f"unsupported:{label}"
    assert [(f.code, f.location, f.severity.value) for f in file.findings] == [("PI004", "", "info")]
    assert file.findings[0].message == f"unsupported format: {label} (not checked)"


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("tokenizer.json", "tokenizer"),
        ("vocab.txt", "tokenizer vocabulary"),
        ("ir.bin", "OpenVINO IR weights"),
        ("Net.mlpackage/Data/com.apple.CoreML/weights/weight.bin", "Core ML package weights"),
    ],
)
def test_companions_named_on_the_command_line_are_skipped(name: str, what: str) -> None:
    (file,) = check(UNSUPPORTED / name).files
    assert file.findings == [] and file.error is None
    assert file.skipped == f"companion file ({what}), not a model"


def test_supported_files_still_sniff_as_before() -> None:
    # Core ML protobufs start like ONNX (0x08); the suffix decides only for .mlmodel
    (onnx,) = check(FIXTURES / "onnx" / "cnn_dynamo_eval.onnx").files
    assert onnx.format == "onnx" and onnx.findings == []
    (garbage,) = check(FIXTURES / "onnx" / "garbage.onnx").files
    assert [(f.code, f.location) for f in garbage.findings] == [("PI001", "")]


def _mixed_folder(root: Path) -> Path:
    folder = root / "release"
    folder.mkdir()
    shutil.copy(TORCH_FIXTURES / "cnn_ts_script_bn_train.pt", folder / "model.jit")
    shutil.copytree(UNSUPPORTED / "Net.mlpackage", folder / "Net.mlpackage")
    for name in ("model.tflite", "tokenizer.json", "vocab.txt", "ir.xml", "ir.bin"):
        shutil.copy(UNSUPPORTED / name, folder / name)
    (folder / "README.md").write_text("# release\n")
    (folder / "labels.csv").write_text("id,label\n0,cat\n")
    return folder


def test_folder_scan_chooses_files_by_bytes(tmp_path: Path) -> None:
    folder = _mixed_folder(tmp_path)
    names = sorted(p.relative_to(folder).as_posix() for p in iter_model_files([folder]))
    assert names == ["Net.mlpackage", "ir.xml", "model.jit", "model.tflite"]

    report = check(folder)
    found = {(Path(f.path).name, c.code, c.location) for f in report.files for c in f.findings}
    # the TorchScript file named .jit is read (its BatchNorm was scripted in train mode)
    assert ("model.jit", "PI201", "backbone.bn") in found
    assert {(n, c) for n, c, _ in found if c == "PI004"} == {
        ("Net.mlpackage", "PI004"), ("ir.xml", "PI004"), ("model.tflite", "PI004"),
    }
    assert not any(c == "PI001" for _, c, _ in found)


def test_truncated_checkpoint_in_a_folder_is_still_unreadable(tmp_path: Path) -> None:
    shutil.copy(TORCH_FIXTURES / "truncated.pt", tmp_path / "truncated.pt")
    shutil.copy(TORCH_FIXTURES / "not_a_model.pt", tmp_path / "not_a_model.pt")  # plain text
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01 random")  # model suffix, unknown bytes
    (tmp_path / "big").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 9\n")
    report = check(tmp_path)
    assert sorted((Path(f.path).name, c.code) for f in report.files for c in f.findings) == [
        ("not_a_model.pt", "PI001"), ("notes.bin", "PI001"), ("truncated.pt", "PI001"),
    ]
    assert [Path(f.path).name for f in report.files if f.skipped] == ["big"]


def test_folder_without_a_model_exits_3_and_says_so(tmp_path: Path) -> None:
    for name in ("model.tflite", "tokenizer.json", "vocab.txt"):
        shutil.copy(UNSUPPORTED / name, tmp_path / name)
    (tmp_path / "README.md").write_text("# converted\n")
    proc = run_cli("check", "-q", str(tmp_path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"paraminspect: no model found in {tmp_path}" in proc.stderr.splitlines()
    assert proc.stdout.startswith(f"{tmp_path / 'model.tflite'}:(model): PI004 [info]")
    # --fail-on info makes the notice itself fail the run
    assert run_cli("check", "-q", "--fail-on", "info", str(tmp_path)).returncode == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("check", str(empty))
    assert proc.returncode == 3 and f"no model found in {empty}" in proc.stderr


def test_folder_with_a_model_exits_0(tmp_path: Path) -> None:
    for name in ("model.tflite", "tokenizer.json"):
        shutil.copy(UNSUPPORTED / name, tmp_path / name)
    shutil.copy(TORCH_FIXTURES / "cnn_ckpt_clean.pt", tmp_path / "weights.ckpt-final")
    proc = run_cli("check", "-q", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no model found" not in proc.stderr


@pytest.mark.parametrize(
    ("name", "scanned_as"),
    [("model.npy", "numpy"), ("arrays.npz", "zip"), ("model.joblib", "pickle")],
)
def test_pickle_bearing_data_files_are_scanned_not_only_named(name: str, scanned_as: str) -> None:
    """NumPy arrays and joblib pickles can carry pickled objects: they go through the pickle
    security scan (PI002 when hostile, see test_pickle_security) instead of stopping at a PI004
    notice; these benign ones are scanned data with nothing to report."""
    (file,) = check(UNSUPPORTED / name).files
    assert (file.format, file.content, file.error, file.skipped) == (scanned_as, "data", None, None)
    assert file.findings == []
