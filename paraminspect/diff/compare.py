"""Compare two stored tensors window by window: exact on bits, or within atol/rtol on values.

Each tensor is cut into windows of at most :data:`~.tensors.WINDOW_BYTES`; a window of BEFORE
and the same elements of AFTER are compared (as 64-bit words when the bytes allow it, which runs
at memory speed) and only a window that differs is decoded to floats for the size of the change.
Windows are independent, so ``jobs`` threads share them across tensors; numpy releases the GIL
while it compares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .tensors import WINDOW_BYTES, TensorData

#: dtypes whose bits decode to numbers for tolerances and the size of a change
_FLOATS = {"float64", "float32", "float16", "bfloat16"}
_NUMBERS = _FLOATS | {"int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64",
                      "bool"}


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0
    rtol: float = 0.0

    @property
    def exact(self) -> bool:
        return self.atol == 0.0 and self.rtol == 0.0


@dataclass
class Delta:
    """How one tensor differs between BEFORE and AFTER."""

    name: str
    status: str  #: "unchanged", "changed", "reshaped", "missing-before", "missing-after", "unread"
    numel: int = 0
    changed: int = 0  #: elements beyond the tolerance (all elements whose bits differ if exact)
    identical: bool = False  #: every bit equal
    max_abs: float | None = None  #: largest |after - before|
    sq_diff: float = 0.0
    sq_before: float = 0.0
    detail: str = ""

    @property
    def relative(self) -> float | None:
        """||after - before|| / ||before|| (L2), None when BEFORE is all zero."""
        if self.sq_before <= 0.0:
            return None
        return math.sqrt(self.sq_diff / self.sq_before)


@dataclass
class _Part:
    changed: int = 0
    identical: bool = True
    max_abs: float | None = None
    sq_diff: float = 0.0
    sq_before: float = 0.0


def _decode(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    if dtype in ("float64", "float32"):
        return values
    return values.astype(np.float32 if dtype in _FLOATS else np.float64)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype:
        return False
    a8, b8 = a.view(np.uint8), b.view(np.uint8)
    if a8.size % 8 == 0:
        return bool(np.array_equal(a8.view(np.uint64), b8.view(np.uint64)))
    return bool(np.array_equal(a8, b8))


def _sum_squares(values: np.ndarray) -> float:
    total = float(np.dot(values, values))
    if math.isfinite(total) or values.dtype.kind != "f":
        return total
    finite = values[np.isfinite(values)]  # rare: NaN or inf stored in the tensor
    return float(np.dot(finite, finite))


def _compare_window(a: TensorData, b: TensorData, first: int, count: int,
                    tol: Tolerance) -> _Part:
    va, vb = a.read(first, count), b.read(first, count)
    same_raw = a.dtype == b.dtype
    # a trained tensor usually differs in its first elements: then skip the full bit compare
    head = min(count, 512)
    if same_raw and _same_bits(va[:head], vb[:head]) and _same_bits(va, vb):
        return _Part()
    part = _Part(identical=False)
    if a.dtype not in _NUMBERS or b.dtype not in _NUMBERS:
        # no numeric meaning (float8, complex): count differing bit patterns only
        part.changed = int(np.count_nonzero(va != vb)) if same_raw else count
        return part
    fa, fb = _decode(va, a.dtype), _decode(vb, b.dtype)
    if fa.dtype != fb.dtype or fa.dtype.kind in "iub":
        fa, fb = fa.astype(np.float64), fb.astype(np.float64)
    diff = np.subtract(fb, fa)
    np.abs(diff, out=diff)
    with np.errstate(invalid="ignore"):
        if tol.exact:
            # elements whose value differs (a NaN anywhere counts as a change)
            part.changed = int(np.count_nonzero(diff))
        else:
            limit = np.abs(fb) * tol.rtol
            limit += tol.atol
            part.changed = int(np.count_nonzero(~(diff <= limit)))
        if part.changed == 0:
            part.identical = tol.exact  # equal values in another dtype, or within tolerance
            return part
        largest = float(diff.max())
        if not math.isfinite(largest):
            finite = diff[np.isfinite(diff)]
            largest = float(finite.max()) if finite.size else float("nan")
        part.max_abs = largest
        part.sq_diff = _sum_squares(diff)
        part.sq_before = _sum_squares(fa)
    return part


def _windows(a: TensorData, b: TensorData) -> Iterator[tuple[int, int]]:
    step = max(1, WINDOW_BYTES // max(a.itemsize, b.itemsize))
    numel = a.numel
    if numel == 0:
        return
    for first in range(0, numel, step):
        yield first, min(step, numel - first)


def compare_all(
    pairs: Iterable[tuple[TensorData, TensorData]], tol: Tolerance, jobs: int = 1
) -> dict[str, Delta]:
    """Compare same-shaped pairs; returns a :class:`Delta` per name (status unchanged/changed)."""
    pairs = list(pairs)
    deltas = {a.name: Delta(a.name, "unchanged", numel=a.numel, identical=True) for a, _ in pairs}

    def merge(name: str, part: _Part) -> None:
        delta = deltas[name]
        delta.changed += part.changed
        delta.identical = delta.identical and part.identical
        if part.max_abs is not None:
            delta.max_abs = part.max_abs if delta.max_abs is None else max(delta.max_abs,
                                                                            part.max_abs)
        delta.sq_diff += part.sq_diff
        delta.sq_before += part.sq_before

    def before_norm(a: TensorData, first: int, count: int) -> float:
        if a.dtype not in _NUMBERS:
            return 0.0
        values = _decode(a.read(first, count), a.dtype)
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
        return float(np.dot(values, values))

    tasks = [(a, b, first, count) for a, b in pairs for first, count in _windows(a, b)]
    #: windows whose bits matched, per tensor: their share of BEFORE's norm is added only for
    #: tensors that changed elsewhere (most tensors fit one window, so this is rarely needed)
    same: dict[str, list[tuple[int, int]]] = {}
    if jobs <= 1:
        results: Iterable[_Part] = (_compare_window(a, b, f, c, tol) for a, b, f, c in tasks)
        pool = None
    else:
        pool = ThreadPoolExecutor(max_workers=jobs)
        results = pool.map(lambda t: _compare_window(t[0], t[1], t[2], t[3], tol), tasks)
    try:
        for (a, _, first, count), part in zip(tasks, results):
            merge(a.name, part)
            if part.max_abs is None:
                same.setdefault(a.name, []).append((first, count))
    finally:
        if pool is not None:
            pool.shutdown()
    by_name = {a.name: a for a, _ in pairs}
    for name, delta in deltas.items():
        if delta.changed:
            delta.status = "changed"
            a = by_name[name]
            delta.sq_before += sum(before_norm(a, f, c) for f, c in same.get(name, ()))
    return deltas

