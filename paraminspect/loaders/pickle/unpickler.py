"""A restricted unpickler that never runs anything a pickle names.

Every global the pickle references resolves to an inert stand-in class (a *stub*) that records its
dotted name and the arguments it was given; a handful of harmless builtins (``OrderedDict``,
``set``, ...) are real. Tensor storages are recorded from their persistent ids and never read.
The result is a tree of plain Python objects, stubs and :class:`TensorRef` records that a loader
interprets, plus a :class:`GlobalLog` of every global and how it was used.
"""

from __future__ import annotations

import collections
import gc
import io
import pickle
import struct

from ...errors import LoadError
from ...record import Record
from . import fastloop, policy
from .limits import DEFAULT_LIMITS, Limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

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


def _safe_str(obj: object = "", *rest: object) -> str:
    """``builtins.str`` for scalars only: str() of a shared-reference structure never ends."""
    if not rest and type(obj) in (str, int, float, bool, complex, type(None)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)) and len(obj) <= 1 << 20 and rest:
        return bytes(obj).decode("latin-1")
    raise pickle.UnpicklingError("str() of a container or object: refused")


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
    "builtins.str": _safe_str,
    "_codecs.encode": _latin1_encode,
}


class StorageRef(Record):
    """A tensor storage named by the pickle; its bytes stay on disk."""

    __slots__ = ("key", "dtype", "location", "numel")
    key: str
    dtype: str | None
    location: str | None
    numel: int | None

    def __init__(
        self, key: str, dtype: str | None, location: str | None, numel: int | None,
    ) -> None:
        self.key = key
        self.dtype = dtype
        self.location = location
        self.numel = numel


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


class GlobalUse(Record):
    __slots__ = ("references", "instantiations", "calls", "resolved", "flags", "resolved_calls",
                 "nested_clean")
    references: int
    instantiations: int  #: created without calling (NEWOBJ), like a module class
    calls: int  #: called while unpickling (REDUCE): code that would run on load
    resolved: str  #: the target Python would reach (aliases and attribute walks resolved)
    flags: list[str]  #: dangerous uses the walk itself saw
    resolved_calls: int  #: getattr lookups whose result was resolved and judged on its own
    nested_clean: int  #: nested pickles this loader was given that walked clean

    def __init__(
        self, references: int = 0, instantiations: int = 0, calls: int = 0, resolved: str = "",
        flags: list[str] | None = None, resolved_calls: int = 0, nested_clean: int = 0,
    ) -> None:
        self.references = references
        self.instantiations = instantiations
        self.calls = calls
        self.resolved = resolved
        self.flags = [] if flags is None else flags
        self.resolved_calls = resolved_calls
        self.nested_clean = nested_clean


class GlobalLog(Record):
    __slots__ = ("uses", "class_sources")
    uses: dict[str, GlobalUse]
    class_sources: list[str]  #: legacy format: pickled class source

    def __init__(
        self, uses: dict[str, GlobalUse] | None = None, class_sources: list[str] | None = None,
    ) -> None:
        self.uses = {} if uses is None else uses
        self.class_sources = [] if class_sources is None else class_sources

    def use(self, target: str, resolved: str = "") -> GlobalUse:
        entry = self.uses.get(target)
        if entry is None:
            entry = self.uses[target] = GlobalUse(resolved=resolved or target)
        return entry

    def merge(self, other: GlobalLog) -> None:
        """Add what a nested walk saw."""
        for target, use in other.uses.items():
            mine = self.use(target, use.resolved)
            mine.references += use.references
            mine.instantiations += use.instantiations
            mine.calls += use.calls
            mine.resolved_calls += use.resolved_calls
            mine.nested_clean += use.nested_clean
            mine.flags.extend(use.flags)
        self.class_sources.extend(other.class_sources)


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
        # A stub's result being called (getattr(os, 'system')(...)): record it as a call too,
        # judged like what produced it.
        parent_target = type(self)._pi_target
        target = f"{parent_target}()"
        log = type(self)._pi_log
        if log is not None:
            parent = log.use(parent_target)
            use = log.use(target, parent.resolved.removesuffix("()"))
            if parent.flags and not use.flags:
                use.flags.append(f"calls what {parent_target} returned")
        result_cls = type("Result", (Stub,), {"_pi_target": target, "_pi_log": log})
        return result_cls(*args, **kwargs)

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
    if type(value) is tuple:  # the common case, twice per tensor: no generator, no copy
        for v in value:
            if not isinstance(v, int):
                return None
        return value  # tuple(value) of a tuple is that tuple
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _dtype_name(value: Any) -> str | None:
    if isinstance(value, type) and issubclass(value, Stub):
        return value._pi_target.rsplit(".", 1)[-1]
    return None


