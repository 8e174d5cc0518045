"""Benchmark: paraminspect vs torch.load on a large PyTorch checkpoint.

Builds (in a temporary folder, not committed) a state dict of N x 1024x1024 float32 tensors and a
whole-module checkpoint with an optimizer, then times each reader in a fresh process: wall time
including interpreter start and imports, and the process's peak RSS. Prints a table with the
ratio of each torch reader to paraminspect measured in the same run.

    python bench/bench_torch.py [--size-mb 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec and would report the parent's peak.
CHILD = """
import sys
{work}
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""

READERS = {
    "paraminspect check": "from paraminspect.engine import check_file; check_file(sys.argv[1])",
    "torch.load (weights_only)": "import torch; torch.load(sys.argv[1])",
    "torch.load (mmap)": "import torch; torch.load(sys.argv[1], mmap=True)",
    "torch.load (weights_only=False)": "import torch; torch.load(sys.argv[1], weights_only=False)",
}


def make_files(folder: Path, size_mb: int) -> dict[str, Path]:
    import torch

    n = max(1, size_mb // 4)
    sd = {f"layers.{i}.weight": torch.zeros(1024, 1024) for i in range(n)}
    paths = {"state dict": folder / "sd.pt"}
    torch.save(sd, paths["state dict"])
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024, bias=False) for _ in range(n // 2)])
    model[: n // 4].requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    paths["module + optimizer"] = folder / "whole.pt"
    torch.save({"model": model, "optimizer": opt.state_dict()}, paths["module + optimizer"])
    return paths


def measure(work: str, path: Path, repeat: int) -> tuple[float, float] | None:
    walls, rss = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD.format(work=work), str(path)],
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            return None
        rss.append(int(proc.stdout.strip().splitlines()[-1]) / 1024)
    return statistics.median(walls), statistics.median(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.size_mb)
        print(
            f"{'file':<26} {'reader':<34} {'wall s':>8} {'peak MB':>9} {'x wall':>8} {'x RSS':>7}"
        )
        for label, path in files.items():
            size = path.stat().st_size / 2**20
            base = None
            for reader, work in READERS.items():
                result = measure(work, path, args.repeat)
                if result is None:
                    print(f"{label:<26} {reader:<34} {'refused':>8}")
                    continue
                wall, rss = result
                base = base or (wall, rss)
                print(
                    f"{label + f' {size:.0f}MB':<26} {reader:<34} {wall:8.3f} {rss:9.1f} "
                    f"{wall / base[0]:8.1f} {rss / base[1]:7.1f}"
                )


if __name__ == "__main__":
    main()
