"""A restricted unpickler that never runs anything a pickle names.

Every global the pickle references resolves to an inert stand-in class (a *stub*) that records its
dotted name and the arguments it was given; a handful of harmless builtins (``OrderedDict``,
``set``, ...) are real. Tensor storages are recorded from their persistent ids and never read.
The result is a tree of plain Python objects, stubs and :class:`TensorRef` records that a loader
interprets, plus a :class:`GlobalLog` of every global and how it was used.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import IO, Any

from ...errors import LoadError

#: Storage class name -> dtype (``torch.FloatStorage`` -> float32).
STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
}
#: bytes per element, for the few scalars we read (optimizer step counters)
DTYPE_SIZES = {
    "float32": 4,
    "float64": 8,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
    "qint8": 1,
    "quint8": 1,
    "qint32": 4,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
}

_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _latin1_encode(obj: object, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles spell ``bytes`` objects with it."""
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError("unexpected _codecs.encode use")
    return obj.encode("latin-1")


#: Globals that resolve to the real, harmless object instead of a stub.
REAL_GLOBALS: dict[str, object] = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.defaultdict": collections.defaultdict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.dict": dict,
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.slice": slice,
    "builtins.complex": complex,
    "builtins.int": int,
    "builtins.float": float,
    "builtins.bool": bool,
    "builtins.str": str,
    "_codecs.encode": _latin1_encode,
}


@dataclass
class StorageRef:
    """A tensor storage named by the pickle; its bytes stay on disk."""

    key: str
    dtype: str | None
    location: str | None
    numel: int | None


class TensorRef:
    """What ``torch._utils._rebuild_*`` would have built: metadata only.

    Compared and hashed by identity, like the tensors it stands for (tied weights share one).
    """

    __slots__ = ("storage", "offset", "shape", "requires_grad", "is_parameter", "dtype", "attrs")

    def __init__(
        self,
        storage: StorageRef | None,
        offset: int = 0,
        shape: tuple[int, ...] | None = None,
        requires_grad: bool | None = None,
        dtype: str | None = None,
    ) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.requires_grad = requires_grad
        self.is_parameter = False
        self.dtype = dtype or (storage.dtype if storage else None)
        self.attrs: dict[str, Any] = {}

    def __repr__(self) -> str:
        kind = "Parameter" if self.is_parameter else "Tensor"
        return f"<{kind} {self.dtype} {self.shape} requires_grad={self.requires_grad}>"


@dataclass
class GlobalUse:
    references: int = 0
    instantiations: int = 0  #: created without calling (NEWOBJ), like a module class
    calls: int = 0  #: called while unpickling (REDUCE): code that would run on load


@dataclass
class GlobalLog:
    uses: dict[str, GlobalUse] = field(default_factory=dict)
    class_sources: list[str] = field(default_factory=list)  #: legacy format: pickled class source

    def use(self, target: str) -> GlobalUse:
        return self.uses.setdefault(target, GlobalUse())


class Stub:
    """Base of every stand-in class. Instances record arguments, BUILD state and items."""

    _pi_target: str = "?"
    _pi_log: GlobalLog | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        self = object.__new__(cls)
        self._pi_args = args
        self._pi_kwargs = kwargs
        self._pi_state: Any = None
        self._pi_items: dict[Any, Any] = {}
        self._pi_list: list[Any] = []
        if cls._pi_log is not None:
            cls._pi_log.use(cls._pi_target).instantiations += 1
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only REDUCE gets here (NEWOBJ calls __new__ alone): the pickle *calls* this global.
        log = type(self)._pi_log
        if log is not None:
            use = log.use(type(self)._pi_target)
            use.instantiations -= 1
            use.calls += 1

    def __setstate__(self, state: Any) -> None:
        self._pi_state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pi_items[key] = value

    def append(self, value: Any) -> None:
        self._pi_list.append(value)

    def extend(self, values: Any) -> None:
        self._pi_list.extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:
        # A stub's result being called (getattr(os, 'system')(...)): record it as a call too.
        target = f"{type(self)._pi_target}()"
        result_cls = type(target, (Stub,), {"_pi_target": target, "_pi_log": type(self)._pi_log})
        result = result_cls(*args, **kwargs)
        return result

    @classmethod
    def target(cls) -> str:
        return cls._pi_target

    @property
    def state_dict(self) -> dict[str, Any]:
        """The BUILD state as a dict (``(state, slotstate)`` tuples flattened)."""
        state = self._pi_state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<stub {type(self)._pi_target}>"


def _tensor_builder(kind: str) -> Any:
    """A stub class whose construction yields a TensorRef (rebuild functions are REDUCE'd)."""

    def make(cls: type, *args: Any, **kwargs: Any) -> Any:
        return _rebuild(kind, args)

    return make


def _as_shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, Stub):  # torch.Size(...)
        value = value._pi_args[0] if value._pi_args else None
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _dtype_name(value: Any) -> str | None:
    if isinstance(value, type) and issubclass(value, Stub):
        return value._pi_target.rsplit(".", 1)[-1]
    return None


