"""Benchmark: checking a transformers-Trainer-layout checkpoint folder vs torch.load of its files.

Builds (in --dir, deleted afterwards unless --keep) a ``checkpoint-1/`` folder the way the Trainer
lays it out: a ~1 GB ``model.safetensors`` (256 x Linear(1024, 1024) with bias), a ~2 GB
``optimizer.pt`` holding the real state of one ``torch.optim.AdamW`` step over the Trainer's two
param groups (weights with decay, biases without), ``scheduler.pt``, ``rng_state.pth`` and
``trainer_state.json``. Then it times, each in a fresh process (interpreter start and imports
included):

* ``paraminspect check <folder>``, the CLI as users run it, under ``/usr/bin/time -v``;
* ``torch.load`` of optimizer.pt + ``safetensors.torch.load_file`` of model.safetensors.

It also counts the bytes the checking process reads from files while checking (``rchar`` of
``/proc/self/io`` around ``check_paths``, imports excluded): only headers, pickles and the 4-byte
``step`` counters should be read, never the tensors.

    python bench/bench_runs.py [--dir /tmp/runs-bench] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

TORCH_LOAD = """
import sys, torch
from safetensors.torch import load_file
folder = sys.argv[1]
load_file(folder + "/model.safetensors")
torch.load(folder + "/optimizer.pt")
"""

READ_BYTES = """
import sys, time
from paraminspect.engine import check_paths
def rchar():
    return int(next(l.split()[1] for l in open("/proc/self/io") if l.startswith("rchar")))
before, cpu = rchar(), time.process_time()
report = check_paths([sys.argv[1]])
cpu, after = time.process_time() - cpu, rchar()
print(after - before, f"{cpu:.3f}", [(f.code, f.location) for r in report.files for f in r.findings],
      [r.error for r in report.files])
"""


def make_folder(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    checkpoint = folder / "checkpoint-1"
    checkpoint.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(256)])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              checkpoint / "model.safetensors", metadata={"format": "pt"})
    decay = [p for n, p in model.named_parameters() if "bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    model.zero_grad(set_to_none=True)
    torch.save(opt.state_dict(), checkpoint / "optimizer.pt")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    torch.save(sched.state_dict(), checkpoint / "scheduler.pt")
    import random

    import numpy as np

    torch.save({"python": random.getstate(), "numpy": np.random.get_state(),
                "cpu": torch.random.get_rng_state()}, checkpoint / "rng_state.pth")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1, "max_steps": 1}))
    return checkpoint


def time_v(argv: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit code) of one process under /usr/bin/time -v."""
    proc = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    if wall is None or rss is None:
        raise RuntimeError(proc.stderr[-500:])
    hours, minutes, seconds = wall.groups()
    total = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return total, sum(map(float, cpu)), int(rss.group(1)) / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/runs-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    try:
        checkpoint = args.dir / "checkpoint-1"
        if not (checkpoint / "optimizer.pt").is_file():
            checkpoint = make_folder(args.dir)
        sizes = {f.name: f.stat().st_size for f in checkpoint.iterdir()}
        print("files:", ", ".join(f"{n} {s / 2**20:,.0f} MB" for n, s in sorted(sizes.items())))
        runs = {
            "paraminspect check (CLI)": [sys.executable, "-m", "paraminspect", "check", "-q",
                                         str(checkpoint)],
            "torch.load + safetensors load_file": [sys.executable, "-c", TORCH_LOAD,
                                                   str(checkpoint)],
        }
        print(f"{'reader':<38} {'wall s':>8} {'cpu s':>7} {'peak MB':>9} {'exit':>5}")
        for label, argv in runs.items():
            results = [time_v(argv) for _ in range(args.repeat)]
            wall, cpu, rss = (statistics.median(r[i] for r in results) for i in range(3))
            print(f"{label:<38} {wall:8.3f} {cpu:7.3f} {rss:9.1f} {results[0][3]:>5}")
        out = subprocess.run([sys.executable, "-c", READ_BYTES, str(checkpoint)],
                             capture_output=True, text=True, check=True).stdout.strip()
        read, cpu, rest = out.split(" ", 2)
        print(f"checking alone (imports excluded): {cpu} s CPU, {int(read):,} bytes read of "
              f"{sum(sizes.values()):,} in the folder; findings/errors: {rest}")
    finally:
        if not args.keep and args.dir.exists():
            shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
