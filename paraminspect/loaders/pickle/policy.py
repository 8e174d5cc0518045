"""What a pickle global would do if loaded for real: the one place that decides what is dangerous.

Names are resolved the way Python's unpickler resolves them: module aliases of Python 2 pickles
(``__builtin__``, ``cPickle``, ``copy_reg``) and platform modules (``posix``, ``nt``) map to their
modern module, and a dotted name is walked attribute by attribute, so ``posixpath`` + ``os.system``
is ``os.system`` and any walk through a dunder attribute (``cast.__builtins__.get``) reaches the
interpreter itself. Each resolved target gets one of three tiers:

* ``error``: the callable runs code or touches the system (see :data:`ERROR_MODULES`,
  :data:`ERROR_NAMES`, :data:`ERROR_BUILTINS`), or the unpickler saw it used dangerously
  (a dunder walk, a reconstructor building an unknown class, a nested pickle it could not walk);
* ``warning``: an unknown callable is *called* while loading;
* nothing: known framework, tensor and container names, and classes only created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from ...graph import CodeReference
from ...record import FrozenRecord, assign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Python 2 and platform spellings -> the module Python 3 actually imports
MODULE_ALIASES = {
    "__builtin__": "builtins",
    "exceptions": "builtins",
    "copy_reg": "copyreg",
    "cPickle": "pickle",
    "nt": "os",
    "posix": "os",
    "commands": "subprocess",
    "popen2": "subprocess",
    "_subprocess": "subprocess",
}

#: Every member of these modules (and their submodules) is an error.
ERROR_MODULES = frozenset(
    {
        # processes, files, the interpreter
        "os", "subprocess", "_posixsubprocess", "pty", "tty", "signal", "_signal", "sys", "gc",
        "shutil", "tempfile", "glob", "io", "_io", "fileinput", "linecache", "mmap", "fcntl",
        "resource", "zipfile", "tarfile", "shelve", "dbm", "sqlite3", "atexit", "sched",
        "threading", "_thread", "multiprocessing", "concurrent", "asyncio", "platform",
        "inspect", "ctypes", "_ctypes", "cffi", "types", "code", "codeop", "marshal",
        # importing and running code
        "importlib", "imp", "zipimport", "runpy", "pkgutil", "ensurepip", "venv", "pip",
        "setuptools", "distutils", "pydoc", "site", "sysconfig",
        # debuggers, profilers, tools that run code they are given
        "bdb", "pdb", "ipdb", "pudb", "profile", "cProfile", "trace", "timeit", "doctest",
        "idlelib", "lib2to3", "unittest", "turtledemo", "antigravity", "webbrowser", "cgitb",
        # serializers that load code
        "pickle", "_pickle", "dill", "cloudpickle", "joblib", "jsonpickle", "yaml", "ruamel",
        # network
        "socket", "_socket", "ssl", "select", "selectors", "http", "urllib", "urllib3",
        "requests", "httpx", "aiohttp", "ftplib", "telnetlib", "smtplib", "poplib", "imaplib",
        "nntplib", "xmlrpc", "socketserver", "wsgiref", "smtpd",
        # config loaders and logging (handlers open files and sockets; config runs factories)
        "logging", "configparser",
    }
)
#: Exact targets (or target prefixes ending in '.') that are errors outside ERROR_MODULES.
ERROR_NAMES = frozenset(
    {
        "operator.attrgetter", "operator.methodcaller", "functools.reduce",
        "numpy.load", "numpy.loads", "numpy.lib.npyio.", "numpy.testing.", "numpy.f2py.",
        "numpy.distutils.", "numpy.ctypeslib.", "numpy.fromfile", "numpy.memmap",
        "numpy.lib.format.read_array", "pandas.read_pickle", "pandas.io.",
        "torch.load", "torch.serialization.load", "torch.serialization._load",
        "torch.serialization._legacy_load", "torch.hub.", "torch.jit.load", "torch.jit._serialization.",
        "torch.package.", "torch.utils.collect_env.", "torch.utils.cpp_extension.",
        "torch.utils.bottleneck.", "torch._inductor.codecache.", "torch.distributed.rpc.",
        "torch.distributed.run.", "torch.distributed.launch.", "torch.ops.load_library",
        "torch.classes.load_library", "torch._dynamo.repro.after_aot.",
        "torch.fx.graph_module.reduce_graph_module",
        "torch.fx.graph_module.reduce_package_graph_module",
        "torch.fx.graph_module.reduce_deploy_graph_module",
        "torch.fx.graph_module._exec_with_source", "torch.fx.graph_module._forward_from_src",
        "transformers.dynamic_module_utils.", "transformers.utils.hub.",
        "huggingface_hub.", "tensorflow.io.", "keras.utils.get_file",
    }
)
ERROR_BUILTINS = frozenset(
    {
        "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "__import__", "input",
        "breakpoint", "globals", "locals", "vars", "apply", "execfile", "help", "exit", "quit",
        "type", "memoryview", "reload", "file", "copyright", "credits", "license",
    }
)
#: torch._C entry points that load or compile code
TORCH_C_ERROR = re.compile(r"^torch\._C\..*(load|import|_jit|exec|compile)", re.IGNORECASE)

#: Callables that unpickle their bytes argument: walked recursively by the unpickler.
NESTED_LOADERS = frozenset(
    {
        "torch.storage._load_from_bytes",
        "pickle.loads",
        "_pickle.loads",
        "dill.loads",
        "cloudpickle.loads",
        "numpy.loads",
        "torch.load",
        "torch.serialization.load",
        "torch.serialization._load",
    }
)
#: Nested loaders that are legitimate when the bytes they load walk clean (old storages).
CLEAN_NESTED_OK = frozenset({"torch.storage._load_from_bytes"})

#: Known framework, tensor and container callables: a call to these is not reported.
SAFE_EXACT = frozenset(
    {
        "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
        "collections.deque", "builtins.set", "builtins.frozenset", "builtins.dict",
        "builtins.list", "builtins.tuple", "builtins.slice", "builtins.complex", "builtins.int",
        "builtins.float", "builtins.bool", "builtins.str", "builtins.bytes", "builtins.bytearray",
        "builtins.object", "builtins.range", "_codecs.encode", "copyreg._reconstructor",
        "copyreg.__newobj__", "copyreg.__newobj_ex__", "argparse.Namespace", "enum.Enum",
        "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta",
        "datetime.timezone", "decimal.Decimal", "uuid.UUID", "fractions.Fraction",
        "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
        "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "re._compile",
        "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
        # the same ndarray.__new__(subtype, shape, dtype), as object arrays of old NumPy name it
        "numpy.core._internal._reconstruct", "numpy._core._internal._reconstruct",
        "numpy._core.multiarray.scalar", "numpy.random.__RandomState_ctor",
        # what DeepSpeed's checkpoint pickles name: its ZeRO stage enum and loss scalers (the
        # rest of the deepspeed namespace, launchers included, stays unknown)
        "deepspeed.runtime.zero.config.ZeroStageEnum",
        "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
        # how joblib stores arrays inside its pickles (the arrays follow as raw bytes)
        "joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper",
    }
)
#: Framework namespaces whose names are ordinary (minus what ERROR_NAMES picks out).
SAFE_PREFIXES = (
    "torch.",
    "__torch__.",
    "numpy.dtypes.",
    "numpy.random.",
    "numpy.core.numeric.",
    "numpy._core.numeric.",
    "transformers.",
    "accelerate.",
    "peft.",
    "lightning.",
    "lightning_fabric.",
    "pytorch_lightning.",
    "timm.",
    "ultralytics.",
    "omegaconf.",
    "tokenizers.",
    "safetensors.",
)

#: Attribute names that, met inside a dotted walk, mean the walk continues in that module.
_REROOT = ERROR_MODULES | {"builtins", "operator", "functools", "copyreg", "torch", "numpy"}
_DUNDER = re.compile(r"^__\w+__$")
#: dunders that are ordinary module-level names, not a walk into the interpreter
_PLAIN_DUNDERS = frozenset({"__newobj__", "__newobj_ex__", "__import__", "__build_class__"})


#: The lookups below are pure and every checkpoint names the same few globals, so they are
#: memoized per process: this many names, of at most this many characters (a hostile pickle's
#: megabyte-long names are judged afresh rather than kept alive).
_CACHED_NAMES = 4096
_CACHED_LENGTH = 256


def resolve(module: str, name: str) -> tuple[str, str]:
    """The target ``module``/``name`` would reach, and a reason when the walk itself is an attack."""
    if len(module) + len(name) > _CACHED_LENGTH:
        return _resolve(module, name)
    return _resolve_cached(module, name)


def _resolve(module: str, name: str) -> tuple[str, str]:
    module = MODULE_ALIASES.get(module, module)
    head, _, rest = module.partition(".")
    if head in MODULE_ALIASES:
        module = MODULE_ALIASES[head] + ("." + rest if rest else "")
    parts = name.split(".")
    for i, part in enumerate(parts):
        if _DUNDER.match(part) and not (i == 0 and part in _PLAIN_DUNDERS):
            if part == "__builtins__" and i + 1 < len(parts):
                return "builtins." + ".".join(parts[i + 1 :]), (
                    f"walks through {part} of {module}.{'.'.join(parts[:i]) or '<module>'}"
                )
            return f"{module}.{name}", f"walks through the attribute {part}, into the interpreter"
    # the last attribute that is itself a module re-roots the walk (posixpath.os.system)
    root, start = module, 0
    for i, part in enumerate(parts[:-1]):
        if MODULE_ALIASES.get(part, part) in _REROOT:
            root, start = MODULE_ALIASES.get(part, part), i + 1
    return ".".join([root, *parts[start:]]), ""


_resolve_cached = lru_cache(maxsize=_CACHED_NAMES)(_resolve)


def _in_module(target: str, modules: Iterable[str]) -> bool:
    head = target.split(".", 1)[0]
    return head in modules


def is_error(target: str) -> str:
    """Why ``target`` is dangerous by itself ('' when it is not)."""
    if len(target) > _CACHED_LENGTH:
        return _is_error(target)
    return _is_error_cached(target)


def _is_error(target: str) -> str:
    base = target.removesuffix("()")
    if base in SAFE_EXACT:
        return ""
    module, _, name = base.rpartition(".")
    if module == "builtins":
        return "runs code or opens files" if name in ERROR_BUILTINS else ""
    if _in_module(base, ERROR_MODULES):
        return "reaches processes, files, the network or the interpreter"
    for entry in ERROR_NAMES:
        if base == entry or (entry.endswith(".") and base.startswith(entry)):
            return "loads or runs code"
    if base.startswith("pathlib.") and base not in SAFE_EXACT:
        return "reads, writes or deletes files"
    if TORCH_C_ERROR.match(base):
        return "loads or compiles code"
    return ""


_is_error_cached = lru_cache(maxsize=_CACHED_NAMES)(_is_error)


def is_known(target: str) -> bool:
    """A framework, tensor or container name whose use in a checkpoint is ordinary."""
    return target in SAFE_EXACT or target.startswith(SAFE_PREFIXES)


class Verdict(FrozenRecord):
    __slots__ = ("tier", "reason")
    tier: str  #: error, warning or info
    reason: str

    def __init__(
        self, tier: str, reason: str,
    ) -> None:
        assign(self, "tier", tier)
        assign(self, "reason", reason)


def judge(
    target: str,
    *,
    calls: int,
    instantiations: int,
    flagged: tuple[str, ...] = (),
    resolved_calls: int = 0,
    nested_clean: int = 0,
) -> Verdict | None:
    """The tier of one resolved target, given how the pickle used it and what the walk saw."""
    if flagged:
        return Verdict("error", flagged[0])
    if target in ("builtins.getattr", "builtins.getattr()"):
        if target == "builtins.getattr" and calls and resolved_calls == calls:
            return None  # every lookup was resolved and its result judged on its own
        return Verdict("error", "looks up attributes by name at load time")
    if target in NESTED_LOADERS:
        if target in CLEAN_NESTED_OK and calls and nested_clean == calls:
            return None
        if target in CLEAN_NESTED_OK and not calls:
            return None
        return Verdict("error", "unpickles bytes stored in the file, which can hold any code")
    reason = is_error(target)
    if reason:
        return Verdict("error", reason)
    if calls and not is_known(target):
        return Verdict("warning", "an unknown callable is called while loading")
    return None


def verdict_of(use: Any) -> Verdict | None:
    """The verdict for one :class:`~.unpickler.GlobalUse`."""
    return judge(
        use.resolved,
        calls=use.calls,
        instantiations=use.instantiations,
        flagged=tuple(use.flags),
        resolved_calls=use.resolved_calls,
        nested_clean=use.nested_clean,
    )


def code_references(log: Any, location: str = "") -> list[CodeReference]:
    """What a pickle walk saw, with the verdict of each target, for the graph."""
    refs: list[CodeReference] = []
    for target, use in log.uses.items():
        how = "call" if use.calls else "instantiate" if use.instantiations else "reference"
        count = use.calls or use.instantiations or use.references
        verdict = verdict_of(use)
        refs.append(
            CodeReference(
                target=target,
                how=how,
                location=location,
                count=count,
                danger=verdict.tier if verdict else "",
                reason=_explain(target, use.resolved, verdict) if verdict else "",
            )
        )
    for name in log.class_sources:
        refs.append(CodeReference(target=name, how="source", location=location))
    return refs


def _explain(target: str, resolved: str, verdict: Verdict) -> str:
    reaches = f" (reaches {resolved})" if resolved and resolved != target else ""
    return f"{reaches}: {verdict.reason}"
