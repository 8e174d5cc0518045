"""Regenerate the PyTorch fixtures with the installed torch: the findings must not change.

This is what keeps the committed files honest: they are what fixtures/make_torch.py writes with
real torch code and real optimizer steps, and any torch version must still produce files with the
same findings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, findings, needs_torch
from .test_torch_rules import EXPECTED


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("torch-fixtures")
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_torch.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@needs_torch
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regenerated_fixture_has_the_same_findings(regenerated: Path, name: str) -> None:
    assert findings(regenerated / name) == EXPECTED[name]