#: tensor rebuild kinds -> index of their ``requires_grad`` argument (None: not passed)
_REQUIRES_GRAD_INDEX = {"tensor": None, "tensor_v2": 4, "tensor_v3": 4, "qtensor": 5}


def _rebuild_tensor(kind: str, args: tuple[Any, ...]) -> TensorRef:
    """``_rebuild_tensor*(storage, offset, size, stride, requires_grad, ...)``: once per tensor
    of a state dict, so the arguments are indexed directly."""
    n = len(args)
    storage = args[0] if n > 0 else None
    offset = args[1] if n > 1 else None
    rg_index = _REQUIRES_GRAD_INDEX[kind]
    requires_grad = args[rg_index] if rg_index is not None and n > rg_index else None
    ref = TensorRef(
        storage if isinstance(storage, StorageRef) else None,
        offset if isinstance(offset, int) else 0,
        _as_shape(args[2] if n > 2 else None),
        requires_grad if isinstance(requires_grad, bool) else None,
        _dtype_name(args[6] if n > 6 else None) if kind == "tensor_v3" else None,
    )
    stride = _as_shape(args[3] if n > 3 else None)
    if stride is not None:
        ref.attrs["stride"] = stride  # element strides, for readers of the tensor's bytes
    return ref


def _rebuild(kind: str, args: tuple[Any, ...]) -> Any:
    if kind in _REQUIRES_GRAD_INDEX:
        return _rebuild_tensor(kind, args)

    def arg(i: int) -> Any:
        return args[i] if len(args) > i else None

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


class PausedGC:
    """``with PausedGC():`` no cyclic garbage collection inside (and back as it was after).

    Unpickling and graph building allocate a few objects per tensor and free almost none; the
    collector, triggered by allocation counts, would re-scan every live object again and again
    (a quarter of a 100,000-tensor walk). Nesting is harmless: only the outermost re-enables it.
    """

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()