def _rebuild(kind: str, args: tuple[Any, ...]) -> Any:
    def arg(i: int) -> Any:
        return args[i] if len(args) > i else None

    if kind in ("tensor", "tensor_v2", "tensor_v3", "qtensor"):
        storage = arg(0) if isinstance(arg(0), StorageRef) else None
        rg_index = {"tensor": None, "tensor_v2": 4, "tensor_v3": 4, "qtensor": 5}[kind]
        requires_grad = arg(rg_index) if rg_index is not None else None
        dtype = _dtype_name(arg(6)) if kind == "tensor_v3" else None
        ref = TensorRef(
            storage,
            offset=arg(1) if isinstance(arg(1), int) else 0,
            shape=_as_shape(arg(2)),
            requires_grad=requires_grad if isinstance(requires_grad, bool) else None,
            dtype=dtype,
        )
        stride = _as_shape(arg(3))
        if stride is not None:
            ref.attrs["stride"] = stride  # element strides, for readers of the tensor's bytes
        return ref
    if kind in ("parameter", "parameter_with_state"):
        data = arg(0)
        if not isinstance(data, TensorRef):
            data = TensorRef(None)
        data.is_parameter = True
        if isinstance(arg(1), bool):
            data.requires_grad = arg(1)
        return data
    if kind == "from_type_v2":
        func, new_type, func_args = arg(0), arg(1), arg(2)
        result = func(*func_args) if callable(func) and isinstance(func_args, tuple) else None
        if (
            isinstance(result, TensorRef)
            and isinstance(new_type, type)
            and issubclass(new_type, Stub)
        ) and new_type._pi_target == "torch.nn.parameter.Parameter":
            result.is_parameter = True
        return result
    if kind == "meta":
        return TensorRef(
            None,
            shape=_as_shape(arg(1)),
            dtype=_dtype_name(arg(0)),
            requires_grad=arg(3) if isinstance(arg(3), bool) else None,
        )
    if kind == "wrapper_subclass":
        return TensorRef(
            None,
            shape=_as_shape(arg(2)),
            dtype=_dtype_name(arg(1)),
            requires_grad=arg(7) if isinstance(arg(7), bool) else None,
        )
    if kind == "numpy":
        return TensorRef(
            None,
            dtype=_dtype_name(arg(1)),
            requires_grad=arg(3) if isinstance(arg(3), bool) else None,
        )
    return TensorRef(None)


#: torch rebuild functions we understand -> rebuild kind.
TENSOR_BUILDERS = {
    "torch._utils._rebuild_tensor": "tensor",
    "torch._utils._rebuild_tensor_v2": "tensor_v2",
    "torch._utils._rebuild_tensor_v3": "tensor_v3",
    "torch._utils._rebuild_qtensor": "qtensor",
    "torch._utils._rebuild_parameter": "parameter",
    "torch._utils._rebuild_parameter_with_state": "parameter_with_state",
    "torch._tensor._rebuild_from_type_v2": "from_type_v2",
    "torch._utils._rebuild_meta_tensor_no_storage": "meta",
    "torch._utils._rebuild_wrapper_subclass": "wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy": "numpy",
    "torch._utils._rebuild_sparse_tensor": "other",
    "torch._utils._rebuild_nested_tensor": "other",
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals are stubs; ``persistent_load`` yields StorageRefs."""

    def __init__(self, file: IO[bytes], log: GlobalLog) -> None:
        super().__init__(file, encoding="latin1")
        self.log = log
        self._classes: dict[str, type] = {}
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        target = f"{module}.{name}"
        self.log.use(target).references += 1
        if target in REAL_GLOBALS:
            return REAL_GLOBALS[target]
        cls = self._classes.get(target)
        if cls is None:
            namespace: dict[str, Any] = {"_pi_target": target, "_pi_log": self.log}
            if target in TENSOR_BUILDERS:
                namespace["__new__"] = _tensor_builder(TENSOR_BUILDERS[target])
            cls = type(name if name.isidentifier() else "Global", (Stub,), namespace)
            self._classes[target] = cls
        return cls

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("unsupported persistent id")
        typename = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if typename == "storage" and len(pid) >= 5:
            storage_type, key, location, numel = pid[1:5]
            dtype = None
            if isinstance(storage_type, type) and issubclass(storage_type, Stub):
                dtype = STORAGE_DTYPES.get(storage_type._pi_target.rsplit(".", 1)[-1])
            key = str(key)
            ref = self.storages.get(key)
            if ref is None:
                ref = StorageRef(
                    key=key,
                    dtype=dtype,
                    location=str(location),
                    numel=numel if isinstance(numel, int) else None,
                )
                self.storages[key] = ref
            return ref
        if typename == "module" and len(pid) >= 4:
            # Legacy whole-module files carry each class's source: recorded, never compiled.
            cls = pid[1]
            name = cls._pi_target if isinstance(cls, type) and issubclass(cls, Stub) else str(cls)
            self.log.class_sources.append(name)
            return cls
        raise pickle.UnpicklingError(f"unsupported persistent id {typename!r}")


def unpickle(data: bytes | IO[bytes], log: GlobalLog) -> tuple[Any, RestrictedUnpickler]:
    """Walk one pickle. Raises LoadError with a one-line reason on any malformed input."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    unpickler = RestrictedUnpickler(stream, log)
    return load_one(unpickler), unpickler


def load_one(unpickler: RestrictedUnpickler) -> Any:
    try:
        return unpickler.load()
    except EOFError:
        raise LoadError("truncated pickle: the file ends early") from None
    except RecursionError:
        raise LoadError("pickle nests too deeply to walk") from None
    except MemoryError:
        raise LoadError("pickle asks for more memory than is sane") from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is a one-line load error
        raise LoadError(f"corrupt pickle ({type(exc).__name__}: {exc})") from None
