"""1 GB model files written sparse (holes instead of weight bytes), for tests that must not pay
for 1 GB of disk writes: a safetensors file, a torch zip and an ONNX model with inline weights.

The structure (headers, zip directory, protobuf tags) is real; the weight bytes are zeros the
file system never stores. paraminspect reads none of them, which is what the tests measure.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

LAYERS = 256
DIM = 1024  # 256 x 1024 x 1024 float32 = 1 GiB
TENSOR_BYTES = DIM * DIM * 4


def safetensors_1gb(path: Path, layers: int = LAYERS, dim: int = DIM) -> int:
    tensor_bytes = dim * DIM * 4
    header: dict[str, object] = {}
    for i in range(layers):
        begin = i * tensor_bytes
        header[f"layers.{i}.weight"] = {
            "dtype": "F32", "shape": [dim, DIM], "data_offsets": [begin, begin + tensor_bytes]
        }
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + layers * tensor_bytes)
    return layers


def torch_zip_1gb(path: Path, layers: int = LAYERS) -> int:
    """A torch.save archive: data.pkl from a real torch.save of 256 one-element tensors, each
    storage member 4 MB of holes (the loader checks members are at least as large as needed)."""
    import torch

    buffer = io.BytesIO()
    torch.save({f"layers.{i}.weight": torch.zeros(1) for i in range(layers)}, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as small:
        members = {info.filename: small.read(info) for info in small.infolist()}
    crc = zlib.crc32(bytes(TENSOR_BYTES))
    directory = []
    with open(path, "wb") as f:
        for name, data in members.items():
            sparse = "/data/" in name and not name.endswith(".pkl")
            size = TENSOR_BYTES if sparse else len(data)
            offset = f.tell()
            encoded = name.encode()
            f.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0,
                                crc if sparse else zlib.crc32(data), size, size, len(encoded), 0))
            f.write(encoded)
            if sparse:
                f.seek(size, 1)
            else:
                f.write(data)
            directory.append((encoded, offset, size, crc if sparse else zlib.crc32(data)))
        start = f.tell()
        for encoded, offset, size, member_crc in directory:
            # offsets past 4 GiB (the 10 GB benchmark file) go in a zip64 extra field
            extra = struct.pack("<HHQ", 1, 8, offset) if offset >= 0xFFFFFFFF else b""
            f.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0,
                                member_crc, size, size, len(encoded), len(extra), 0, 0, 0, 0,
                                min(offset, 0xFFFFFFFF)))
            f.write(encoded + extra)
        end = f.tell()
        count = len(directory)
        if start >= 0xFFFFFFFF:
            f.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                                end - start, start))
            f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1))
        f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, end - start,
                            min(start, 0xFFFFFFFF), 0))
    return layers


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_1gb(path: Path, layers: int = LAYERS, dim: int = DIM, dense: bool = False) -> int:
    """A ModelProto with 256 MatMul nodes and 256 inline 1024x1024 float32 initializers; their
    bytes are holes, or written zeros when ``dense`` (then they are in the page cache)."""
    tensor_bytes = dim * DIM * 4
    nodes = b"".join(
        _field(1, _field(1, f"h{i}".encode()) + _field(1, f"layers.{i}.weight".encode())
               + _field(2, f"h{i + 1}".encode()) + _field(3, f"/layers.{i}/MatMul".encode())
               + _field(4, b"MatMul"))
        for i in range(layers)
    )
    heads = []
    for i in range(layers):
        meta = _varint(1 << 3) + _varint(dim) + _varint(1 << 3) + _varint(DIM)
        meta += _varint(2 << 3) + _varint(1)
        meta += _field(8, f"layers.{i}.weight".encode())
        raw_head = _varint(9 << 3 | 2) + _varint(tensor_bytes)
        body_len = len(meta) + len(raw_head) + tensor_bytes
        heads.append(_varint(5 << 3 | 2) + _varint(body_len) + meta + raw_head)
    graph_len = len(nodes) + sum(len(h) + tensor_bytes for h in heads)
    with open(path, "wb") as f:
        f.write(_varint(1 << 3) + _varint(8))  # ir_version 8
        f.write(_field(8, _varint(2 << 3) + _varint(17)))  # opset_import {version: 17}
        f.write(_varint(7 << 3 | 2) + _varint(graph_len) + nodes)
        for head in heads:
            f.write(head)
            if dense:
                f.write(bytes(tensor_bytes))
            else:
                f.seek(tensor_bytes, 1)
        f.truncate(f.tell())
    return layers
