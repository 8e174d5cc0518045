#!/usr/bin/env python
"""Benchmark: paraminspect's ONNX loader against ``onnx.load`` on a ~1 GB inline-weights model.

Usage:  python bench/bench_onnx.py [--layers 256] [--dim 1024] [--repeat 3] [--keep DIR]

Builds (in a temporary folder, deleted afterwards unless --keep) a chain of ``layers`` MatMul
nodes, each with a ``dim x dim`` float32 initializer stored inline (256 x 1024 x 1024 x 4 B =
1 GiB), then measures each loader in its own fresh subprocess: wall time of the load call and
of the whole process, and the process's peak RSS (``ru_maxrss``). Prints a Markdown table.
Needs onnx and numpy (only for building and for the ``onnx.load`` row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
which, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if which == "paraminspect":
    import paraminspect
    t1 = time.perf_counter()
    graph = paraminspect.load(path)
    detail = f"{len(graph.tensors)} tensors, {graph.metadata['tensor_bytes_skipped']} B skipped"
elif which == "onnx":
    import onnx
    t1 = time.perf_counter()
    model = onnx.load(path)
    detail = f"{len(model.graph.initializer)} initializers"
else:
    import onnx
    t1 = time.perf_counter()
    detail = "import only"
t2 = time.perf_counter()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "rss_mb": rss_mb, "detail": detail}))
"""


def build(path: Path, layers: int, dim: int) -> None:
    import numpy as np
    from onnx import TensorProto, helper

    nodes, inits = [], []
    rng = np.random.default_rng(0)
    block = rng.standard_normal((dim, dim), dtype=np.float32).tobytes()
    for i in range(layers):
        name = f"layers.{i}.weight"
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, [dim, dim], block, raw=True))
        nodes.append(helper.make_node("MatMul", [f"h{i}", name], [f"h{i + 1}"],
                                      name=f"/layers.{i}/MatMul"))
    graph = helper.make_graph(
        nodes, "bench",
        [helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info(f"h{layers}", TensorProto.FLOAT, [1, dim])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="paraminspect-bench",
                              opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


def measure(which: str, path: Path, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, which, str(path)],
                              capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout)
        result["process"] = time.perf_counter() - t0
        runs.append(result)
    best = min(runs, key=lambda r: r["load"])
    best["rss_mb"] = max(r["rss_mb"] for r in runs)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=256)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build into (and keep) this folder")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.layers, args.dim)
        return

    with tempfile.TemporaryDirectory(prefix="pi-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "inline.onnx"
        if not path.exists():
            # Build in a child: Linux keeps ru_maxrss across fork and exec, so a parent that
            # once held the 2-3 GB model would inflate every measurement after it.
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--build", str(path), "--layers",
                            str(args.layers), "--dim", str(args.dim)], check=True)
            print(f"built {path.name}: {path.stat().st_size:,} B in {time.perf_counter() - t0:.1f} s")
        rows = {w: measure(w, path, args.repeat) for w in ("import-onnx", "onnx", "paraminspect")}

    print(f"\nbest of {args.repeat} runs; peak RSS = max over runs (ru_maxrss of the child)\n")
    print("| loader | load call | whole process | peak RSS | detail |")
    print("|---|---:|---:|---:|---|")
    for which, label in (("import-onnx", "`import onnx` (baseline)"), ("onnx", "`onnx.load`"),
                         ("paraminspect", "`paraminspect.load`")):
        r = rows[which]
        print(f"| {label} | {r['load'] * 1000:,.0f} ms | {r['process']:.2f} s | "
              f"{r['rss_mb']:,.0f} MB | {r['detail']} |")
    a, b = rows["onnx"], rows["paraminspect"]
    print(f"\nonnx.load / paraminspect.load: {a['load'] / b['load']:,.0f}x wall (load call), "
          f"{a['rss_mb'] / b['rss_mb']:,.1f}x peak RSS")


if __name__ == "__main__":
    main()