class _BoundedReader:
    """``read``/``readline`` over a stream that never asks for more than the stream still holds.

    Python's unpickler trusts length fields (``BINBYTES8``, ``FRAME``); a read larger than what is
    left would allocate the claimed size first. Here it returns what exists, and the unpickler
    reports the pickle truncated.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        try:
            position = stream.tell()
            end = stream.seek(0, 2)
            stream.seek(position)
            self.left = min(end - position, limit)
        except (OSError, AttributeError):
            self.left = limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 or n > self.left else n
        data = self.stream.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self.stream.readline(self.left)
        self.left -= len(data)
        return data


_PyUnpickler: Any = pickle._Unpickler  # type: ignore[attr-defined]
_Unframer: Any = pickle._Unframer  # type: ignore[attr-defined]
_Stop: Any = pickle._Stop  # type: ignore[attr-defined]
_HASHED_REAL = fastloop.HASHED_REAL


class RestrictedUnpickler(_PyUnpickler):  # type: ignore[misc]
    """Unpickler whose globals are stubs; ``persistent_load`` yields StorageRefs.

    Built on Python's own unpickler so that the memo is a dict (a 13-byte pickle cannot make it
    allocate gigabytes) and every container opcode can be bounded; see :class:`Limits`.
    """

    dispatch = dict(_PyUnpickler.dispatch)

    def __init__(
        self,
        file: IO[bytes],
        log: GlobalLog,
        limits: Limits = DEFAULT_LIMITS,
        depth: int = 0,
    ) -> None:
        # In-memory bytes need no guard (BytesIO never reads past its end); files do.
        self._reader = file if isinstance(file, io.BytesIO) else _BoundedReader(
            file, limits.max_pickle_bytes
        )
        super().__init__(self._reader, encoding="latin1")
        self.log = log
        self.limits = limits
        self.depth = depth
        self._classes: dict[str, type] = {}
        self.storages: dict[str, StorageRef] = {}
        self._items = 0

    # -- globals ---------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise pickle.UnpicklingError("global name is not a string")
        module = _MODULE_ALIASES.get(module, module)
        raw = f"{module}.{name}"
        resolved, reason = policy.resolve(module, name)
        use = self.log.use(raw, resolved)
        use.references += 1
        if reason:
            use.flags.append(reason)
        if raw == "builtins.getattr":
            return self._getattr
        if raw in ("copyreg._reconstructor",):
            return self._reconstructor
        if raw in REAL_GLOBALS and not reason:
            return REAL_GLOBALS[raw]
        return self._stub_class(raw, resolved)

    def _stub_class(self, raw: str, resolved: str) -> type:
        cls = self._classes.get(raw)
        if cls is None:
            if raw in TENSOR_BUILDERS:
                cls = _builder_class(raw)
            else:
                namespace: dict[str, Any] = {"_pi_target": raw, "_pi_log": self.log}
                if resolved in policy.NESTED_LOADERS:
                    namespace["__new__"] = self._nested_loader(raw)
                cls = _new_stub_class(raw, namespace)
            self._classes[raw] = cls
        return cls

    def _getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        """``getattr`` as the pickle would call it, resolved to the attribute it would reach."""
        use = self.log.use("builtins.getattr")
        use.calls += 1
        owner = _owner_name(obj)
        if not isinstance(name, str) or owner is None:
            use.flags.append("looks up an attribute that is only known at load time")
            return self._stub_class("builtins.getattr()", "builtins.getattr()")
        raw = f"{owner}.{name}"
        module, _, first = owner.partition(".")
        resolved, reason = policy.resolve(module, f"{first}.{name}" if first else name)
        if reason:
            use.flags.append(f"getattr({owner}, {name!r}) {reason}")
        else:
            use.resolved_calls += 1
        self.log.use(raw, resolved).references += 1
        return self._stub_class(raw, resolved)

    def _reconstructor(self, cls: Any, base: Any, state: Any = None) -> Any:
        """``copyreg._reconstructor``: creates ``cls`` and, unless ``base`` is object, calls
        ``base.__init__`` on it, which runs whatever that class does."""
        self.log.use("copyreg._reconstructor").calls += 1
        base_name = _owner_name(base)
        if base is not object and base_name is not None and not policy.is_known(base_name):
            self.log.use(base_name).flags.append(
                "copyreg._reconstructor would run its constructor while loading"
            )
        if isinstance(cls, type) and issubclass(cls, Stub):
            instance = cls.__new__(cls)
            instance._pi_state = state
            return instance
        if cls in (dict, list, set, frozenset, collections.OrderedDict, object):
            return cls()
        raise pickle.UnpicklingError("copyreg._reconstructor of an unexpected class")

    def _nested_loader(self, raw: str) -> Any:
        unpickler = self

        def load_nested(cls: type, *args: Any, **kwargs: Any) -> Any:
            instance = Stub.__new__(cls)
            use = unpickler.log.use(raw)
            data = args[0] if args else None
            if not isinstance(data, (bytes, bytearray)):
                use.flags.append("unpickles data that is only computed at load time")
            elif unpickler.depth + 1 > unpickler.limits.max_nesting:
                use.flags.append(
                    f"nests pickles more than {unpickler.limits.max_nesting} levels deep: "
                    "the innermost were not walked"
                )
            else:
                from .carriers import walk_bytes  # a nested pickle may be a whole torch archive

                inner = GlobalLog()
                try:
                    walk_bytes(bytes(data), inner, unpickler.limits, unpickler.depth + 1)
                except LoadError as exc:
                    use.flags.append(f"unpickles bytes that could not be walked ({exc})")
                if not any(policy.verdict_of(u) for u in inner.uses.values()):
                    use.nested_clean += 1
                unpickler.log.merge(inner)
            return instance

        return load_nested

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple and len(pid) >= 5 and pid[0] == "storage" and type(pid[2]) is str:
            # torch's ('storage', storage_type, key, location, numel), once per tensor: the
            # general branch below, minus the checks these types make moot
            return self._storage(pid[2], pid[1], pid[3], pid[4])
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("unsupported persistent id")
        typename = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if typename == "storage" and len(pid) >= 5:
            storage_type, key, location, numel = pid[1:5]
            return self._storage(
                key if isinstance(key, str) else repr(key)[:64], storage_type, location, numel
            )
        if typename == "module" and len(pid) >= 4:
            # Legacy whole-module files carry each class's source: recorded, never compiled.
            cls = pid[1]
            name = cls._pi_target if isinstance(cls, type) and issubclass(cls, Stub) else "?"
            self.log.class_sources.append(name)
            return cls
        raise pickle.UnpicklingError("unsupported persistent id")

    def _storage(self, key: str, storage_type: Any, location: Any, numel: Any) -> StorageRef:
        """The one StorageRef of ``key``: tensors sharing a storage share the record."""
        ref = self.storages.get(key)
        if ref is None:
            dtype = None
            if isinstance(storage_type, type) and issubclass(storage_type, Stub):
                dtype = STORAGE_DTYPES.get(storage_type._pi_target.rsplit(".", 1)[-1])
            ref = self.storages[key] = StorageRef(
                key,
                dtype,
                location if isinstance(location, str) else None,
                numel if isinstance(numel, int) else None,
            )
        return ref

    # -- the opcode loop --------------------------------------------------------------------------
    def load(self) -> Any:
        """``pickle._Unpickler.load``, reading straight from the stream: the unframer it puts in
        between costs a Python call per read and only matters once a FRAME opcode (protocol 4+)
        appears, when :meth:`load_frame` hands the reads over to it.

        A pickle in memory is walked by :func:`.fastloop.run` (an index over the bytes, not a
        ``read()`` per opcode) up to its end or its first FRAME; files are read opcode by opcode.
        """
        self._unframer = _Unframer(self._file_read, self._file_readline)
        self.read = self._file_read
        self.readinto = self._unframer.readinto
        self.readline = self._file_readline
        self.metastack = []
        self.stack = []
        self.append = self.stack.append
        self.proto = 0
        reader = self._reader
        with PausedGC():
            if isinstance(reader, io.BytesIO):
                # getvalue() of a BytesIO made from bytes is those bytes, not a copy
                value = fastloop.run(self, reader.getvalue(), reader.tell())
                if value is not fastloop.FRAMED:
                    return value
            return self._load_from_stream()

    def _load_from_stream(self) -> Any:
        """The stream-reading loop: files, and a pickle in memory from its first FRAME on."""
        dispatch = self.dispatch
        try:
            while True:
                key = self.read(1)  # looked up each time: load_frame rebinds it
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
        except _Stop as stop:
            return stop.value

    def load_frame(self) -> None:
        self.read = self._unframer.read
        self.readline = self._unframer.readline
        _PyUnpickler.load_frame(self)

    # -- bounds ----------------------------------------------------------------------------------
    def _left(self) -> int:
        reader = self._reader
        if isinstance(reader, io.BytesIO):
            return len(reader.getbuffer()) - reader.tell()
        return int(reader.left)

    def _count(self, n: int) -> None:
        self._items += n
        if self._items > self.limits.max_items:
            raise LoadError(
                f"pickle builds more than {self.limits.max_items:,} container items: refused "
                "(a resource bomb, or raise the limit)"
            )

    def _check_key(self, key: Any) -> None:
        """A hashed tuple is hashed element by element, shared references again each time."""
        if type(key) not in (tuple, frozenset):
            return
        budget, max_depth = self.limits.max_key_expansion, self.limits.max_key_depth
        todo: list[tuple[Any, int]] = [(key, 1)]
        seen = 0
        while todo:
            item, depth = todo.pop()
            seen += 1
            if seen > budget or depth > max_depth:
                raise LoadError(
                    "pickle hashes a key that expands to more than "
                    f"{budget:,} elements or {max_depth} levels through shared references: refused"
                )
            if type(item) in (tuple, frozenset):
                todo.extend((child, depth + 1) for child in item)
        self._count(seen)

    def _memo_put(self, index: int) -> None:
        if index < 0 or index >= self.limits.max_memo_index:
            raise LoadError(f"pickle memo index {index} is out of bounds: corrupt or hostile")
        if len(self.memo) >= self.limits.max_memo and index not in self.memo:
            raise LoadError(
                f"pickle memo holds more than {self.limits.max_memo:,} objects: refused"
            )
        self.memo[index] = self.stack[-1]

    def load_put(self) -> None:
        line = self.readline()[:-1]
        if not line.isdigit() or len(line) > 12:
            raise pickle.UnpicklingError("invalid PUT index")
        self._memo_put(int(line))

    def load_binput(self) -> None:
        memo = self.memo
        if len(memo) >= self.limits.max_memo:
            self._memo_put(self.read(1)[0])
        else:
            memo[self.read(1)[0]] = self.stack[-1]

    def load_long_binput(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        if index < self.limits.max_memo_index and len(self.memo) < self.limits.max_memo:
            self.memo[index] = self.stack[-1]
        else:
            self._memo_put(index)

    def load_memoize(self) -> None:
        self._memo_put(len(self.memo))

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._left():
            raise pickle.UnpicklingError("BYTEARRAY8 longer than the pickle: truncated")
        self.append(bytearray(self.read(size)))

    def load_appends(self) -> None:
        self._count(len(self.stack))
        _PyUnpickler.load_appends(self)

    def load_append(self) -> None:
        self._count(1)
        _PyUnpickler.load_append(self)

    def load_setitems(self) -> None:
        items = self.stack
        self._count(len(items))
        for i in range(0, len(items), 2):
            self._check_key(items[i])
        _PyUnpickler.load_setitems(self)

    def load_setitem(self) -> None:
        if len(self.stack) >= 2:
            self._check_key(self.stack[-2])
        self._count(1)
        _PyUnpickler.load_setitem(self)

    def load_dict(self) -> None:
        items = self.stack
        self._count(len(items))
        for i in range(0, len(items), 2):
            self._check_key(items[i])
        _PyUnpickler.load_dict(self)

    def load_additems(self) -> None:
        for item in self.stack:
            self._check_key(item)
        self._count(len(self.stack))
        _PyUnpickler.load_additems(self)

    def load_frozenset(self) -> None:
        for item in self.stack:
            self._check_key(item)
        self._count(len(self.stack))
        _PyUnpickler.load_frozenset(self)

    def load_tuple(self) -> None:
        self._count(len(self.stack))
        _PyUnpickler.load_tuple(self)

    def load_list(self) -> None:
        self._count(len(self.stack))
        _PyUnpickler.load_list(self)

    def load_reduce(self) -> None:
        args = self.stack[-1] if self.stack else None
        func = self.stack[-2] if len(self.stack) >= 2 else None
        if func in _HASHED_REAL and isinstance(args, tuple):
            for arg in args:
                if isinstance(arg, (list, tuple, set, frozenset)):
                    self._count(len(arg))
                    for item in arg:
                        self._check_key(item[0] if type(item) is tuple and func in (
                            dict, collections.OrderedDict) and item else item)
        _PyUnpickler.load_reduce(self)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Stub):
            inst.__setstate__(state)
            return
        # real objects: only plain attributes on the container types (state_dict._metadata)
        if (
            isinstance(inst, (collections.OrderedDict, collections.defaultdict))
            and isinstance(state, dict)
            and all(isinstance(k, str) and not k.startswith("__") for k in state)
        ):
            inst.__dict__.update(state)
            return
        raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__} object")

    for _opcode, _method in (
        (pickle.PUT, load_put),
        (pickle.BINPUT, load_binput),
        (pickle.LONG_BINPUT, load_long_binput),
        (pickle.MEMOIZE, load_memoize),
        (pickle.BYTEARRAY8, load_bytearray8),
        (pickle.APPENDS, load_appends),
        (pickle.APPEND, load_append),
        (pickle.SETITEMS, load_setitems),
        (pickle.SETITEM, load_setitem),
        (pickle.DICT, load_dict),
        (pickle.ADDITEMS, load_additems),
        (pickle.FROZENSET, load_frozenset),
        (pickle.TUPLE, load_tuple),
        (pickle.LIST, load_list),
        (pickle.REDUCE, load_reduce),
        (pickle.BUILD, load_build),
        (pickle.FRAME, load_frame),
    ):
        dispatch[_opcode[0]] = _method
    del _opcode, _method


def _new_stub_class(raw: str, namespace: dict[str, Any]) -> type:
    name = raw.rsplit(".", 1)[-1]
    return type(name if name.isidentifier() else "Global", (Stub,), namespace)


#: stand-ins for torch's tensor rebuild functions, shared by every walk in the process
_BUILDER_CLASSES: dict[str, type] = {}


def _builder_class(raw: str) -> type:
    """The stand-in of a tensor rebuild function. Its ``__new__`` returns a TensorRef, so it has
    no instances and logs nothing (the reference is logged by ``find_class``): one class per
    process serves every walk, where a class per walk would cost a ``type()`` per file."""
    cls = _BUILDER_CLASSES.get(raw)
    if cls is None:
        namespace = {"_pi_target": raw, "_pi_log": None,
                     "__new__": _tensor_builder(TENSOR_BUILDERS[raw])}
        cls = _BUILDER_CLASSES[raw] = _new_stub_class(raw, namespace)
    return cls


def _owner_name(obj: Any) -> str | None:
    """The dotted name of what a getattr or reconstructor is applied to."""
    if isinstance(obj, type) and issubclass(obj, Stub):
        return obj._pi_target
    if isinstance(obj, Stub):
        target = type(obj)._pi_target
        if target in ("builtins.__import__", "importlib.import_module") and obj._pi_args:
            module = obj._pi_args[0]
            if isinstance(module, str) and module.replace(".", "").replace("_", "").isalnum():
                return _MODULE_ALIASES.get(module, module)
        return target
    if obj is object:
        return "builtins.object"
    if isinstance(obj, type):
        return f"builtins.{obj.__name__}"
    if obj is None or isinstance(obj, (str, bytes, int, float, list, tuple, dict, set)):
        return f"builtins.{type(obj).__name__}"
    return None


def unpickle(
    data: bytes | IO[bytes], log: GlobalLog, limits: Limits = DEFAULT_LIMITS, depth: int = 0
) -> tuple[Any, RestrictedUnpickler]:
    """Walk one pickle. Raises LoadError with a one-line reason on any malformed input."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    unpickler = RestrictedUnpickler(stream, log, limits, depth)
    return load_one(unpickler), unpickler


def load_one(unpickler: RestrictedUnpickler) -> Any:
    try:
        return unpickler.load()
    except LoadError:
        raise
    except EOFError:
        raise LoadError("truncated pickle: the file ends early") from None
    except RecursionError:
        raise LoadError("pickle nests too deeply to walk") from None
    except MemoryError:
        raise LoadError("pickle asks for more memory than is sane") from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is a one-line load error
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        if "truncated" in detail or "exhausted" in detail or unpickler._left() <= 0:
            raise LoadError("truncated pickle: the file ends early") from None
        raise LoadError(f"corrupt pickle ({type(exc).__name__}: {detail})") from None
