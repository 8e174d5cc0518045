"""onnxruntime-training checkpoints (the ``checkpoint`` file of ``generate_artifacts`` /
``CheckpointState.save_checkpoint``): a FlatBuffer with file identifier ``ODTC``.

Read with a minimal, bounds-checked FlatBuffer walker (no flatbuffers or onnxruntime import);
tensor bytes (``raw_data``) are never touched. Schema (ORT ``ort_training_checkpoint.fbs`` +
``ort.fbs``), field ids in order::

    Checkpoint   {version:int32, module_state:ModuleState, optimizer_groups:[OptimizerGroup],
                  property_bag:PropertyBag}
    ModuleState  {requires_grad_params:[Tensor], frozen_params:[Tensor], is_nominal_state:bool,
                  has_external_data:bool}
    OptimizerGroup {group_name:string, step:int64, initial_learning_rate:float32,
                    optimizer_states:[ParameterOptimizerState]}
    ParameterOptimizerState {param_name:string, momentums:[Tensor]}
    Tensor       {name:string, doc_string:string, dims:[int64], data_type:int32, raw_data:[ubyte],
                  string_data:[string], external_data_offset:int64}

Trainability is stored exactly (the two lists). No module order, layer classes or modes are
stored: ``graph.order`` stays empty and layer kinds unknown.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ...errors import LoadError
from ...graph import (
    Fact,
    LayerKind,
    ModelGraph,
    Optimizer,
    OptimizerGroup,
    ParamOptState,
    Source,
    Tensor,
    TensorRole,
    Trainable,
)
from ...sniff import Sniffed

IDENTIFIER = b"ODTC"
#: ONNX TensorProto.DataType -> dtype name
DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn",
    18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4", 22: "int4",
    23: "float4_e2m1",
}
STORED_EVIDENCE = "listed in the ORT training checkpoint's requires_grad_params/frozen_params"
MAX_ITEMS = 10_000_000


class _Buf:
    """Bounds-checked little-endian FlatBuffer access."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _unpack(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise LoadError(
                f"malformed ORT training checkpoint: read of {size} bytes at offset {pos} is past "
                f"the end of the {len(self.data)}-byte file (truncated?)"
            )
        value: int = struct.unpack_from(fmt, self.data, pos)[0]
        return value

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def i64(self, pos: int) -> int:
        return self._unpack("<q", pos)

    def f32(self, pos: int) -> float:
        size = 4
        if pos < 0 or pos + size > len(self.data):
            raise LoadError(f"malformed ORT training checkpoint: float at offset {pos} out of range")
        value: float = struct.unpack_from("<f", self.data, pos)[0]
        return value

    def u8(self, pos: int) -> int:
        return self._unpack("<B", pos)


