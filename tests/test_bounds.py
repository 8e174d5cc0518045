"""Resource bombs: each is handled within 256 MB peak RSS and 5 s, with a clear message.

Every bomb is generated at test time and checked by ``paraminspect check`` in a child process;
peak memory and time are the child's ru_maxrss and CPU time (user + system, interpreter start
included) from ``resource.getrusage(RUSAGE_CHILDREN)``, read by a small wrapper process that runs
only that child. CPU time, not wall time, so that a busy CI machine does not fail the test; a
hang would still show as the wall-time bound (60 s) being hit.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

MAX_RSS_MB = 256
MAX_SECONDS = 5.0
ROOT = Path(__file__).resolve().parent.parent

_WRAPPER = r"""
import json, resource, subprocess, sys, time
start = time.monotonic()
child = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "code": child.returncode,
    "wall": time.monotonic() - start,
    "seconds": usage.ru_utime + usage.ru_stime,
    "rss_mb": usage.ru_maxrss / 1024,
    "stdout": child.stdout,
    "stderr": child.stderr[-2000:],
}))
"""


def run_check(*args: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "paraminspect", "check", "--format", "json", "--no-color",
               *args]
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True,
                         text=True, env=env, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def messages(result: dict[str, object]) -> list[tuple[str, str]]:
    data = json.loads(str(result["stdout"]))
    return [(f["code"], f["message"]) for file in data["files"] for f in file["findings"]]


# -- bomb builders -----------------------------------------------------------------------------


def _raw_zip(names: list[str]) -> bytes:
    """A stored zip of empty entries, written directly (zipfile is too slow for 10^6 entries)."""
    local, central = [], []
    offset = 0
    for name in names:
        raw = name.encode()
        header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(raw), 0)
        local.append(header + raw)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0,
                                   0, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        offset += len(header) + len(raw)
    directory = b"".join(central)
    count = min(len(names), 0xFFFF)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0)
    if len(names) > 0xFFFF:  # zip64 end record and locator
        z64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(names), len(names),
                          len(directory), offset)
        locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, offset + len(directory), 1)
        end = z64 + locator + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF,
                                          0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(local) + directory + end


def _deflate_bomb(path: Path, entry: str, size: int, others: dict[str, bytes]) -> None:
    """A zip whose ``entry`` inflates to ``size`` bytes of spaces (about 1 MB per GiB)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, value in others.items():
            archive.writestr(name, value)
        chunk = b" " * (16 << 20)
        with archive.open(entry, "w", force_zip64=True) as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)


def memo_bomb(path: Path) -> None:
    # 13 bytes: PROTO 2, NONE, LONG_BINPUT 0x7fffffff, POP, LONG_BINPUT 0xffffffff, STOP
    path.write_bytes(b"\x80\x02Nr\xff\xff\xff\x7fr\xff\xff\xff\xff.")


def str_bomb(path: Path) -> None:
    body = b"c__builtin__\nstr\n]q\x000"
    for i in range(1, 41):  # list i = [list i-1, list i-1]: 2^40 elements when printed
        body += b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"lq" + bytes([i]) + b"0"
    path.write_bytes(b"\x80\x02" + body + b"h\x28\x85R.")


def hash_bomb(path: Path) -> None:
    body = b")q\x00"
    for i in range(1, 61):  # tuple i = (tuple i-1, tuple i-1), then used as a dict key
        body += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i]) + b"0"
    path.write_bytes(b"\x80\x02}" + body + b"h\x3cN" + b"s.")


def bytearray_bomb(path: Path) -> None:
    path.write_bytes(b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b".")


def zip_entry_bomb(path: Path) -> None:
    _deflate_bomb(path, "archive/data.pkl", 1 << 30, {})


def keras_config_bomb(path: Path) -> None:
    _deflate_bomb(path, "config.json", 1 << 30, {"metadata.json": b"{}"})


def million_entries(path: Path) -> None:
    path.write_bytes(_raw_zip([f"f{i}" for i in range(1_000_000)]))


def many_folders(path: Path) -> None:
    path.write_bytes(_raw_zip([f"d{i}/x" for i in range(350_000)]))


