"""The built wheel ships every rule document, and `paraminspect rule CODE` works from it alone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from paraminspect.rules import all_rules

ROOT = Path(__file__).resolve().parents[1]
#: pip failing for want of a network (it fetches the build backend), not for a broken package
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "No matching distribution",
           "Could not find a version", "Network is unreachable")


def test_the_wheel_ships_the_rule_documents(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 and any(marker in proc.stderr for marker in OFFLINE):
        pytest.skip("pip could not fetch the build backend offline")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("paraminspect-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for rule in all_rules():
            assert f"paraminspect/_rule_docs/{rule.code}-{rule.name}.md" in names, rule.code
        site = tmp_path / "site"
        archive.extractall(site)
    # the unpacked wheel alone (no checkout on the path) prints a document
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    shown = subprocess.run([sys.executable, "-m", "paraminspect", "rule", "PI201"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "## Use instead" in shown.stdout and "## Which formats can show it" in shown.stdout
