"""Checking many files on several cores: a process pool whose results come back in input order.

Each file is independent (one file's reader never touches another's), so files are spread over
worker processes in chunks and the reports are yielded in the order the files were given: the
output of ``--jobs N`` is the output of a serial run, byte for byte. Small runs stay serial,
because starting workers costs more than checking a handful of files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Settings
    from .findings import FileReport

#: fewer files than this per worker are checked serially (a worker costs ~20-50 ms to start)
MIN_FILES_PER_JOB = 8
#: most files handed to a worker at once (a round trip costs the parent ~0.4 ms)
CHUNK = 64
#: fewest files handed over at once, at the end of a run
MIN_CHUNK = 4
#: a first file up to this size is checked before the pool starts (see :func:`_warm_up`)
WARM_UP_BYTES = 1 << 20

#: the run's settings in a worker process, set once when it starts
_worker_settings: Settings | None = None


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def effective_jobs(files: int, jobs: int | None) -> int:
    """How many processes a run of ``files`` files really uses (1: serial, no pool)."""
    wanted = default_jobs() if jobs is None or jobs <= 0 else jobs
    return max(1, min(wanted, files // MIN_FILES_PER_JOB))


def iter_check_files(
    files: Sequence[str | Path], settings: Settings, jobs: int | None = None
) -> Iterator[FileReport]:
    """Reports for ``files``, in order; in ``jobs`` processes when the run is large enough."""
    from .engine import check_file

    workers = effective_jobs(len(files), jobs)
    if workers == 1:
        for path in files:
            yield check_file(path, settings)
        return
    # imported only for a pool: multiprocessing costs a sixth of a one-file run's start-up
    from concurrent.futures import ProcessPoolExecutor

    done = 0
    if _warm_up(files[0]):
        yield check_file(files[0], settings)
        done = 1
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_start_worker,
        initargs=(settings,),
    ) as pool:
        for reports in pool.map(_check_chunk, _chunks(files[done:], workers)):
            yield from reports


def _chunks(files: Sequence[str | Path], workers: int) -> list[Sequence[str | Path]]:
    """Consecutive runs of ``files``, shrinking towards the end: large ones first (few round
    trips), small ones last (the workers finish together rather than one waiting on another)."""
    chunks = []
    start = 0
    while start < len(files):
        size = max(MIN_CHUNK, min(CHUNK, (len(files) - start) // (workers * 2)))
        chunks.append(files[start : start + size])
        start += size
    return chunks


def _warm_up(path: str | Path) -> bool:
    """Whether to check ``path`` before the pool forks: the readers and rules that checking it
    imports (~15 ms for a torch file) are then inherited by every worker instead of imported by
    each. Only a small local file, so that a large one does not hold the pool back."""
    try:
        return os.stat(path).st_size <= WARM_UP_BYTES and os.path.isfile(path)
    except (OSError, ValueError):  # a URL, or a file the check itself will report
        return False


def _start_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings


def _check_chunk(paths: Sequence[str | Path]) -> list[FileReport]:
    from .engine import check_file

    return [check_file(path, _worker_settings) for path in paths]


#: frameworks that start threads of their own: a process that imported one must not fork
THREADED = ("torch", "tensorflow", "jax", "onnxruntime")


def _context() -> Any:
    # fork starts a worker in milliseconds and inherits the imported modules; the check path is
    # single-threaded, so forking it is safe. A process that imported a framework (a training
    # script calling paraminspect, a test run) holds its threads and locks, which a forked child
    # inherits stopped: it may crash or hang there (TensorFlow does), so it starts workers from a
    # fork server instead. Elsewhere the platform default.
    import multiprocessing

    if sys.platform == "linux":
        if any(name in sys.modules for name in THREADED):
            return multiprocessing.get_context("forkserver")
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()