def layer_names_attribute(path: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(path, "w", libver="latest") as handle:  # dense storage: large attributes
        handle.attrs["layer_names"] = np.array([f"layer_{i}".encode() for i in range(1_000_000)])


def chained_keras_layers(path: Path) -> None:
    layers = [{"class_name": "InputLayer", "config": {"name": "l0"}, "inbound_nodes": []}]
    for i in range(1, 80_000):
        layers.append({"class_name": "Dense", "config": {"name": f"l{i}", "units": 1},
                       "inbound_nodes": [[[f"l{i - 1}", 0, 0, {}]]]})
    config = {"class_name": "Functional", "config": {
        "name": "m", "layers": layers, "input_layers": [["l0", 0, 0]],
        "output_layers": [[f"l{79_999}", 0, 0]]}}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")


BOMBS: dict[str, tuple[Callable[[Path], None], str, str | None]] = {
    # name: (builder, file name, a word the PI001 message must contain; None = read fine)
    "memo": (memo_bomb, "memo.pkl", "memo index"),
    "str_shared_refs": (str_bomb, "strs.pkl", "str()"),
    "hash_shared_refs": (hash_bomb, "keys.pkl", "expands"),
    "bytearray8": (bytearray_bomb, "ba.pkl", "truncated"),
    "zip_entry_1gib": (zip_entry_bomb, "big.pt", "read limit"),
    "keras_config_1gib": (keras_config_bomb, "big.keras", "read limit"),
    "zip_million_entries": (million_entries, "many.zip", "entries"),
    "zip_350k_folders": (many_folders, "folders.zip", "entries"),
    "hdf5_million_layer_names": (layer_names_attribute, "names.h5", "attribute"),
    "keras_80k_chained_layers": (chained_keras_layers, "chain.keras", "layers"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_bounded(name: str, tmp_path: Path) -> None:
    build, file_name, word = BOMBS[name]
    path = tmp_path / file_name
    build(path)
    result = run_check(str(path))
    assert "Traceback" not in str(result["stderr"])
    assert result["seconds"] < MAX_SECONDS, result
    assert result["rss_mb"] < MAX_RSS_MB, result
    found = messages(result)
    if word is None:
        assert not [m for code, m in found if code == "PI001"], found
    else:
        assert any(code == "PI001" and word in m for code, m in found), found
        assert all("internal error" not in m for _, m in found)


def test_fifo_in_a_scanned_folder_is_skipped_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    os.mkfifo(folder / "model.pt")  # opening it would block forever
    (folder / "config.pkl").write_bytes(b"\x80\x02}q\x00.")
    result = run_check(str(folder))
    data = json.loads(str(result["stdout"]))
    by_name = {Path(f["path"]).name: f for f in data["files"]}
    assert by_name["model.pt"]["findings"] == [] and "FIFO" in str(by_name["model.pt"])
    assert by_name["config.pkl"]["findings"] == []
    assert result["seconds"] < MAX_SECONDS


def test_fifo_named_directly_is_skipped(tmp_path: Path) -> None:
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    result = run_check(str(fifo))
    assert "FIFO" in str(result["stdout"]) and result["seconds"] < MAX_SECONDS


def test_timeout_is_a_pi001_and_the_other_files_go_on(tmp_path: Path) -> None:
    from paraminspect.config import Settings
    from paraminspect.engine import check_paths

    # a pickle of 3,000,000 MARK + EMPTY_LIST pairs: slow to walk in Python, harmless otherwise
    slow = tmp_path / "slow.pkl"
    slow.write_bytes(b"(" + b"(]" * 3_000_000 + b".")
    fine = tmp_path / "fine.pkl"
    fine.write_bytes(b"\x80\x02}q\x00.")
    check_paths([fine])  # imports the readers, so that the limit below times reading alone
    report = check_paths([slow, fine], Settings(timeout=1.0))
    by_name = {Path(f.path).name: f for f in report.files}
    assert [(f.code, "timed out" in f.message) for f in by_name["slow.pkl"].findings] == [
        ("PI001", True)
    ]
    assert by_name["fine.pkl"].findings == []


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
def test_a_real_onnx_file_is_not_kept_resident(tmp_path: Path) -> None:
    # 256 MB of written (not sparse) initializer bytes, in the page cache after writing: a
    # memory-mapped walk that touches each tensor's header maps the folio around it, up to 2 MB
    # per tensor on file systems with large folios, unless the pages behind the walk are dropped
    from .sparse_models import onnx_1gb

    path = tmp_path / "dense.onnx"
    onnx_1gb(path, layers=64, dense=True)
    with open(path, "rb") as handle:  # as a reader leaves it: cached by reads, not by writes
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while handle.read(8 << 20):
            pass
    result = run_check(str(path))
    assert result["code"] == 0, result["stderr"]
    assert json.loads(str(result["stdout"]))["files"][0]["summary"]["params"] == 64 * 1024 * 1024
    assert float(result["rss_mb"]) < 64, result["rss_mb"]


def test_limits_are_one_frozen_object() -> None:
    from paraminspect.loaders.pickle.limits import DEFAULT_LIMITS, Limits

    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_memo = 1  # type: ignore[misc]
    assert Limits(max_memo=5).max_memo == 5 and DEFAULT_LIMITS.max_memo == 2_000_000
    with pytest.raises(TypeError):
        Limits(max_mem=5)
    assert zlib  # the deflate bombs above use zipfile's zlib
