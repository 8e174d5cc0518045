"""PI002 unsafe-pickle: the file would run code outside what real checkpoints use when loaded."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Severity
from ..graph import CodeReference, ModelGraph
from .base import Issue, Rule

#: Callables real checkpoints use. Anything else that a pickle *calls* is suspicious.
SAFE_EXACT = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.slice",
        "builtins.complex",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.bytearray",
        "builtins.object",
        "_codecs.encode",
        "copyreg._reconstructor",
        "argparse.Namespace",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch.dtype",
        "torch.layout",
        "torch.memory_format",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.storage._load_from_bytes",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "datetime.datetime",
        "datetime.date",
        "datetime.timedelta",
        "decimal.Decimal",
        "uuid.UUID",
        "fractions.Fraction",
    }
)
SAFE_PREFIXES = (
    "torch._utils._rebuild_",
    "torch.nn.modules.",
    "torch.nn.parameter.",
    "torch.optim.",
    "torch.ao.nn.",
    "torch.nn.intrinsic.",
    "torch.jit._pickle.",
    "torch.nn.utils.parametriz",
    "__torch__.",
    "numpy.dtypes.",
    "omegaconf.",
    "typing.",
)
SAFE_PATTERN = re.compile(
    r"^torch\.(\w+Storage|float\w*|bfloat16|half|double|int\d*|uint\d*|long|short|bool|"
    r"complex\w*|cfloat|cdouble|qint\w+|quint\w+|strided|sparse_\w+|contiguous_format|"
    r"channels_last\w*|preserve_format)$"
)

#: Modules and callables that have no business in a checkpoint: flagged even if only named.
DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "importlib",
    "runpy",
    "pickle",
    "_pickle",
    "marshal",
    "shutil",
    "socket",
    "webbrowser",
    "pty",
    "code",
    "codeop",
    "ctypes",
    "types",
    "asyncio",
    "multiprocessing",
    "http",
    "urllib",
    "requests",
    "ftplib",
    "telnetlib",
    "smtplib",
    "pip",
    "setuptools",
    "distutils",
    "venv",
    "bdb",
    "pdb",
    "timeit",
    "trace",
    "profile",
    "cProfile",
    "pydoc",
    "commands",
    "platform",
    "signal",
    "tempfile",
    "glob",
    "io",
    "_io",
    "builtins.open",
    "zipimport",
    "imp",
    "sysconfig",
    "dill",
    "cloudpickle",
    "joblib",
    "operator.attrgetter",
    "operator.methodcaller",
    "functools.partial",
    "numpy.load",
    "numpy.testing",
    "torch.load",
    "torch.hub",
    "torch.serialization.load",
    "torch.jit.load",
    "torch._C",
)
DANGEROUS_BUILTINS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "__import__",
        "input",
        "breakpoint",
        "globals",
        "locals",
        "vars",
        "apply",
        "execfile",
        "memoryview",
        "help",
    }
)


_DANGEROUS_SET = frozenset(DANGEROUS_MODULES)


def is_safe(target: str) -> bool:
    return (
        target in SAFE_EXACT or target.startswith(SAFE_PREFIXES) or bool(SAFE_PATTERN.match(target))
    )


def is_dangerous(target: str) -> bool:
    base = target.removesuffix("()")
    module, _, name = base.rpartition(".")
    if module == "builtins" and name in DANGEROUS_BUILTINS:
        return True
    # ``base`` is a listed module or inside one: one set lookup per dotted prefix, not a scan
    # of the list per reference (the scan was a fifth of the time of a small file)
    parts = base.split(".")
    return any(".".join(parts[:i]) in _DANGEROUS_SET for i in range(1, len(parts) + 1))


class UnsafePickle(Rule):
    code = "PI002"
    name = "unsafe-pickle"
    severity = Severity.ERROR
    fix = (
        "Do not load this file with pickle or torch.load(weights_only=False). Re-export the "
        "weights from a trusted source as a state dict or safetensors."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for ref in graph.code_references:
            verdict = _judge(ref)
            if verdict is not None:
                severity, message = verdict
                yield Issue(
                    location=ref.location, message=message, severity=severity, paths=(ref.target,)
                )


def _judge(ref: CodeReference) -> tuple[Severity, str] | None:
    where = f" in layer {ref.location}" if ref.location else ""
    if ref.how == "bytecode":
        return Severity.ERROR, (
            f"serialized Python bytecode{where} ({ref.target}): loading the model would run it"
        )
    if is_dangerous(ref.target):
        verb = {"call": "calls", "instantiate": "creates"}.get(ref.how, "references")
        times = f" {ref.count} times" if ref.count > 1 else ""
        return Severity.ERROR, (
            f"the pickle {verb} {ref.target}{times}{where}: loading it with pickle or "
            "torch.load(weights_only=False) would run it (not run here)"
        )
    if ref.how == "call" and not is_safe(ref.target):
        return Severity.WARNING, (
            f"the pickle calls {ref.target}{where} while loading, which no standard checkpoint "
            "does: loading would run that code"
        )
    return None