class _Table:
    def __init__(self, buf: _Buf, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vtable = pos - buf.i32(pos)
        self.vsize = buf.u16(self.vtable)
        if self.vsize < 4 or self.vsize % 2:
            raise LoadError(f"malformed ORT training checkpoint: bad vtable size {self.vsize}")
        buf.u16(self.vtable + self.vsize - 2)  # the whole vtable is inside the file

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        off = self.buf.u16(self.vtable + slot)
        return self.pos + off if off else None

    def _indirect(self, index: int) -> int | None:
        pos = self._field(index)
        return None if pos is None else pos + self.buf.u32(pos)

    def table(self, index: int) -> _Table | None:
        pos = self._indirect(index)
        return None if pos is None else _Table(self.buf, pos)

    def string(self, index: int) -> str | None:
        pos = self._indirect(index)
        if pos is None:
            return None
        length = self.buf.u32(pos)
        if pos + 4 + length > len(self.buf.data):
            raise LoadError("malformed ORT training checkpoint: string runs past the end of the file")
        try:
            return self.buf.data[pos + 4 : pos + 4 + length].decode("utf-8")
        except UnicodeDecodeError:
            raise LoadError("malformed ORT training checkpoint: string is not valid UTF-8") from None

    def _vector(self, index: int, width: int) -> tuple[int, int]:
        pos = self._indirect(index)
        if pos is None:
            return 0, 0
        count = self.buf.u32(pos)
        if count > MAX_ITEMS or pos + 4 + count * width > len(self.buf.data):
            raise LoadError(
                f"malformed ORT training checkpoint: vector of {count} items runs past the end "
                "of the file"
            )
        return pos + 4, count

    def tables(self, index: int) -> list[_Table]:
        start, count = self._vector(index, 4)
        return [_Table(self.buf, p + self.buf.u32(p)) for p in range(start, start + 4 * count, 4)]

    def int64s(self, index: int) -> list[int]:
        start, count = self._vector(index, 8)
        return [self.buf.i64(p) for p in range(start, start + 8 * count, 8)]

    def scalar(self, index: int, kind: str, default: float = 0) -> float:
        pos = self._field(index)
        if pos is None:
            return default
        return {"i32": self.buf.i32, "i64": self.buf.i64, "u8": self.buf.u8,
                "f32": self.buf.f32}[kind](pos)


def load(path: Path, sniffed: Sniffed) -> ModelGraph:
    """Read an ORT training checkpoint's metadata. Raises LoadError on malformed bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise LoadError("not an ORT training checkpoint: no ODTC file identifier")
    try:
        return _build(path, _Table(_Buf(data), _Buf(data).u32(0)))
    except RecursionError:  # pragma: no cover - tables are not recursive in this schema
        raise LoadError("malformed ORT training checkpoint") from None


def _build(path: Path, root: _Table) -> ModelGraph:
    graph = ModelGraph(path=str(path), format="ort-training", content="checkpoint",
                       framework="onnxruntime-training")
    graph.metadata["checkpoint_version"] = int(root.scalar(0, "i32"))
    graph.ensure_layer("")
    module = root.table(1)
    if module is None:
        raise LoadError("malformed ORT training checkpoint: no module_state")
    graph.metadata["is_nominal_state"] = bool(module.scalar(2, "u8"))
    graph.metadata["has_external_data"] = bool(module.scalar(3, "u8"))
    for field, flag in ((0, Trainable.TRAINABLE), (1, Trainable.FROZEN)):
        for table in module.tables(field):
            name = table.string(0)
            if not name:
                raise LoadError("malformed ORT training checkpoint: parameter without a name")
            if name in graph.tensors:
                raise LoadError(f"malformed ORT training checkpoint: parameter {name} listed twice")
            dtype_id = int(table.scalar(3, "i32"))
            layer = name.rpartition(".")[0]
            graph.add_tensor(Tensor(
                name=name,
                layer=layer,
                role=TensorRole.PARAMETER,
                shape=tuple(table.int64s(2)),
                dtype=DTYPES.get(dtype_id, f"onnx_dtype_{dtype_id}"),
                trainable=flag,
                trainable_fact=Fact(Source.STORED, STORED_EVIDENCE),
            ))
    for layer in graph.layers.values():
        if layer.tensors or not layer.children:
            layer.kind_fact = Fact(Source.UNKNOWN, "ORT training checkpoints store no layer classes")
        else:
            layer.kind = LayerKind.CONTAINER
    graph.order = []
    graph.notes.append(
        "ORT training checkpoints store parameters by name only, not in module order: layer order "
        "unknown"
    )
    _optimizer(graph, root.tables(2))
    return graph


def _optimizer(graph: ModelGraph, groups: list[_Table]) -> None:
    if not groups:
        return
    optimizer = Optimizer(
        name="optimizer_groups",
        alignment="names",
        alignment_fact=Fact(Source.STORED, "each optimizer state names its parameter"),
        exhaustive=True,
    )
    names = [g.string(0) or "" for g in groups]
    known = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
    types = {known.get(n.lower()) for n in names}
    if len(types) == 1 and None not in types:
        optimizer.type = types.pop()
        optimizer.type_fact = Fact(Source.STORED, "optimizer group name")
    else:
        optimizer.type_fact = Fact(Source.UNKNOWN, "the checkpoint names groups, not the optimizer")
    index = 0
    unknown: list[str] = []
    for g, group in enumerate(groups):
        step = int(group.scalar(1, "i64"))
        states = group.tables(3)
        optimizer.groups.append(OptimizerGroup(
            index=g, lr=float(group.scalar(2, "f32")), size=len(states)))
        for state in states:
            name = state.string(0) or ""
            momentums = state.tables(1)
            shape = tuple(momentums[0].int64s(2)) if momentums else None
            if name in graph.tensors:
                optimizer.tracked[name] = ParamOptState(
                    index=index, group=g, has_state=True,
                    slots=tuple(f"momentum{i}" for i in range(len(momentums))),
                    step=float(step), shape=shape,
                )
            else:
                unknown.append(name)
            index += 1
    optimizer.size = index
    if unknown:
        graph.notes.append(
            f"optimizer state for {len(unknown)} name(s) not among the checkpoint's parameters "
            f"(e.g. {unknown[0]!r})"
        )
    graph.metadata["optimizer_groups"] = names
    graph.optimizers.append(optimizer)
