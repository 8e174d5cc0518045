"""Property-based fuzzing of the readers of untrusted bytes: the restricted unpickler and the zip,
protobuf (ONNX), HDF5 (Keras) and FlatBuffer (onnxruntime-training) readers.

Properties: no uncaught exception (every failure is a one-line LoadError / PI001 with a specific
message, never "internal error"), and bounded memory. The whole file runs within about 60 s:
each test has a fixed example count and no per-example deadline.
"""

from __future__ import annotations

import collections
import io
import pickle
import resource
import zipfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from paraminspect.engine import check_file  # noqa: E402
from paraminspect.errors import LoadError  # noqa: E402
from paraminspect.loaders.pickle.stubs import GlobalLog, Stub  # noqa: E402
from paraminspect.loaders.pickle.tensors import StorageRef, TensorRef  # noqa: E402
from paraminspect.loaders.pickle.unpickler import unpickle  # noqa: E402

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


def _canonical(value: object, depth: int = 0) -> object:
    """A comparable picture of an unpickled value: stand-ins by target, records by fields."""
    if depth > 40:
        return "..."
    if isinstance(value, (dict, collections.OrderedDict)):
        return (type(value).__name__,
                [(_canonical(k, depth + 1), _canonical(v, depth + 1)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_canonical(v, depth + 1) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(_canonical(v, depth + 1)) for v in value))
    if isinstance(value, Stub):
        return ("stub", type(value)._pi_target, _canonical(value._pi_args, depth + 1),
                _canonical(value.state_dict, depth + 1))
    if isinstance(value, (TensorRef, StorageRef)):
        return (type(value).__name__,
                [_canonical(getattr(value, f), depth + 1) for f in type(value).__slots__])
    if isinstance(value, type) and issubclass(value, Stub):
        return ("stub class", value._pi_target)
    return (type(value).__name__, repr(value))


def _walk(stream: io.IOBase) -> tuple[str, object]:
    try:
        return "ok", _canonical(unpickle(stream, GlobalLog())[0])
    except LoadError as exc:
        return "error", str(exc)


def _both_loops(data: bytes) -> tuple[tuple[str, object], tuple[str, object]]:
    """The walk of ``data`` held in memory (the inlined opcode loop) and read as a stream."""
    return _walk(io.BytesIO(data)), _walk(io.BufferedReader(io.BytesIO(data)))


#: a torch state dict's pickle: the memo-heavy shape the inlined loop is written for
TORCH_PICKLE = zipfile.ZipFile(FIXTURES / "torch" / "cnn_sd_clean.pt").read(
    next(n for n in zipfile.ZipFile(FIXTURES / "torch" / "cnn_sd_clean.pt").namelist()
         if n.endswith("/data.pkl")))


@FAST
@given(data=st.one_of(*[mutants(s) for s in [*PICKLE_SEEDS, TORCH_PICKLE]]))
def test_in_memory_loop_agrees_with_stream_loop(data: bytes) -> None:
    in_memory, streamed = _both_loops(data)
    assert in_memory == streamed


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
    from paraminspect.loaders.safetensors.header import _validate_columns, _validate_exact

    header, data_size = case
    try:
        exact = _validate_exact(header, data_size)
    except LoadError:
        exact = None
    assert _validate_columns(header, data_size) == exact


_NAMES = st.one_of(
    st.sampled_from(["a.weight", "a.bias", "b.0.weight", "__metadata__", "a", "", "a.b.c",
                     'q"x', "back\\slash", "tab\tname", "\u00e9t\u00e9.w", "\U0001f600", "\x7f",
                     "a\u2028b", ":{", '":{"dtype', "0", "]},"]),
    st.text(max_size=6),
)


@st.composite
def _valid_safetensors_headers(draw: st.DrawFn) -> tuple[dict[str, object], int]:
    header: dict[str, object] = {}
    position = 0
    for index in range(draw(st.integers(1, 4))):
        shape = draw(st.lists(st.integers(0, 3), max_size=2))
        size = 2
        for dim in shape:
            size *= dim
        header[f"t{index}"] = {"dtype": "F16", "shape": shape,
                               "data_offsets": [position, position + size]}
        position += size
    return header, position


@st.composite
def safetensors_texts(draw: st.DrawFn) -> tuple[str, int]:
    """Header texts as the library writes them (compact, metadata first), as json.dumps writes
    them, and spoiled by hand: whitespace, duplicates, escapes, odd names and numbers."""
    import json

    header, data_size = draw(st.one_of(safetensors_headers(), _valid_safetensors_headers()))
    names = draw(st.lists(_NAMES, min_size=len(header), max_size=len(header)))
    renamed = dict(zip(names, header.values()))  # a repeated name drops an entry
    if draw(st.booleans()):
        metadata = draw(st.sampled_from([
            {}, {"format": "pt"}, {"format": "pt", "x": "y\\z"}, {"k": 1}, {"k": {"n": "m"}},
            {"k": "a}b"}, {"k": "\u00e9"}, [], "s",
        ]))
        renamed = {"__metadata__": metadata, **renamed}
    compact = draw(st.booleans())
    text = json.dumps(renamed, separators=(",", ":") if compact else None,
                      ensure_ascii=draw(st.booleans()))
    spoil = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9, 9, 9]))
    if spoil and text:
        at = draw(st.integers(0, len(text)))
        if spoil == 1:
            text = text[:at] + draw(st.sampled_from([" ", "\n", "\t", "\x00", "\\", '"', ","]))
            text += text[at:]
        elif spoil == 2:
            text = text[:at] + text[at + 1:]
        elif spoil == 3:  # a number with a leading zero, a sign, an exponent, many digits
            text = text.replace(
                ":[", ":[" + draw(st.sampled_from(["0", "-", "1e", "9" * 25, "0.", "+"])), 1)
        elif spoil == 4 and len(renamed) > 1:  # a repeated key, kept in the text
            first = text.index(":")
            text = text[:-1] + "," + text[1:first] + ':{"dtype":"U8","shape":[],' \
                '"data_offsets":[0,1]}}'
        elif spoil == 5:
            text = text.replace('"dtype"', '"dtypf"', 1)
        elif spoil == 6:
            text += draw(st.sampled_from(["   ", " \n\t\r", "\x0c", " x", "}"]))
        elif spoil == 7:  # keys of an entry in another order
            text = text.replace('"shape"', '"tmp"').replace('"data_offsets"', '"shape"')
            text = text.replace('"tmp"', '"data_offsets"')
        elif spoil == 8:  # a raw control character in a name
            control = draw(st.sampled_from("\x00\x1f\n\x7f"))
            text = text.replace('":{"dtype"', control + '":{"dtype"', 1)
        elif spoil == 9:  # a leading zero
            old, new = draw(st.sampled_from([('s":[0,', 's":[00,'), (',"shape":[', ',"shape":[0'),
                                             ('s":[0', 's":[01')]))
            text = text.replace(old, new, 1)
    return text, data_size


