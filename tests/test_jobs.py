"""``--jobs``: the report of a process pool is the serial report, same content, same order."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from paraminspect.config import Settings
from paraminspect.engine import check_paths
from paraminspect.parallel import effective_jobs
from paraminspect.reporters import Options, get_reporter

from .conftest import TORCH_FIXTURES, run_cli

#: positives, clean twins, an unreadable file and a non-model: every kind of report entry
SAMPLES = [
    "cnn_ckpt_frozen_after_optim.pt", "cnn_ckpt_clean.pt", "cnn_whole_bn_train_frozen.pt",
    "cnn_whole_clean.pt", "truncated.pt", "not_a_model.pt", "evil.pt", "cnn_sd_clean.pt",
]


def _folder(tmp_path: Path, copies: int = 5) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for i in range(copies):
        for name in SAMPLES:
            shutil.copy(TORCH_FIXTURES / name, folder / f"{i:02d}_{name}")
    return folder


def _json(report: object) -> str:
    stream = io.StringIO()
    get_reporter("json")(report, stream, Options(color=False))  # type: ignore[arg-type]
    return stream.getvalue()


def test_pool_report_equals_serial_report(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    settings = Settings(root=tmp_path)
    assert effective_jobs(len(SAMPLES) * 5, 2) == 2  # the pool really runs
    serial = check_paths([folder], settings, jobs=1)
    pooled = check_paths([folder], settings, jobs=2)
    assert [f.path for f in pooled.files] == [f.path for f in serial.files]
    assert _json(pooled) == _json(serial)
    # the content is real: findings, an unreadable file, and an unsafe pickle are all there
    by_name = {Path(f.path).name: f for f in pooled.files}
    assert {(f.code, f.location) for f in by_name["03_cnn_ckpt_frozen_after_optim.pt"].findings} >= {
        ("PI301", "backbone.conv")
    }
    assert by_name["00_truncated.pt"].error


def test_small_runs_stay_serial() -> None:
    assert effective_jobs(3, 8) == 1
    assert effective_jobs(1000, 4) == 4
    assert effective_jobs(1000, 1) == 1


def test_cli_jobs_output_is_identical(tmp_path: Path) -> None:
    folder = _folder(tmp_path, copies=3)
    one = run_cli("check", "-f", "json", "--jobs", "1", str(folder), cwd=tmp_path)
    two = run_cli("check", "-f", "json", "--jobs", "2", str(folder), cwd=tmp_path)
    assert one.returncode == two.returncode == 2  # the truncated file is unreadable
    assert one.stdout == two.stdout
    assert '"PI301"' in one.stdout


def test_a_process_holding_a_framework_starts_workers_from_a_fork_server(tmp_path: Path) -> None:
    """A forked child of a process that imported TensorFlow or torch inherits their threads
    stopped and may crash (a pool worker died in libtensorflow this way): such a process gets a
    fork server, and the same report."""
    import subprocess
    import sys

    folder = _folder(tmp_path, copies=3)
    probe = (
        "import sys, torch, io\n"
        "from paraminspect.parallel import _context\n"
        "from paraminspect.config import Settings\n"
        "from paraminspect.engine import check_paths\n"
        "print(_context().get_start_method())\n"
        f"a = check_paths([{str(folder)!r}], Settings(), jobs=1)\n"
        f"b = check_paths([{str(folder)!r}], Settings(), jobs=2)\n"
        "print([f.to_dict() for f in a.files] == [f.to_dict() for f in b.files], len(b.files))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.stdout.split() == ["forkserver", "True", str(len(SAMPLES) * 3)], proc.stderr[-2000:]
