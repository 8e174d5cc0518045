"""The restricted unpickler never runs what a pickle names, and still recovers the model."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest

from paraminspect import load
from paraminspect.errors import LoadError
from paraminspect.loaders.pickle.stubs import GlobalLog, Stub
from paraminspect.loaders.pickle.tensors import TensorRef
from paraminspect.loaders.pickle.unpickler import unpickle

from .conftest import TORCH_FIXTURES, findings

MARKER = Path("/tmp/paraminspect-pwned-marker")  # what the evil fixtures would create


@pytest.mark.parametrize("name", ["evil.pt", "evil_legacy.pt"])
def test_payload_is_reported_and_never_runs(name: str) -> None:
    MARKER.unlink(missing_ok=True)
    graph = load(TORCH_FIXTURES / name)
    calls = {r.target: r.how for r in graph.code_references}
    assert calls["posix.system"] == "call"
    assert ("PI002", "", "error") in findings(TORCH_FIXTURES / name)
    assert not MARKER.exists()


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _walk(obj: object, protocol: int = 2) -> tuple[object, GlobalLog]:
    log = GlobalLog()
    result, _ = unpickle(pickle.dumps(obj, protocol=protocol), log)
    return result, log


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_eval_payload_is_a_stub(protocol: int, tmp_path: Path) -> None:
    target = tmp_path / "ran"
    result, log = _walk(_Reduce(eval, (f"open({str(target)!r}, 'w')",)), protocol)
    assert isinstance(result, Stub)
    assert log.uses["builtins.eval"].calls == 1
    assert not target.exists()


def test_getattr_chain_is_recorded_as_calls() -> None:
    # getattr(os, "system")("...") is pickled as REDUCE on the result of another REDUCE.
    blob = b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'echo pwned'\ntR."
    log = GlobalLog()
    result, _ = unpickle(blob, log)
    assert isinstance(result, Stub)
    assert log.uses["builtins.getattr"].calls == 1
    assert log.uses["builtins.__import__"].calls == 1
    # the lookup is resolved: __import__('os').system is os.system, and it was called
    looked_up = log.uses["os.system"]
    assert looked_up.resolved == "os.system" and looked_up.calls == 1
    from paraminspect.loaders.pickle.policy import verdict_of

    assert verdict_of(looked_up).tier == "error"
    assert verdict_of(log.uses["builtins.__import__"]).tier == "error"


def test_harmless_containers_stay_real() -> None:
    from collections import OrderedDict

    data = OrderedDict(a={1, 2}, b=frozenset({3}), c=[1.5, "x", b"raw"], d=slice(1, 2))
    result, log = _walk(data)
    assert result == data
    assert all(use.calls == 0 for use in log.uses.values() if "OrderedDict" not in str(use))


def _op(code: bytes, arg: int | None = None, width: int = 1) -> bytes:
    return code + (b"" if arg is None else arg.to_bytes(width, "little"))


def _binput(i: int) -> bytes:
    return _op(pickle.BINPUT, i)


def _binget(i: int) -> bytes:
    return _op(pickle.BINGET, i)


def _long(code: bytes, i: int) -> bytes:
    return _op(code, i, 4)


#: memo traffic no pickler writes in order: indices out of order, a gap filled later, an index
#: overwritten, text PUT/GET, 4-byte indices; Python's own unpickler is the oracle
MEMO_PICKLES = {
    "out of order": b"\x80\x02(" + pickle.EMPTY_LIST + _binput(3) + pickle.EMPTY_DICT
    + _binput(0) + _binget(3) + _binget(0) + pickle.TUPLE + pickle.STOP,
    "gap filled": b"\x80\x02(" + _op(pickle.BININT1, 7) + _binput(1) + _op(pickle.BININT1, 8)
    + _binput(0) + _binget(1) + _op(pickle.BININT1, 9) + _binput(1) + _binget(1) + _binget(0)
    + pickle.TUPLE + pickle.STOP,
    "overwritten": b"\x80\x02(" + _op(pickle.BININT1, 1) + _binput(0) + _op(pickle.BININT1, 2)
    + _binput(0) + _binget(0) + pickle.TUPLE + pickle.STOP,
    "text put and get": b"(" + pickle.INT + b"5\n" + pickle.PUT + b"2\n" + pickle.GET + b"2\n"
    + pickle.INT + b"6\n" + pickle.PUT + b"0\n" + pickle.GET + b"0\n" + pickle.TUPLE
    + pickle.STOP,
    "long indices": b"\x80\x02(" + _op(pickle.BININT1, 4) + _long(pickle.LONG_BINPUT, 70000)
    + _op(pickle.BININT1, 5) + _long(pickle.LONG_BINPUT, 0) + _long(pickle.LONG_BINGET, 70000)
    + _long(pickle.LONG_BINGET, 0) + pickle.TUPLE + pickle.STOP,
    "memoize": pickle.dumps([[1, 2], "shared"] * 3, protocol=4),
    # MEMOIZE puts at the count of distinct indices: 1, 0, then 1 again is two, so 2 is next
    "memoize after a gap": b"\x80\x04(" + _op(pickle.BININT1, 7) + _binput(1)
    + _op(pickle.BININT1, 8) + _binput(0) + _op(pickle.BININT1, 9) + _binput(1)
    + _op(pickle.BININT1, 10) + pickle.MEMOIZE + _binget(2) + _binget(1) + pickle.TUPLE
    + pickle.STOP,
    "shared references": pickle.dumps([(i, "k") for i in range(300)] * 2, protocol=2),
}


@pytest.mark.parametrize("name", sorted(MEMO_PICKLES))
def test_memo_matches_pythons_unpickler_in_both_loops(name: str) -> None:
    blob = MEMO_PICKLES[name]
    expected = pickle.loads(blob)
    in_memory, _ = unpickle(blob, GlobalLog())  # the inlined opcode loop
    streamed, _ = unpickle(io.BufferedReader(io.BytesIO(blob)), GlobalLog())  # method per opcode
    assert in_memory == expected
    assert streamed == expected


@pytest.mark.parametrize("stream", [io.BytesIO, lambda b: io.BufferedReader(io.BytesIO(b))])
def test_memo_miss_is_named(stream: object) -> None:
    blob = b"\x80\x02" + pickle.EMPTY_LIST + _binput(0) + _binget(0) + _binget(1) + pickle.STOP
    with pytest.raises(LoadError, match="Memo value not found at index 1"):
        unpickle(stream(blob), GlobalLog())  # type: ignore[operator]


def test_truncated_pickle_is_a_load_error() -> None:
    blob = pickle.dumps({"a": list(range(100))}, protocol=2)
    with pytest.raises(LoadError, match="truncated"):
        unpickle(blob[: len(blob) // 2], GlobalLog())


def test_garbage_is_a_one_line_load_error() -> None:
    with pytest.raises(LoadError) as info:
        unpickle(b"\x80\x02\xff\xfe\xfd", GlobalLog())
    assert "\n" not in str(info.value)


def test_storage_bytes_are_never_read(tmp_path: Path) -> None:
    # Replace every storage with junk of the same size: the graph must come out the same.
    source = TORCH_FIXTURES / "cnn_whole_bn_train_frozen.pt"
    junk = tmp_path / "junk.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(junk, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/data/" in info.filename:
                data = b"\xff" * len(data)
            dst.writestr(info, data)
    original, scrambled = load(source), load(junk)
    assert [(t.name, t.shape, t.trainable) for t in original.tensors.values()] == [
        (t.name, t.shape, t.trainable) for t in scrambled.tensors.values()
    ]


def test_missing_storage_is_reported(tmp_path: Path) -> None:
    source = TORCH_FIXTURES / "cnn_sd_clean.pt"
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                dst.writestr(info, src.read(info))
    with pytest.raises(LoadError, match="storage 0"):
        load(broken)


def test_tensor_records_carry_metadata_only() -> None:
    graph = load(TORCH_FIXTURES / "cnn_whole_clean.pt")
    conv = graph.tensors["backbone.conv.weight"]
    assert conv.shape == (4, 3, 3, 3) and conv.dtype == "float32"
    assert isinstance(conv.origin, TensorRef)
    assert graph.tensors["backbone.bn.num_batches_tracked"].dtype == "int64"
    assert graph.tensors["backbone.bn.num_batches_tracked"].shape == ()


def test_archive_folder_name_is_not_assumed(tmp_path: Path) -> None:
    source = TORCH_FIXTURES / "cnn_sd_clean.pt"
    renamed = tmp_path / "renamed.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(renamed, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            info.filename = "some_other_name/" + info.filename.split("/", 1)[1]
            dst.writestr(info, data)
    assert set(load(renamed).tensors) == set(load(source).tensors)


def test_bytes_io_roundtrip_protocol_5() -> None:
    buf = io.BytesIO()
    pickle.dump({"x": 1}, buf, protocol=5)
    result, _ = unpickle(buf.getvalue(), GlobalLog())
    assert result == {"x": 1}


def test_meta_tensors_keep_shape_dtype_and_requires_grad(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "meta.pt"
    torch.save({"w": torch.empty(2, 3, dtype=torch.float16, device="meta"),
                "p": torch.nn.Parameter(torch.empty(4, device="meta"), requires_grad=False)}, path)
    graph = load(path)
    w, p = graph.tensors["w"], graph.tensors["p"]
    assert (w.shape, w.dtype, p.shape, p.dtype) == ((2, 3), "float16", (4,), "float32")
    assert p.trainable.value == "frozen"  # requires_grad stored with the Parameter
