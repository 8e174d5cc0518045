#!/usr/bin/env python
"""Benchmark: ``paraminspect check`` as a whole process, against framework loaders and
metadata-only readers, on every scale the issue tracker asks about, in one run.

    python bench/bench_cli.py [--repeat 3] [--work /tmp/paraminspect-bench] [--only torch,adam]

``paraminspect`` runs as users run it: the installed console script, from a folder that holds
no configuration. Every row runs each command ``--repeat`` times in a fresh interpreter (wall
time including start-up and imports) and reports the median and the peak RSS of the process
(``os.wait4``'s ``ru_maxrss``, per child). Files are built in ``--work`` and deleted
afterwards; 1 GB and 10 GB files are written sparse (holes for the weight bytes) where the peer
reads no weights either, and for real where it does (``torch.load`` of a 1 GB file). Needs torch,
safetensors, onnx, numpy, keras (for the ``.keras`` row). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sparse_models import onnx_1gb, safetensors_1gb, torch_zip_1gb  # noqa: E402

PY = sys.executable
#: the console script users run, next to this interpreter (``python -m`` when it is not installed)
SCRIPT = Path(PY).with_name("paraminspect")
CHECK = [*([str(SCRIPT)] if SCRIPT.exists() else [PY, "-m", "paraminspect"]),
         "check", "-q", "--exit-zero"]

PEERS = {
    "torch.load(mmap, weights_only)": (
        "import sys, torch; torch.load(sys.argv[1], mmap=True, weights_only=True)"
    ),
    "torch.load(weights_only)": "import sys, torch; torch.load(sys.argv[1], weights_only=True)",
    "safe_open keys + shapes": (
        "import sys\nfrom safetensors import safe_open\n"
        "with safe_open(sys.argv[1], 'np') as f:\n"
        "    shapes = [f.get_slice(k).get_shape() for k in f.keys()]"
    ),
    "onnx.load(load_external_data=False)": (
        "import sys, onnx; onnx.load(sys.argv[1], load_external_data=False)"
    ),
    "python -c 'import zipfile, json'": "import zipfile, json",
    "torch.load loop": (
        "import sys, os, torch\n"
        "for n in sorted(os.listdir(sys.argv[1])):\n"
        "    torch.load(os.path.join(sys.argv[1], n), weights_only=True)"
    ),
}


def run(argv: list[str], repeat: int, cwd: Path | None = None) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MB) of ``argv`` run ``repeat`` times in ``cwd``
    (a folder with no ``pyproject.toml`` above it that configures paraminspect)."""
    walls, peaks = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}): {err[-400:]}")
        if proc.stderr:
            proc.stderr.close()
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(walls), statistics.median(peaks)


# -- file builders -------------------------------------------------------------------------------
def torch_state_dict(path: Path, layers: int, rows: int) -> None:
    import torch

    torch.save({f"layers.{i}.weight": torch.zeros(rows, 1024) for i in range(layers)}, path)


def many_torch(path: Path, count: int) -> None:
    import torch

    torch.save({f"layers.{i // 2}.{('weight', 'bias')[i % 2]}": torch.zeros(2)
                for i in range(count)}, path)


def adam_checkpoint(path: Path, params: int) -> None:
    import torch

    tensors = [torch.nn.Parameter(torch.zeros(4)) for _ in range(params)]
    opt = torch.optim.Adam(tensors, lr=1e-3)
    for t in tensors:
        t.grad = torch.ones(4)
    opt.step()
    model = {f"layers.{i}.weight": t.detach() for i, t in enumerate(tensors)}
    torch.save({"model": model, "optimizer": opt.state_dict(), "epoch": 1}, path)


