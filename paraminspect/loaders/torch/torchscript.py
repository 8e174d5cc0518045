"""TorchScript archives (``torch.jit.save``), read without torch and without running anything.

``data.pkl`` holds the module tree as flat dicts (``{'training': bool, <tensor>: ..., <child>:
module}``), walked by the restricted unpickler into layers and tensors
(:mod:`.torchscript_modules`). Which tensors are parameters and which are buffers is written only
in the saved code (``__parameters__`` / ``__buffers__`` per class in ``code/__torch__/...py``), so
that code is parsed (:mod:`.torchscript_code`, ``ast.parse``, never compiled or run). The code
also gives the mode where tracing baked it in (``torch.batch_norm(..., True, ...)``) and the
module-level dataflow: which submodule's ``forward`` result feeds which
(:mod:`.torchscript_dataflow`). This module opens the archive and puts the three together.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ...errors import LoadError
from ...graph import ModelGraph
from ...sniff import Sniffed, open_archive
from ...zipguard import read_entry
from ..pickle.limits import DEFAULT_LIMITS
from ..pickle.scan import with_partial
from ..pickle.stubs import GlobalLog, Stub
from ..pickle.unpickler import unpickle
from .saved_files import check_storages
from .saved_objects import record_code_references
from .torchscript_code import ClassInfo, SavedClasses
from .torchscript_dataflow import dataflow
from .torchscript_modules import add_module, is_module


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    prefix = sniffed.detail.get("prefix", "")
    log = GlobalLog()
    limits = DEFAULT_LIMITS
    try:
        with open_archive(path, sniffed) as archive:
            names = set(archive.namelist())

            def read(name: str) -> bytes:  # bounded: size and compression ratio
                return read_entry(
                    archive, archive.getinfo(name), limits.max_entry_bytes,
                    limits.max_compression_ratio,
                )

            data = read(f"{prefix}/data.pkl")
            sizes = {
                n[len(prefix) + 6 :]: archive.getinfo(n).file_size
                for n in names if n.startswith(f"{prefix}/data/")
            }
            code = {
                n[len(prefix) + 6 :]: read(n)
                for n in names if n.startswith(f"{prefix}/code/") and n.endswith(".py")
            }
            constants = read(f"{prefix}/constants.pkl") if (
                f"{prefix}/constants.pkl" in names) else b""
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError, KeyError) as exc:
        raise LoadError(f"corrupt TorchScript archive ({exc})") from None
    try:
        root, unpickler = unpickle(data, log)
    except LoadError as exc:
        partial = ModelGraph(path=str(path), format="torchscript", framework="pytorch")
        raise with_partial(exc, partial, log) from None
    check_storages(unpickler.storages, sizes)
    graph = ModelGraph(path=str(path), format="torchscript", content="export",
                       framework="pytorch")
    if constants:
        try:
            unpickle(constants, log)
        except LoadError as exc:
            graph.notes.append(f"could not walk constants.pkl: {exc}")
    if not is_module(root):
        raise LoadError("TorchScript data.pkl holds no module object")
    classes = SavedClasses(code)
    instances: dict[str, tuple[Stub, ClassInfo]] = {}
    add_module(graph, "", root, classes, instances, set(), {})
    record_code_references(graph, log)
    dataflow(graph, instances)
    return graph
