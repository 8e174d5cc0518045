"""The pre-commit hook, end to end with the real pre-commit package: a temporary git repository
commits a buggy checkpoint (fails, findings printed), a clean one and a Git LFS pointer (pass)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "fixtures" / "torch"
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 104857600\n"
)
#: pip failing for want of a network, not for a broken package
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "No matching distribution",
           "Could not find a version", "Network is unreachable")

yaml = pytest.importorskip("yaml")
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def hook() -> dict:
    (entry,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return entry


def test_hook_definition() -> None:
    entry = hook()
    assert entry["id"] == "paraminspect" and entry["language"] == "python"
    assert "--quiet" in entry["entry"] and entry.get("pass_filenames", True)
    files = re.compile(entry["files"])
    for name in ("a.pt", "b/c.PTH", "m.bin", "x.ckpt", "e.pt2", "m.onnx", "k.keras", "w.h5",
                 "w.safetensors"):
        assert files.search(name), name
    for name in ("train.py", "a.pt.txt", "README.md", "notes.ptx"):
        assert not files.search(name), name


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env,
                          check=check, timeout=600)


def pre_commit_repo(tmp_path: Path, config: str) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".pre-commit-config.yaml").write_text(config)
    # the project's own config, so no pyproject.toml above the temporary folder is read
    (repo / "pyproject.toml").write_text("[tool.paraminspect]\n")
    git(repo, "add", ".pre-commit-config.yaml", "pyproject.toml")
    git(repo, "commit", "-q", "-m", "config", "--no-verify")
    env_bin = Path(sys.executable).parent
    subprocess.run([str(env_bin / "pre-commit"), "install"], cwd=repo, check=True,
                   capture_output=True, env={**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "home")})
    return repo, {"PRE_COMMIT_HOME": str(tmp_path / "home")}


def commit(repo: Path, name: str, source: Path | str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    target = repo / name
    if isinstance(source, Path):
        shutil.copy(source, target)
    else:
        target.write_text(source)
    git(repo, "add", name)
    full = {**os.environ, **env, "NO_COLOR": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["git", "commit", "-q", "-m", f"add {name}"], cwd=repo,
                          capture_output=True, text=True, env=full, timeout=900)


def _exercise(repo: Path, env: dict[str, str]) -> None:
    bad = commit(repo, "finetune.pt", TORCH / "cnn_whole_bn_train_frozen.pt", env)
    output = bad.stdout + bad.stderr
    if bad.returncode != 0 and any(marker in output for marker in OFFLINE):
        pytest.skip("pre-commit could not install the hook's environment offline: " + output[-300:])
    assert bad.returncode != 0, output
    assert "finetune.pt:backbone.bn: PI201 [warning] bn-train-in-frozen" in output
    git(repo, "reset", "-q", "HEAD", "finetune.pt")
    (repo / "finetune.pt").unlink()

    good = commit(repo, "clean.pt", TORCH / "cnn_ckpt_clean.pt", env)
    assert good.returncode == 0, good.stdout + good.stderr
    pointer = commit(repo, "big.safetensors", LFS_POINTER, env)
    assert pointer.returncode == 0, pointer.stdout + pointer.stderr
    # a data file that merely shares a model's extension gets a notice, not a failure
    data = commit(repo, "table.bin", "epoch,loss\n1,0.5\n", env)
    assert data.returncode == 0, data.stdout + data.stderr
    assert "big.safetensors" in git(repo, "ls-files").stdout


def test_hook_from_this_checkout_with_the_real_pre_commit(tmp_path: Path) -> None:
    """repo: <this checkout>, rev: HEAD. pre-commit clones that rev and `pip install .`s it into
    its own venv (typer, rich, h5py; no torch), so HEAD must hold an installable package."""
    if git(ROOT, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        pytest.skip("the checkout is not a git repository")
    sha = git(ROOT, "rev-parse", "HEAD").stdout.strip()
    for needed in (".pre-commit-hooks.yaml", "pyproject.toml", "README.md", "rules"):
        if git(ROOT, "cat-file", "-e", f"{sha}:{needed}", check=False).returncode != 0:
            pytest.skip(f"HEAD {sha[:10]} lacks {needed}: pre-commit installs the committed "
                        "rev, which is not installable until it is committed")
    config = (f"repos:\n  - repo: {ROOT}\n    rev: {sha}\n    hooks:\n"
              "      - id: paraminspect\n")
    repo, env = pre_commit_repo(tmp_path, config)
    started = time.monotonic()
    _exercise(repo, env)
    print(f"pre-commit e2e (install + 3 commits): {time.monotonic() - started:.1f}s")


def test_hook_as_a_local_system_hook(tmp_path: Path) -> None:
    """The same hook definition as `repo: local`, `language: system` with this environment's
    paraminspect: no install, works offline, and checks the working tree's code."""
    entry = hook()
    exe = Path(sys.executable).parent / "paraminspect"
    if not exe.exists():
        pytest.skip(f"no paraminspect command beside {sys.executable}")
    command = entry["entry"].replace("paraminspect", str(exe), 1)
    config = (
        "repos:\n  - repo: local\n    hooks:\n      - id: paraminspect\n"
        f"        name: {entry['name']}\n        entry: {command}\n        language: system\n"
        f"        files: '{entry['files']}'\n        types: [file]\n"
        f"        require_serial: {str(entry.get('require_serial', False)).lower()}\n"
    )
    repo, env = pre_commit_repo(tmp_path, config)
    _exercise(repo, env)
