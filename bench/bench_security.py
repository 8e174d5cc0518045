"""Side by side with the pickle security scanners: picklescan, modelscan, fickling, paraminspect.

Generates the hostile corpus (every payload proven live by a real load in a subprocess) and the
benign set written by real frameworks (torch, numpy, transformers), runs each tool over the same
files and prints, per tool: hostile files detected, missed, and false alarms on the benign set.

    pip install -e ".[bench]"       # picklescan, modelscan, fickling
    python bench/bench_security.py [--workdir /tmp/bench-security] [--markdown]

A tool "detects" a file when it reports it unsafe (paraminspect: a PI002 error; picklescan: a
dangerous global or a scan error; modelscan: any issue; fickling: not likely safe). A tool that
cannot read a file or crashes on it has missed it. Tools run in child processes, one per tool.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import security_corpus as corpus  # noqa: E402

_PICKLESCAN = r"""
import json, sys
from picklescan.scanner import scan_file_path
out = {}
for path in sys.argv[1:]:
    try:
        result = scan_file_path(path)
        out[path] = bool(result.issues_count or result.infected_files)
    except Exception as exc:
        out[path] = None
print(json.dumps(out))
"""

_FICKLING = r"""
import json, sys
import fickling
out = {}
for path in sys.argv[1:]:
    try:
        out[path] = not fickling.is_likely_safe(path)
    except Exception:
        out[path] = None
print(json.dumps(out))
"""

_PARAMINSPECT = r"""
import json, sys
from paraminspect.engine import check_file
out = {}
for path in sys.argv[1:]:
    report = check_file(path)
    out[path] = any(f.code == "PI002" and f.severity.value == "error" for f in report.findings)
print(json.dumps(out))
"""


def _python_tool(script: str, paths: list[Path]) -> dict[str, bool | None]:
    env_path = {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True,
        timeout=1800, env={**os.environ, **env_path},
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {str(p): None for p in paths}


def _modelscan(folder: Path, paths: list[Path]) -> dict[str, bool | None]:
    report = folder.parent / f"modelscan-{folder.name}.json"
    subprocess.run(
        ["modelscan", "-p", str(folder), "-r", "json", "-o", str(report)],
        capture_output=True, text=True, timeout=1800,
    )
    flagged: set[str] = set()
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {str(p): None for p in paths}
    for issue in data.get("issues", []):
        source = str(issue.get("source", ""))
        flagged.add(source.split(":", 1)[0])
    out: dict[str, bool | None] = {}
    for path in paths:
        hit = any(f == str(path) or f.endswith("/" + path.name) or f == path.name for f in flagged)
        out[str(path)] = hit
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-security"))
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    hostile_dir, benign_dir, markers = work / "hostile", work / "benign", work / "markers"
    for folder in (hostile_dir, benign_dir, markers):
        folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = corpus.hostile(markers)
        benign = corpus.benign(benign_dir)
    hostile = []
    for name, (data, _marker) in cases.items():
        (hostile_dir / name).write_bytes(data)
        hostile.append(hostile_dir / name)
    live = {n: hostile_dir / n for n, (_, m) in cases.items() if m is not None}
    corpus.live_check(live, markers)
    not_live = [n for n, (_, m) in cases.items() if m is not None and not m.exists()]
    benign_paths = list(benign.values())

    tools = {
        "picklescan": lambda paths, folder: _python_tool(_PICKLESCAN, paths),
        "modelscan": lambda paths, folder: _modelscan(folder, paths),
        "fickling": lambda paths, folder: _python_tool(_FICKLING, paths),
        "paraminspect": lambda paths, folder: _python_tool(_PARAMINSPECT, paths),
    }
    rows = []
    per_file: dict[str, dict[str, bool | None]] = {}
    for tool, run in tools.items():
        on_hostile = run(hostile, hostile_dir)
        on_benign = run(benign_paths, benign_dir)
        detected = sum(1 for p in hostile if on_hostile.get(str(p)))
        false_alarms = sorted(p.name for p in benign_paths if on_benign.get(str(p)))
        rows.append((tool, detected, len(hostile) - detected, false_alarms))
        per_file[tool] = {Path(k).name: v for k, v in on_hostile.items()}

    print(f"hostile files: {len(hostile)} ({len(live) - len(not_live)} proven live by a real "
          f"load; reference-only gadgets: {len(hostile) - len(live)}); benign files: "
          f"{len(benign_paths)}")
    if args.markdown:
        print("| tool | hostile detected | missed | false alarms (benign) |")
        print("|---|---|---|---|")
        for tool, detected, missed, false_alarms in rows:
            alarms = f"{len(false_alarms)}" + (f" ({', '.join(false_alarms)})" if false_alarms else "")
            print(f"| {tool} | {detected}/{len(hostile)} | {missed} | {alarms} |")
    else:
        for tool, detected, missed, false_alarms in rows:
            print(f"{tool:13s} detected {detected:3d}  missed {missed:3d}  "
                  f"false alarms {len(false_alarms)} {false_alarms or ''}")
    print("\nmissed per tool:")
    for tool, verdicts in per_file.items():
        missed_names = sorted(n for n, v in verdicts.items() if not v)
        print(f"  {tool}: {', '.join(missed_names) or '-'}")


if __name__ == "__main__":
    main()
