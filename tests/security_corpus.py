"""Hostile and benign pickle carriers generated at test time (nothing binary is committed).

Every hostile payload, if really loaded (``pickle.loads`` / ``torch.load(weights_only=False)``),
creates its own marker file; :func:`live_check` proves that in a subprocess, and the scanner's
tests assert that checking never does. Written against Python 3.11 pickle and torch 2.13.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

# -- raw pickle assembly (protocol 4 opcodes unless a route needs others) ----------------------


def _s(text: str) -> bytes:
    raw = text.encode()
    return (b"\x8c" + bytes([len(raw)]) + raw) if len(raw) < 256 else (
        b"X" + struct.pack("<I", len(raw)) + raw
    )


def _b(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def _sg(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + b"\x93"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def _p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def _touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


class _Reduce:
    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _torch_zip(data_pkl: bytes, folder: str = "archive", extra: dict[str, bytes] | None = None,
               first: tuple[str, bytes] | None = None) -> bytes:
    """A torch archive; ``first`` = (folder, data.pkl) written before it, which torch reads
    (zipfile's ``getinfo`` returns the last entry of a duplicated name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        if first is not None:
            archive.writestr(f"{first[0]}/data.pkl", first[1])
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        archive.writestr(f"{folder}/version", b"3\n")
        archive.writestr(f"{folder}/byteorder", b"little")
        for name, value in (extra or {}).items():
            archive.writestr(name, value)
    return buffer.getvalue()


def _zip(entries: dict[str, bytes], encrypted: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in entries.items():
            archive.writestr(name, value)
    data = bytearray(buffer.getvalue())
    if encrypted:  # zipfile cannot write encrypted entries: set the flag bit by hand
        for magic, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(magic)
            while at >= 0:
                data[at + offset] |= 0x1
                at = data.find(magic, at + 4)
    return bytes(data)


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


# -- the hostile corpus -------------------------------------------------------------------------


def hostile(workdir: Path) -> dict[str, tuple[bytes, Path | None]]:
    """name (with suffix) -> (file bytes, marker the payload would create or None)."""
    cases: dict[str, tuple[bytes, Path | None]] = {}

    def marker(name: str) -> Path:
        return workdir / f"ran-{name}"

    def add(name: str, make: Callable[[Path], bytes], live: bool = True) -> None:
        m = marker(name)
        cases[name] = (make(m), m if live else None)

    def plain(func: Callable[..., object], *args: object, protocol: int = 4) -> Callable[[Path], bytes]:
        return lambda m: pickle.dumps(_Reduce(func, *[a(m) if callable(a) else a for a in args]),
                                      protocol=protocol)

    touch_cmd = lambda m: f"touch {m}"  # noqa: E731
    touch_src = _touch
    # the classic routes, every protocol
    for proto in range(6):
        add(f"os_system_p{proto}.pkl", plain(os.system, touch_cmd, protocol=proto))
    add("eval.pkl", plain(eval, touch_src))
    add("exec.pkl", plain(exec, touch_src))
    add("subprocess.pkl", lambda m: pickle.dumps(_Reduce(subprocess.call, ["touch", str(m)])))
    add("compile_exec.pkl", lambda m: _p4(_call(_sg("builtins", "exec"), _call(
        _sg("builtins", "compile"), _s(_touch(m)), _s("x"), _s("exec")))))
    # protocol 0 INST and protocol 1 OBJ opcodes
    add("inst_p0.pkl", lambda m: f"(S'touch {m}'\nios\nsystem\n.".encode())
    add("obj_p1.pkl", lambda m: b"(cos\nsystem\nX" + struct.pack("<I", len(f"touch {m}"))
        + f"touch {m}".encode() + b"o.")
    # Python 2 and platform module aliases
    add("cpickle_loads.pkl", lambda m: b"ccPickle\nloads\n(" + _b(pickle.dumps(
        _Reduce(os.system, f"touch {m}"), protocol=2)) + b"tR.")
    add("builtin_eval_p0.pkl", lambda m: f"c__builtin__\neval\n(V{_touch(m)}\ntR.".encode())
    add("nt_alias.pkl", lambda m: f"cnt\nsystem\n(Vtouch {m}\ntR.".encode(), live=False)
    add("posixpath_os.pkl", lambda m: _p4(_call(_sg("posixpath", "os.system"), _s(f"touch {m}"))))
    # dotted names walked attribute by attribute
    add("typing_builtins_walk.pkl", lambda m: _p4(_call(
        _call(_sg("typing", "cast.__builtins__.get"), _s("exec")), _s(_touch(m)))))
    add("torch_serialization_pickle.pkl", lambda m: _p4(_call(
        _sg("torch.nn.modules.module", "torch.serialization.pickle.loads"),
        _b(pickle.dumps(_Reduce(os.system, f"touch {m}"))))))
    add("typing_methodcaller.pkl", lambda m: _p4(_call(
        _call(_sg("operator", "methodcaller"), _s("system"), _s(f"touch {m}")),
        _call(_sg("builtins", "__import__"), _s("os")))))
    add("attrgetter.pkl", lambda m: _p4(_call(
        _call(_call(_sg("operator", "attrgetter"), _s("system")),
              _call(_sg("builtins", "__import__"), _s("os"))), _s(f"touch {m}"))))
    add("getattr_import.pkl", lambda m: _p4(_call(
        _call(_sg("builtins", "getattr"), _call(_sg("builtins", "__import__"), _s("os")),
              _s("system")), _s(f"touch {m}"))))
    add("getattr_dunder.pkl", lambda m: _p4(_call(_call(_sg("builtins", "getattr"), _call(
        _sg("builtins", "getattr"), _sg("collections", "OrderedDict"), _s("__init__")),
        _s("__globals__")), )), live=False)
    # nested pickles
    add("load_from_bytes.pkl", lambda m: _p4(_call(
        _sg("torch.storage", "_load_from_bytes"), _b(pickle.dumps(_Reduce(os.system, f"touch {m}"))))))
    add("load_from_bytes_zip.pkl", lambda m: _p4(_call(
        _sg("torch.storage", "_load_from_bytes"),
        _b(_torch_zip(pickle.dumps(_Reduce(os.system, f"touch {m}"), protocol=2))))))
    add("pickle_loads_nested.pkl", lambda m: _p4(_call(
        _sg("pickle", "loads"), _b(pickle.dumps(_Reduce(os.system, f"touch {m}"))))))
    add("marshal_function.pkl", lambda m: _p4(_call(_call(
        _sg("types", "FunctionType"),
        _call(_sg("marshal", "loads"), _b(__import__("marshal").dumps(
            compile(_touch(m), "x", "exec")))),
        _call(_sg("builtins", "globals"))))))
    # copyreg reconstructor building a class whose constructor opens a file
    add("reconstructor_filehandler.pkl", lambda m: f"ccopy_reg\n_reconstructor\n(clogging\n"
        f"FileHandler\nclogging\nFileHandler\nV{m}\ntR.".encode())
    add("partial_system.pkl", lambda m: _p4(_call(
        _call(_sg("functools", "partial"), _sg("os", "system"), _s(f"touch {m}")))))
    # standard-library and torch gadgets
    add("pkgutil_resolve.pkl", lambda m: _p4(_call(
        _call(_sg("pkgutil", "resolve_name"), _s("os:system")), _s(f"touch {m}"))))
    add("timeit.pkl", lambda m: _p4(_call(_sg("timeit", "timeit"), _s(_touch(m)), _s("pass"),
                                          _sg("time", "perf_counter"), b"K\x01")))
    add("cprofile_run.pkl", lambda m: _p4(_call(_sg("cProfile", "run"), _s(_touch(m)))))
    add("collect_env_run.pkl", lambda m: _p4(_call(
        _sg("torch.utils.collect_env", "run"), _s(f"touch {m}"))))
    add("idlelib.pkl", lambda m: _p4(_call(_sg("idlelib.pyshell", "ModifiedInterpreter"),
                                          _s("x"))), live=False)
    add("lib2to3.pkl", lambda m: _p4(_call(_sg("lib2to3.pgen2.grammar", "Grammar"))), live=False)
    add("doctest.pkl", lambda m: _p4(_call(_sg("doctest", "debug_script"), _s(_touch(m)))),
        live=False)
    add("ensurepip.pkl", lambda m: _p4(_call(_sg("ensurepip", "_run_pip"), b"]")), live=False)
    add("logging_config.pkl", lambda m: _p4(_call(_sg("logging.config", "fileConfig"),
                                                  _s(str(m)))), live=False)
    add("runpy.pkl", lambda m: _p4(_call(_sg("runpy", "_run_code"), _s(_touch(m)), b"}")))
    # carriers: numpy object arrays, zips of pickles, archives in archives, torch archives
    payload = lambda m: pickle.dumps(_Reduce(os.system, f"touch {m}"), protocol=3)  # noqa: E731
    add("object_array.npy", lambda m: _npy_object(payload(m)))
    add("object_arrays.npz", lambda m: _zip({"arr_0.npy": _npy_object(payload(m))}))
    add("pickles.zip", lambda m: _zip({"readme.txt": b"hello", "inner/state.pkl": payload(m)}))
    add("zip_in_zip.zip", lambda m: _zip({"outer.zip": _zip({"x.pkl": payload(m)})}))
    add("torch_zip.pt", lambda m: _torch_zip(pickle.dumps(_Reduce(os.system, f"touch {m}"),
                                                          protocol=2)))
    add("torch_duplicate_entry.pt", lambda m: _torch_zip(
        pickle.dumps({"w": 1}, protocol=2),
        first=("archive", pickle.dumps(_Reduce(os.system, f"touch {m}"), protocol=2))))
    # a payload followed by corrupt bytes: the payload runs before the load fails
    add("payload_then_garbage.pkl", lambda m: payload(m)[:-1] + b"\xff\xfe garbage", live=True)
    return cases


def unreadable_archives() -> dict[str, bytes]:
    """Carriers that cannot be scanned: each must be named unreadable, never reported clean."""
    return {
        "archive.7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 32,
        "locked.zip": _zip({"x.pkl": pickle.dumps({"a": 1})}, encrypted=True),
    }


# -- live check: proves each payload really runs (in a subprocess) ------------------------------

_LIVE_SCRIPT = r"""
import io, json, pickle, sys, zipfile
import numpy
results = {}
for name, path in json.loads(sys.argv[1]).items():
    data = open(path, "rb").read()
    try:
        if name.endswith(".npy"):
            numpy.load(io.BytesIO(data), allow_pickle=True)
        elif name.endswith(".npz"):
            dict(numpy.load(io.BytesIO(data), allow_pickle=True))
        elif name.endswith(".zip"):
            def walk(blob):
                with zipfile.ZipFile(io.BytesIO(blob)) as z:
                    for n in z.namelist():
                        inner = z.read(n)
                        if n.endswith(".zip"):
                            walk(inner)
                        elif n.endswith(".pkl"):
                            pickle.loads(inner)
            walk(data)
        elif name.endswith(".pt"):
            import torch
            torch.load(io.BytesIO(data), weights_only=False)
        else:
            if b"torch" in data:
                import torch  # noqa: F401 - the payload resolves torch names
            pickle.loads(data)
    except Exception as exc:
        results[name] = type(exc).__name__
print(json.dumps(results))
"""


def live_check(paths: dict[str, Path], cwd: Path) -> dict[str, str]:
    """Really load each file in a throwaway subprocess; returns name -> exception raised."""
    out = subprocess.run(
        [sys.executable, "-c", _LIVE_SCRIPT, json.dumps({k: str(v) for k, v in paths.items()})],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- benign controls made by real frameworks -----------------------------------------------------


def benign(workdir: Path) -> dict[str, Path]:
    """Files real frameworks write; none may get a PI002 error. Needs torch (and transformers)."""
    import random

    import numpy as np
    import torch

    made: dict[str, Path] = {}

    def save(name: str, obj: object) -> None:
        made[name] = workdir / name
        torch.save(obj, made[name])

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    save("state_dict.pt", model.state_dict())
    save("whole_module.pt", model)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    save("checkpoint.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1})
    save("compiled_module.pt", torch.compile(model))
    save("rng_state.pth", {"python": random.getstate(), "numpy": np.random.get_state(),
                           "cpu": torch.random.get_rng_state()})
    save("random_states_0.pkl", {"random_state": random.getstate(),
                                 "numpy_random_seed": np.random.get_state(),
                                 "torch_manual_seed": torch.get_rng_state()})
    made["numpy_generator.pkl"] = workdir / "numpy_generator.pkl"
    made["numpy_generator.pkl"].write_bytes(pickle.dumps(np.random.default_rng(0)))
    made["plain_numbers.npy"] = workdir / "plain_numbers.npy"
    np.save(made["plain_numbers.npy"], np.arange(6.0))
    made["config_dict.pkl"] = workdir / "config_dict.pkl"
    made["config_dict.pkl"].write_bytes(pickle.dumps({"lr": 0.1, "layers": [1, 2]}, protocol=0))
    # old torch storages nest a clean torch.save inside _load_from_bytes
    inner = io.BytesIO()
    torch.save(torch.zeros(2), inner)
    made["clean_nested.pkl"] = workdir / "clean_nested.pkl"
    made["clean_nested.pkl"].write_bytes(
        _p4(_call(_sg("torch.storage", "_load_from_bytes"), _b(inner.getvalue())))
    )
    try:
        from transformers import BertConfig, BertModel, TrainingArguments
    except ImportError:
        return made
    config = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=8, vocab_size=20)
    save("hf_whole_module.pt", BertModel(config))
    save("training_args.bin", TrainingArguments(output_dir=str(workdir / "out"), use_cpu=True,
                                                report_to=[]))
    return made
