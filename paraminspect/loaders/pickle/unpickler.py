"""A restricted unpickler that never runs anything a pickle names.

Every global the pickle references resolves to an inert stand-in class (a *stub*) that records its
dotted name and the arguments it was given; a handful of harmless builtins (``OrderedDict``,
``set``, ...) are real. Tensor storages are recorded from their persistent ids and never read.
The result is a tree of plain Python objects, stubs and :class:`TensorRef` records that a loader
interprets, plus a :class:`GlobalLog` of every global and how it was used. What globals and
persistent ids resolve to is :mod:`.resolution`; here are the opcode loop and its bounds.
"""

from __future__ import annotations

import collections
import gc
import io
import pickle
import struct

from ...errors import LoadError
from . import fastloop
from .limits import DEFAULT_LIMITS, Limits
from .resolution import GlobalResolution
from .stubs import GlobalLog, Stub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    from .tensors import StorageRef


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


class RestrictedUnpickler(GlobalResolution, _PyUnpickler):  # type: ignore[misc]
    """Unpickler whose globals are stubs; ``persistent_load`` yields StorageRefs.

    Built on Python's own unpickler so that the memo is sparse (a 13-byte pickle cannot make it
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
        # The memo: picklers number what they memoize 0, 1, 2, ... in order, so those indices
        # live in a list (a dict of 800,000 int keys costs 60 MB more at 100,000 tensors); any
        # other index lives in the ``memo`` dict. No index is in both, so the number of memoized
        # objects is the sum of the two sizes.
        self.memo_dense: list[Any] = []

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

    def memo_size(self) -> int:
        return len(self.memo_dense) + len(self.memo)

    def _memo_put(self, index: int) -> None:
        if index < 0 or index >= self.limits.max_memo_index:
            raise LoadError(f"pickle memo index {index} is out of bounds: corrupt or hostile")
        if (
            self.memo_size() >= self.limits.max_memo
            and index >= len(self.memo_dense) and index not in self.memo
        ):
            raise LoadError(
                f"pickle memo holds more than {self.limits.max_memo:,} objects: refused"
            )
        self._memo_store(index, self.stack[-1])

    def _memo_store(self, index: int, value: Any) -> None:
        dense = self.memo_dense
        if index < len(dense):
            dense[index] = value
        elif index == len(dense):
            dense.append(value)
            if self.memo:
                self.memo.pop(index, None)
        else:
            self.memo[index] = value

    def _memo_get(self, index: int) -> Any:
        dense = self.memo_dense
        if 0 <= index < len(dense):
            return dense[index]
        try:
            return self.memo[index]
        except KeyError:
            raise pickle.UnpicklingError(f"Memo value not found at index {index}") from None

    def load_get(self) -> None:
        self.append(self._memo_get(int(self.readline()[:-1])))

    def load_binget(self) -> None:
        self.append(self._memo_get(self.read(1)[0]))

    def load_long_binget(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        self.append(self._memo_get(index))

    def load_put(self) -> None:
        line = self.readline()[:-1]
        if not line.isdigit() or len(line) > 12:
            raise pickle.UnpicklingError("invalid PUT index")
        self._memo_put(int(line))

    def load_binput(self) -> None:
        if self.memo_size() >= self.limits.max_memo:
            self._memo_put(self.read(1)[0])
        else:
            value = self.stack[-1]  # read before the argument, as Python's unpickler does
            self._memo_store(self.read(1)[0], value)

    def load_long_binput(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        if index < self.limits.max_memo_index and self.memo_size() < self.limits.max_memo:
            self._memo_store(index, self.stack[-1])
        else:
            self._memo_put(index)

    def load_memoize(self) -> None:
        self._memo_put(self.memo_size())

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
        (pickle.GET, load_get),
        (pickle.BINGET, load_binget),
        (pickle.LONG_BINGET, load_long_binget),
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