def many_safetensors(path: Path, count: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({f"model.layers.{i // 4}.proj{i % 4}.weight": np.zeros((2, 2), np.float32)
               for i in range(count)}, str(path))


def many_onnx(path: Path, count: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    value = np.zeros(4, np.float32).tobytes()
    inits = [helper.make_tensor(f"layers.{i}.weight", TensorProto.FLOAT, [4], value, raw=True)
             for i in range(count)]
    nodes = [helper.make_node("Mul", [f"h{i}", f"layers.{i}.weight"], [f"h{i + 1}"],
                              name=f"/layers.{i}/Mul") for i in range(count)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("h0", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(f"h{count}", TensorProto.FLOAT, [4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def keras_1gb(path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    inputs = keras.Input((4096,))
    x = inputs
    for _ in range(16):  # 16 x 4096 x 4096 float32 = 1 GiB
        x = keras.layers.Dense(4096, use_bias=False)(x)
    keras.Model(inputs, x).save(path)


def small_folder(path: Path, count: int) -> None:
    import torch

    path.mkdir()
    for i in range(count):
        torch.save(torch.nn.Linear(4, 4).state_dict(), path / f"m{i:04d}.pt")


# -- the table -----------------------------------------------------------------------------------
Row = tuple[str, list[str], str | None, Path | None]


def cases(work: Path) -> list[tuple[str, str, Callable[[], list[Row]]]]:
    def p(name: str) -> Path:
        return work / name

    def torch_rows() -> list[Row]:
        torch_state_dict(p("t10m.pt"), 256, 10)
        torch_state_dict(p("t1g.pt"), 256, 1024)
        torch_zip_1gb(p("t10g.pt"), layers=2560)
        many_torch(p("t100k.pt"), 100_000)
        peer = "torch.load(mmap, weights_only)"
        return [
            ("torch zip 10 MB", [*CHECK, str(p("t10m.pt"))], peer, p("t10m.pt")),
            ("torch zip 1 GB", [*CHECK, str(p("t1g.pt"))], peer, p("t1g.pt")),
            ("torch zip 10 GB (sparse)", [*CHECK, str(p("t10g.pt"))], None, None),
            ("torch state dict, 100,000 tensors", [*CHECK, str(p("t100k.pt"))], peer,
             p("t100k.pt")),
        ]

    def safetensors_rows() -> list[Row]:
        safetensors_1gb(p("s10m.safetensors"), dim=10)
        safetensors_1gb(p("s1g.safetensors"))
        safetensors_1gb(p("s10g.safetensors"), layers=2560)
        many_safetensors(p("s100k.safetensors"), 100_000)
        peer = "safe_open keys + shapes"
        return [(f"safetensors {label}", [*CHECK, str(p(name))], peer, p(name)) for label, name in (
            ("10 MB", "s10m.safetensors"), ("1 GB", "s1g.safetensors"),
            ("10 GB", "s10g.safetensors"), ("100,000 tensors", "s100k.safetensors"))]

    def onnx_rows() -> list[Row]:
        onnx_1gb(p("o10m.onnx"), dim=10)
        onnx_1gb(p("o1g.onnx"))
        onnx_1gb(p("o10g.onnx"), layers=2560)
        many_onnx(p("o100k.onnx"), 100_000)
        peer = "onnx.load(load_external_data=False)"
        return [
            ("ONNX 10 MB", [*CHECK, str(p("o10m.onnx"))], peer, p("o10m.onnx")),
            ("ONNX 1 GB, inline weights", [*CHECK, str(p("o1g.onnx"))], peer, p("o1g.onnx")),
            ("ONNX 10 GB, inline (sparse; onnx refuses > 2 GB)", [*CHECK, str(p("o10g.onnx"))],
             None, None),
            ("ONNX 100,000 initializers", [*CHECK, str(p("o100k.onnx"))], peer, p("o100k.onnx")),
        ]

    def adam_rows() -> list[Row]:
        rows = []
        for n in (2000, 10000):
            adam_checkpoint(p(f"adam{n}.pt"), n)
            rows.append((f"Adam checkpoint, {n:,} param tensors", [*CHECK, str(p(f"adam{n}.pt"))],
                         "torch.load(weights_only)", p(f"adam{n}.pt")))
        return rows

    def keras_rows() -> list[Row]:
        keras_1gb(p("k1g.keras"))
        return [(".keras 1 GB", [*CHECK, str(p("k1g.keras"))], None, None)]

    def folder_rows() -> list[Row]:
        small_folder(p("folder"), 1000)
        peer = "torch.load loop"
        jobs = str(len(os.sched_getaffinity(0)))
        return [
            ("1,000 small torch files, --jobs 1", [*CHECK, "--jobs", "1", str(p("folder"))],
             peer, p("folder")),
            (f"1,000 small torch files, --jobs {jobs}", [*CHECK, "--jobs", jobs, str(p("folder"))],
             peer, p("folder")),
        ]

    def cold_rows() -> list[Row]:
        import torch

        torch.save(torch.nn.Linear(32, 64).state_dict(), p("small.pt"))
        return [("cold start (10 KB torch file)", [*CHECK, str(p("small.pt"))],
                 "python -c 'import zipfile, json'", p("small.pt"))]

    return [
        ("torch", "torch zip", torch_rows), ("safetensors", "safetensors", safetensors_rows),
        ("onnx", "ONNX", onnx_rows), ("adam", "Adam", adam_rows), ("keras", ".keras", keras_rows),
        ("folder", "folder", folder_rows), ("cold", "cold start", cold_rows),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/paraminspect-bench"))
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(
        key for key, _, _ in cases(Path("."))))
    parser.add_argument("--build", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:  # child mode: build one group's files, print its rows
        build = dict((key, fn) for key, _, fn in cases(args.work))[args.build]
        print(json.dumps([[label, argv, peer, str(target) if target else None]
                          for label, argv, peer, target in build()]))
        return
    wanted = {w for w in args.only.split(",") if w}
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    print(f"{len(os.sched_getaffinity(0))} cores, Python {sys.version.split()[0]}, "
          f"median of {args.repeat} whole processes\n")
    print("| case | paraminspect | RSS MB | peer | peer time | RSS MB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for key, _, _build in cases(args.work):
        if wanted and key not in wanted:
            continue
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        try:
            # Files are built in a child: ru_maxrss survives fork + exec on Linux, so a parent
            # that had imported torch would lend every measured process its own peak.
            built = subprocess.run(
                [PY, __file__, "--build", key, "--work", str(args.work)],
                capture_output=True, text=True,
            )
            if built.returncode != 0:
                print(f"| {key}: building the files failed: "
                      f"{built.stderr.strip().splitlines()[-1:]} | | | | | | |", flush=True)
                continue
            for label, argv, peer, target in json.loads(built.stdout.strip().splitlines()[-1]):
                ours, our_rss = run(argv, args.repeat, cwd=args.work)
                if peer is None or target is None:
                    print(f"| {label} | {ours:.2f} s | {our_rss:.0f} | – | – | – | – |", flush=True)
                    continue
                theirs, their_rss = run([PY, "-c", PEERS[peer], str(target)], args.repeat,
                                        cwd=args.work)
                ratio = theirs / ours
                how = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
                print(f"| {label} | {ours:.2f} s | {our_rss:.0f} | `{peer}` | {theirs:.2f} s | "
                      f"{their_rss:.0f} | {how} |", flush=True)
        finally:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
