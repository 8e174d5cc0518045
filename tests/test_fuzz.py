"""Property-based fuzzing of the readers of untrusted bytes: the restricted unpickler and the zip,
protobuf (ONNX), HDF5 (Keras) and FlatBuffer (onnxruntime-training) readers.

Properties: no uncaught exception (every failure is a one-line LoadError / PI001 with a specific
message, never "internal error"), and bounded memory. The whole file runs within about 60 s:
each test has a fixed example count and no per-example deadline.
"""

from __future__ import annotations

import pickle
import resource
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from paraminspect.engine import check_file  # noqa: E402
from paraminspect.errors import LoadError  # noqa: E402
from paraminspect.loaders.pickle.unpickler import GlobalLog, unpickle  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
#: extra peak RSS the whole fuzz run may add to the process
MAX_GROWTH_MB = 256
FAST = settings(
    max_examples=150, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _rss_mb() -> float:
    """Current resident memory (not the peak, which other tests in the process set)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


@pytest.fixture(autouse=True)
def memory_stays_bounded() -> object:
    before = _rss_mb()
    yield
    assert _rss_mb() - before < MAX_GROWTH_MB


@st.composite
def mutants(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes overwritten, a slice duplicated or the tail cut."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()) and data:
        a = draw(st.integers(0, len(data) - 1))
        b = draw(st.integers(a, min(len(data), a + 64)))
        data[a:a] = data[a:b]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _assert_clean_failure(path: Path) -> None:
    report = check_file(path)
    texts = [report.error or ""] + [f.message for f in report.findings]
    assert not any("internal error" in t for t in texts), texts
    assert all("\n" not in t for t in texts)


PICKLE_SEEDS = [
    pickle.dumps({"w": [1.5, 2, "x", b"raw"], "t": (1, 2), "s": {1, 2}}, protocol=p)
    for p in range(6)
]


@FAST
@given(data=st.one_of(st.binary(max_size=256), *[mutants(s) for s in PICKLE_SEEDS]))
def test_unpickler_raises_only_load_errors(data: bytes) -> None:
    try:
        unpickle(data, GlobalLog())
    except LoadError as exc:
        assert "\n" not in str(exc)


def _fuzz_file(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    _assert_clean_failure(path)


@SLOW
@given(data=mutants((FIXTURES / "torch" / "cnn_sd_clean.pt").read_bytes()))
def test_torch_zip_mutants(data: bytes, tmp_path: Path) -> None:
    _fuzz_file(tmp_path, "m.pt", data)


@SLOW
@given(data=mutants((FIXTURES / "torch" / "cnn_ckpt_frozen_after_optim_legacy.pt").read_bytes()))
def test_torch_legacy_mutants(data: bytes, tmp_path: Path) -> None:
    _fuzz_file(tmp_path, "m.pt", data)


@SLOW
@given(data=mutants((FIXTURES / "onnx" / "cnn_dynamo_eval.onnx").read_bytes()))
def test_onnx_protobuf_mutants(data: bytes, tmp_path: Path) -> None:
    _fuzz_file(tmp_path, "m.onnx", data)


@SLOW
@given(data=mutants((FIXTURES / "keras" / "fn_clean.h5").read_bytes()))
def test_keras_hdf5_mutants(data: bytes, tmp_path: Path) -> None:
    _fuzz_file(tmp_path, "m.h5", data)


@SLOW
@given(data=mutants((FIXTURES / "ort_training" / "clean" / "checkpoint").read_bytes()))
def test_ort_flatbuffer_mutants(data: bytes, tmp_path: Path) -> None:
    _fuzz_file(tmp_path, "checkpoint", data)


_DIMS = st.one_of(st.integers(0, 4), st.sampled_from([-1, True, 1.0, "2", None]))


@st.composite
def safetensors_headers(draw: st.DrawFn) -> tuple[dict[str, object], int]:
    """Headers close to valid: contiguous F32/U8/F4 tensors, then a few fields spoiled."""
    header: dict[str, object] = {}
    position = 0
    for index in range(draw(st.integers(1, 6))):
        dtype = draw(st.sampled_from(["F32", "U8", "F4", "BF16"]))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        count = 1
        for dim in shape:
            count *= dim
        size = count * {"F32": 4, "U8": 1, "F4": 0.5, "BF16": 2}[dtype]
        size = int(size) if size == int(size) else size
        entry: dict[str, object] = {"dtype": dtype, "shape": shape,
                                    "data_offsets": [position, position + int(size)]}
        position += int(size)
        spoil = draw(st.integers(0, 9))
        if spoil == 1:
            entry["dtype"] = draw(st.sampled_from(["F33", 7, None]))
        elif spoil == 2:
            entry["shape"] = [*shape, draw(_DIMS)]
        elif spoil == 3:
            entry["data_offsets"] = draw(st.sampled_from(
                [[0], [1, 0], [-1, 4], [0, True], "0,4", [position, position + 1]]))
        elif spoil == 4:
            del entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))]
        elif spoil == 5:
            entry = draw(st.sampled_from([[], "x", 3]))  # type: ignore[assignment]
        header[f"t{index}"] = entry
    return header, position + draw(st.sampled_from([0, 0, 0, 1, -1]))


@FAST
@given(safetensors_headers())
def test_safetensors_fast_validation_agrees_with_the_exact_one(
    case: tuple[dict[str, object], int],
) -> None:
    """The column-wise validator accepts exactly what the per-tensor one accepts, with the same
    result; where it declines (None), the per-tensor one names the error."""
    from paraminspect.loaders.safetensors import _validate_columns, _validate_exact

    header, data_size = case
    try:
        exact = _validate_exact(header, data_size)
    except LoadError:
        exact = None
    assert _validate_columns(header, data_size) == exact
