"""Shared test helpers: where fixtures live and how to ask for findings by (code, location)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import Settings, check

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
TORCH_FIXTURES = FIXTURES / "torch"


def findings(path: str | Path, settings: Settings | None = None) -> set[tuple[str, str, str]]:
    """Every finding of one file as (code, location, severity), one per location: a finding
    that stands for many layers (one mistake repeated) contributes each of its locations."""
    report = check(Path(path), settings)
    assert len(report.files) == 1, report.files
    return {
        (f.code, location, f.severity.value)
        for f in report.files[0].findings
        for location in f.all_locations
    }


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a subprocess, the way users and CI do."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "paraminspect", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=120,
    )


def run_json(*args: str, cwd: Path | None = None) -> tuple[int, dict]:
    proc = run_cli("check", "--format", "json", *args, cwd=cwd)
    return proc.returncode, json.loads(proc.stdout)


def has_module(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


needs_torch = pytest.mark.skipif(not has_module("torch"), reason="torch is not installed")
