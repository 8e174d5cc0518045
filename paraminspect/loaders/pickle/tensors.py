"""What torch's tensor rebuild functions and persistent ids become in a walk: records of storages
and tensors (metadata only; no tensor bytes are read), and the stand-ins of the rebuild functions
that build them."""

from __future__ import annotations

from collections.abc import Callable

from ...record import Record
from .stubs import Stub, new_stub_class

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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

    __slots__ = ("storage", "offset", "shape", "requires_grad", "is_parameter", "dtype", "stride")

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
        #: element strides, for readers of the tensor's bytes (``diff``); None when not stored
        self.stride: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        kind = "Parameter" if self.is_parameter else "Tensor"
        return f"<{kind} {self.dtype} {self.shape} requires_grad={self.requires_grad}>"



#: reads the value of a 0-d tensor (an optimizer's ``step``) from its storage, if it can
ScalarReader = Callable[[TensorRef], "float | None"]


def _tensor_builder(kind: str) -> Any:
    """A stub class whose construction yields a TensorRef (rebuild functions are REDUCE'd)."""

    def make(cls: type, *args: Any, **kwargs: Any) -> Any:
        return _rebuild(kind, args)

    return make


def as_shape(value: Any) -> tuple[int, ...] | None:
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


def dtype_name(value: Any) -> str | None:
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
        as_shape(args[2] if n > 2 else None),
        requires_grad if isinstance(requires_grad, bool) else None,
        dtype_name(args[6] if n > 6 else None) if kind == "tensor_v3" else None,
    )
    ref.stride = as_shape(args[3] if n > 3 else None)
    return ref


#: rebuild kinds that make a tensor without a storage -> the argument positions of its shape,
#: dtype and requires_grad (None: not an argument of that kind)
_STORAGELESS: dict[str, tuple[int | None, int, int]] = {
    "meta": (1, 0, 3), "wrapper_subclass": (2, 1, 7), "numpy": (None, 1, 3),
}


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
    positions = _STORAGELESS.get(kind)
    if positions is not None:
        shape_at, dtype_at, grad_at = positions
        requires_grad = arg(grad_at)
        return TensorRef(
            None,
            shape=as_shape(arg(shape_at)) if shape_at is not None else None,
            dtype=dtype_name(arg(dtype_at)),
            requires_grad=requires_grad if isinstance(requires_grad, bool) else None,
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



_BUILDER_CLASSES: dict[str, type] = {}


def builder_class(raw: str) -> type:
    """The stand-in of a tensor rebuild function. Its ``__new__`` returns a TensorRef, so it has
    no instances and logs nothing (the reference is logged by ``find_class``): one class per
    process serves every walk, where a class per walk would cost a ``type()`` per file."""
    cls = _BUILDER_CLASSES.get(raw)
    if cls is None:
        namespace = {"_pi_target": raw, "_pi_log": None,
                     "__new__": _tensor_builder(TENSOR_BUILDERS[raw])}
        cls = _BUILDER_CLASSES[raw] = new_stub_class(raw, namespace)
    return cls
