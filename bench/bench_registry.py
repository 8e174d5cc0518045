#!/usr/bin/env python
"""Benchmark: a registry audit with ``paraminspect.check_many`` on a local Dask cluster.

    python bench/bench_registry.py FOLDER [--workers 2] [--out audit.jsonl]

Checks every model file under FOLDER on a ``distributed.LocalCluster`` (one process per worker),
writing JSON Lines, then runs the same call again to show the resume (every file skipped).
Prints files, seconds and files per second for both passes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import paraminspect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    out = args.out or Path(tempfile.mkdtemp()) / "audit.jsonl"
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        for label in ("audit", "resume"):
            start = time.perf_counter()
            summary = paraminspect.check_many([args.folder], executor=client, out=out)
            seconds = time.perf_counter() - start
            files = summary.checked + summary.skipped
            print(f"{label}: {summary.checked} checked, {summary.skipped} skipped, "
                  f"{summary.findings} findings, {summary.errors} errors in {seconds:.1f} s "
                  f"({files / seconds:,.0f} files/s)")
    print(f"records: {out}")


if __name__ == "__main__":
    main()
