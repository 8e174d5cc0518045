#!/usr/bin/env python
"""Benchmark: the cold start of ``paraminspect check small.pt`` as a whole process.

Usage:  python bench/bench_cold_start.py [--repeat 15] [--file fixtures/torch/cnn_whole_clean.pt]

Runs, in turn and in fresh processes, ``python -m paraminspect check FILE`` and two yardsticks:
a bare interpreter (``python -c pass``) and an interpreter importing what a check of a small
PyTorch file cannot avoid (``zipfile`` and ``json``). Times are medians of wall seconds (a clock
read around each process) and CPU seconds (``resource.getrusage(RUSAGE_CHILDREN)``), so a busy
machine shows in the spread, not in the ratio. The package is byte-compiled first, as an
installed wheel is. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import compileall
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(command: list[str], repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--file", type=Path, default=ROOT / "fixtures/torch/cnn_whole_clean.pt")
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "paraminspect", quiet=1)
    python = sys.executable
    rows = [
        ("python -c pass", [python, "-c", "pass"]),
        ("python -c 'import zipfile, json'", [python, "-c", "import zipfile, json"]),
        (f"paraminspect check {args.file.name}",
         [python, "-m", "paraminspect", "check", str(args.file)]),
    ]
    results = [(label, *measure(command, args.repeat)) for label, command in rows]
    yardstick = results[1]
    print(f"| command ({args.repeat} runs, medians) | wall s | cpu s | cpu / zipfile+json |")
    print("|---|---:|---:|---:|")
    for label, wall, cpu in results:
        ratio = cpu / yardstick[2] if yardstick[2] else float("nan")
        print(f"| `{label}` | {wall:.3f} | {cpu:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