@FAST
@given(safetensors_texts())
def test_safetensors_canonical_header_reading_agrees_with_json(case: tuple[str, int]) -> None:
    """The column reader of the library's compact headers returns what json.loads plus the
    validation return, or declines (None) and leaves the decision and the message to them."""
    text, data_size = case
    if not text.startswith("{"):
        return
    got = _column_reader_agrees(text, data_size)
    if got is not None:
        assert list(map(type, got[3])) == [tuple] * len(got[3])


def _column_reader_agrees(text: str, data_size: int) -> object:
    """What the column reader returns for ``text``, asserted None or equal to the json path's
    result (None where the json path refuses the header)."""
    from paraminspect.loaders.safetensors.header import parse_canonical, parse_json

    try:
        expected = parse_json(text, data_size)
    except LoadError:
        expected = None
    got = parse_canonical(text, data_size)
    assert got is None or got == expected
    return got


@FAST
@given(safetensors_headers())
def test_safetensors_compact_headers_take_the_column_reader(
    case: tuple[dict[str, object], int],
) -> None:
    """A valid header written compactly, as the library writes it, never needs json.loads."""
    import json

    from paraminspect.loaders.safetensors.header import parse_canonical, parse_json

    header, data_size = case
    text = json.dumps({"__metadata__": {"format": "pt"}, **header}, separators=(",", ":"))
    try:
        expected = parse_json(text + "  ", data_size)
    except LoadError:
        return
    assert parse_canonical(text + "  ", data_size) == expected


_ENTRY = '{"dtype":"F32","shape":[],"data_offsets":[0,4]}'
_SECOND = '{"dtype":"F32","shape":[],"data_offsets":[4,8]}'


@pytest.mark.parametrize("text", [
    '{"a\\u0062":' + _ENTRY + "}",  # an escape: the name is "ab"
    '{"a\x00":' + _ENTRY + "}",  # a raw control character, refused by JSON
    '{"a":' + _ENTRY.replace("[0,4]", "[00,4]") + "}",  # a leading zero, refused by JSON
    '{"a":' + _ENTRY.replace("[0,4]", "[0,04]") + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[,4]") + "}",
    # the numbers of one entry carried by its neighbour: right skeleton overall, not JSON
    '{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},:[4"b":{"dtype":"F32","shape":[],'
    '"data_offsets",8]}}',
    # digits where the skeleton has none: after ``]``, after ``}``
    '{"a":' + _ENTRY.replace("[0,4]}", "[0,4]4}") + ',"b":' + _SECOND + "}",
    '{"a":' + _ENTRY.replace("[0,4]}", "[0,4]}4") + ',"b":' + _SECOND + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[0,4]0") + ',"b":' + _SECOND.replace("[4,", "[,") + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[0,]") + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[0,4,]") + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[0,4.0]") + "}",
    '{"a":' + _ENTRY.replace("[0,4]", "[0,\u0664]") + "}",  # an Arabic-Indic digit
    '{"a":' + _ENTRY + ',"a":' + _SECOND + "}",  # a repeated name
    '{"__metadata__":' + _ENTRY + "}",
    '{"a":' + _ENTRY + ',"__metadata__":' + _SECOND + "}",  # metadata not first
    '{"a":' + _ENTRY + ',"__metadata__":{}}',
    '{"__metadata__":{"k":"v","k":"w"},"a":' + _ENTRY + "}",
    '{"__metadata__"x{"k":"v"},"a":' + _ENTRY + "}",
    '{"__metadata__":{"k":"v"},"a":' + _ENTRY + "}",  # fine
    '{"__metadata__":{"k":{"n":"m"}},"a":' + _ENTRY + "}",
    '{"a":' + _ENTRY + "}\x0c",  # not JSON whitespace
    '{"a":' + _ENTRY + "} ",  # fine: JSON whitespace
    '{"a":' + _ENTRY.replace("[],", "[1,1],") + "}",
    '{"\u00e9":' + _ENTRY + "}",
])
def test_safetensors_column_reader_on_near_canonical_headers(text: str) -> None:
    """Texts one step from the canonical form: the column reader declines or agrees."""
    _column_reader_agrees(text, 8 if "8]" in text else 4)
