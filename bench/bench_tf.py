#!/usr/bin/env python
"""Benchmark: checking a SavedModel and a tf.train.Checkpoint with 1 GB of variables.

Usage:  python bench/bench_tf.py [--layers 256] [--dim 1024] [--repeat 3] [--keep DIR]

Builds (in /tmp/tf/tf-bench-*, deleted afterwards unless --keep) a Keras 3 model of ``layers``
bias-free Dense layers of ``dim x dim`` float32 kernels (256 x 1024 x 1024 x 4 B = 1 GiB), fitted
for one step with Adam, then written as ``model.export(dir)`` (a SavedModel) and as
``tf.train.Checkpoint(model=, optimizer=).save()`` (model and Adam slots: 3 GiB). Each
command runs as a whole process, timed from outside (wall time, and user+sys CPU time, which a
busy machine disturbs less), with its peak RSS from ``ru_maxrss`` of a fresh wrapper process:

* ``paraminspect check <SavedModel>`` / ``paraminspect check <checkpoint folder>``;
* ``tf.saved_model.load(dir)`` / ``tf.train.load_checkpoint(prefix)`` plus the variable list.

It also times the protobuf parse of a tf_keras SavedModel (``saved_model.pb``) by
paraminspect's wire reader against the protobuf runtime with TensorFlow's generated message
classes (``SavedModel.ParseFromString``; the import of those classes is not counted).
Needs tensorflow, keras and tf_keras (only to build and for the comparison rows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
       "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss, "rc": proc.returncode,
                  "err": proc.stderr.decode()[-300:]}))
"""

BUILD = r"""
import sys
import numpy as np, keras, tensorflow as tf
out, layers, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((dim,))] + [
    keras.layers.Dense(dim, use_bias=False, name=f"dense_{i}") for i in range(layers)])
model.compile(keras.optimizers.Adam(), "mse")
x = np.zeros((2, dim), np.float32)
model.fit(x, x, epochs=1, batch_size=2, verbose=0)
model.export(f"{out}/savedmodel", verbose=False)
tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(f"{out}/ckpt/ckpt")
import tf_keras
deep = tf_keras.Sequential([tf_keras.Input((8,))] + [
    layer for i in range(40) for layer in (tf_keras.layers.Dense(8, name=f"d{i}"),
                                           tf_keras.layers.BatchNormalization(name=f"bn{i}"))])
deep.compile(tf_keras.optimizers.Adam(), "mse")
deep.fit(np.zeros((4, 8), np.float32), np.zeros((4, 8), np.float32), verbose=0)
deep.save(f"{out}/tfk_deep", save_format="tf")
"""

PARSE = r"""
import mmap, sys, time
from pathlib import Path
which, pb = sys.argv[1], Path(sys.argv[2])
if which == "wire":
    from paraminspect.loaders.tf.saved_model_pb import parse_saved_model
    t0 = time.perf_counter()
    with open(pb, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        meta = parse_saved_model(buf)
        n = len(meta.objects), len(meta.function_spans)
else:
    from tensorflow.core.protobuf import saved_model_pb2
    t0 = time.perf_counter()
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(pb.read_bytes())
    mg = sm.meta_graphs[0]
    n = len(mg.object_graph_def.nodes), len(mg.graph_def.library.function)
print(time.perf_counter() - t0, n)
"""

CHECK = [sys.executable, "-m", "paraminspect", "check", "--no-color", "-q"]
TF_SAVEDMODEL = [sys.executable, "-c",
                 "import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
                 "print(len(m.variables))"]
TF_CHECKPOINT = [sys.executable, "-c",
                 "import sys, tensorflow as tf; r = tf.train.load_checkpoint(sys.argv[1]); "
                 "print(len(r.get_variable_to_shape_map()))"]


def measure(cmd: list[str], repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True,
                              text=True, check=True, env=ENV)
        result = json.loads(proc.stdout)
        if result["rc"] not in (0, 1):
            raise SystemExit(f"{cmd} failed: {result['err']}")
        runs.append(result)
    best = min(runs, key=lambda r: r["wall"])
    best["rss_mb"] = max(r["rss_mb"] for r in runs)
    return best


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=256)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build into (and keep) this folder")
    args = parser.parse_args()
    Path("/tmp/tf").mkdir(exist_ok=True)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tf-bench-", dir="/tmp/tf"))
    try:
        if not (folder / "savedmodel").exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", BUILD, str(folder), str(args.layers),
                            str(args.dim)], check=True, env=ENV, capture_output=True)
            print(f"built in {time.perf_counter() - t0:.0f} s")
        saved, ckpt = folder / "savedmodel", folder / "ckpt"
        print(f"SavedModel: {size(saved) / 2**30:.2f} GiB; checkpoint: {size(ckpt) / 2**30:.2f} GiB")
        rows = [
            ("`paraminspect check` SavedModel", measure([*CHECK, str(saved)], args.repeat)),
            ("`tf.saved_model.load`", measure([*TF_SAVEDMODEL, str(saved)], args.repeat)),
            ("`paraminspect check` checkpoint", measure([*CHECK, str(ckpt)], args.repeat)),
            ("`tf.train.load_checkpoint`", measure([*TF_CHECKPOINT, str(ckpt / "ckpt-1")],
                                                   args.repeat)),
        ]
        print(f"\nwhole processes, best of {args.repeat}; peak RSS = max over runs\n")
        print("| command | whole process (wall) | CPU (user+sys) | peak RSS |")
        print("|---|---:|---:|---:|")
        for label, r in rows:
            print(f"| {label} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['rss_mb']:,.0f} MB |")
        pb = folder / "tfk_deep" / "saved_model.pb"
        print(f"\nparse of a tf_keras saved_model.pb ({pb.stat().st_size / 2**20:.1f} MiB), "
              "best of 3:")
        for which in ("wire", "protobuf"):
            times = []
            for _ in range(3):
                out = subprocess.run([sys.executable, "-c", PARSE, which, str(pb)], env=ENV,
                                     capture_output=True, text=True, check=True).stdout.split()
                times.append(float(out[0]))
            label = "paraminspect wire reader" if which == "wire" else "protobuf runtime"
            print(f"  {label}: {min(times) * 1000:.1f} ms ({' '.join(out[1:])} objects, functions)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
