"""Benchmark: ``paraminspect diff`` against plain load-and-compare scripts on a large pair.

Writes a BEFORE/AFTER pair of ``--size-gb`` GB each (float32 tensors of 64 MB: mostly zeros with
a random first MB, so the files are quick to write; ``--changed`` of the tensors differ in every
element, the rest are identical, like a fine-tune with a frozen backbone) as safetensors and, up
to 4 GB, as a torch zip checkpoint, in ``--dir`` (deleted afterwards). The files are read once to
warm the page cache, then every command runs as its own process under ``/usr/bin/time -v``: wall
time including interpreter start and imports, CPU time (user + system), and the process's peak
RSS. On a shared machine the wall time includes waiting for a core; the CPU time does not.

    python bench/bench_diff.py [--size-gb 2] [--jobs 2] [--repeat 1] [--dir /tmp/diff/bench]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TENSOR_MB = 64

SAFETENSORS_BASELINE = """
import sys, torch
from safetensors.torch import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
print(sum(not torch.equal(a[k], b[k]) for k in a))
"""
TORCH_BASELINE = """
import sys, torch
a = torch.load(sys.argv[1], weights_only=True, mmap={mmap})
b = torch.load(sys.argv[2], weights_only=True, mmap={mmap})
print(sum(not torch.equal(a[k], b[k]) for k in a))
"""


def tensors(size_gb: float, changed: float):
    """(name, before, after) float32 arrays, one at a time."""
    numel = TENSOR_MB * 2**20 // 4
    count = max(1, int(size_gb * 1024 // TENSOR_MB))
    rng = np.random.default_rng(0)
    every = max(1, round(1 / changed)) if changed > 0 else 0
    for i in range(count):
        before = np.zeros(numel, np.float32)
        before[: 2**18] = rng.standard_normal(2**18, dtype=np.float32)
        after = before + np.float32(1e-3) if every and i % every == 0 else before
        yield f"layers.{i}.weight", before.reshape(4096, -1), after.reshape(4096, -1)


def write_safetensors(pair: tuple[Path, Path], size_gb: float, changed: float) -> None:
    """Streamed writer: header first, then each tensor's bytes (never the whole file in memory)."""
    numel = TENSOR_MB * 2**20 // 4
    names = [name for name, _, _ in tensors(size_gb, 0)]  # cheap: zeros, no randomness kept
    header = {}
    for i, name in enumerate(names):
        header[name] = {"dtype": "F32", "shape": [4096, numel // 4096],
                        "data_offsets": [i * numel * 4, (i + 1) * numel * 4]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    handles = [open(p, "wb") for p in pair]
    for handle in handles:
        handle.write(struct.pack("<Q", len(raw)) + raw)
    for _, before, after in tensors(size_gb, changed):
        handles[0].write(before.tobytes())
        handles[1].write(after.tobytes())
    for handle in handles:
        handle.close()


def write_torch(pair: tuple[Path, Path], size_gb: float, changed: float) -> None:
    import torch

    states: tuple[dict, dict] = ({}, {})
    for name, before, after in tensors(size_gb, changed):
        states[0][name] = torch.from_numpy(before)
        states[1][name] = torch.from_numpy(after)
    for state, path in zip(states, pair):
        torch.save(state, path)


def timed(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s = user + system, peak RSS MB, exit code) of one process, via
    /usr/bin/time -v."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start

    def field(label: str) -> float:
        match = re.search(rf"{re.escape(label)}: ([\d.]+)", proc.stderr)
        return float(match.group(1)) if match else float("nan")

    cpu = field("User time (seconds)") + field("System time (seconds)")
    return wall, cpu, field("Maximum resident set size (kbytes)") / 1024, proc.returncode


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(64 << 20):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--changed", type=float, default=0.25, help="share of changed tensors")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/diff/bench"))
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    try:
        pairs: dict[str, tuple[Path, Path]] = {}
        st = (args.dir / "before.safetensors", args.dir / "after.safetensors")
        write_safetensors(st, args.size_gb, args.changed)
        pairs["safetensors"] = st
        if args.size_gb <= 4:
            pt = (args.dir / "before.pt", args.dir / "after.pt")
            write_torch(pt, args.size_gb, args.changed)
            pairs["torch zip"] = pt
        rows = []
        for label, (a, b) in pairs.items():
            gb = (a.stat().st_size + b.stat().st_size) / 1e9
            commands = {
                f"paraminspect diff --jobs {args.jobs}": [
                    py, "-m", "paraminspect", "diff", str(a), str(b), "-q", "--jobs",
                    str(args.jobs)],
                "paraminspect diff --jobs 1": [
                    py, "-m", "paraminspect", "diff", str(a), str(b), "-q", "--jobs", "1"],
            }
            if not args.no_baselines:
                if label == "safetensors":
                    commands["safetensors load_file + torch.equal"] = [
                        py, "-c", SAFETENSORS_BASELINE, str(a), str(b)]
                else:
                    commands["torch.load + torch.equal"] = [
                        py, "-c", TORCH_BASELINE.format(mmap=False), str(a), str(b)]
                    commands["torch.load(mmap=True) + torch.equal"] = [
                        py, "-c", TORCH_BASELINE.format(mmap=True), str(a), str(b)]
            for name, cmd in commands.items():
                runs = []
                for _ in range(args.repeat):
                    warm([a, b])
                    runs.append(timed(cmd))
                best = min(runs)
                ok = all(r[3] in (0, 1) for r in runs)
                rows.append((label, gb, name, best[0], best[1], max(r[2] for r in runs), ok))
        print(f"{'pair':<12} {'GB read':>7}  {'command':<40} {'wall s':>7} {'GB/s':>6} "
              f"{'CPU s':>6} {'GB/CPU-s':>8} {'peak RSS MB':>11}")
        for label, gb, name, wall, cpu, rss, ok in rows:
            flag = "" if ok else "  (failed)"
            print(f"{label:<12} {gb:7.2f}  {name:<40} {wall:7.2f} {gb / wall:6.2f} {cpu:6.2f} "
                  f"{gb / cpu:8.2f} {rss:11.0f}{flag}")
        load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() \
            else []
        print(f"load average during the run: {' '.join(load)}")
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
