"""safetensors loader: real ``safetensors.torch.save_file`` files (fixtures/make_safetensors.py),
header validation like the safetensors library, and the ``paraminspect.trainable`` convention.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import paraminspect
from paraminspect import LayerKind, Trainable
from paraminspect.errors import LoadError
from paraminspect.graph import OrderSource

from .conftest import FIXTURES, findings, has_module

ST = FIXTURES / "safetensors"
W, E = "warning", "error"

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    # plain state dict: no trainability, no order -> nothing can be proven
    "cnn_clean.safetensors": set(),
    "good_minimal.safetensors": set(),
    # paraminspect.trainable metadata: head frozen, backbone trains -> inverted freeze
    "cnn_head_frozen.safetensors": {("PI102", "head", W)},
    # the usual fine-tuning freeze: nothing wrong
    "cnn_backbone_frozen.safetensors": set(),
    # each breaks one rule the safetensors library enforces
    "bad_length_too_big.safetensors": {("PI001", "", E)},
    "bad_overlap.safetensors": {("PI001", "", E)},
    "bad_past_end.safetensors": {("PI001", "", E)},
    "bad_dtype.safetensors": {("PI001", "", E)},
    "bad_not_json.safetensors": {("PI001", "", E)},
    "bad_size_mismatch.safetensors": {("PI001", "", E)},
}


def test_every_fixture_has_an_expectation():
    assert {p.name for p in ST.glob("*.safetensors")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings(name: str) -> None:
    assert findings(ST / name) == EXPECTED[name]


def test_clean_state_dict_graph() -> None:
    graph = paraminspect.load(ST / "cnn_clean.safetensors")
    assert graph.format == "safetensors" and graph.content == "state_dict"
    assert {"backbone.conv", "backbone.bn", "head"} <= set(graph.layers)
    assert graph.layers["backbone.bn"].kind is LayerKind.BATCHNORM
    assert graph.tensors["backbone.bn.running_var"].role.value == "buffer"
    assert graph.tensors["backbone.bn.num_batches_tracked"].dtype == "int64"
    assert graph.tensors["backbone.conv.weight"].shape == (4, 3, 3, 3)
    assert all(t.trainable is Trainable.UNKNOWN for t in graph.tensors.values())
    assert graph.order == []  # file order is dtype-then-name, not module order
    assert graph.metadata["safetensors_metadata"] == {"format": "pt"}


def test_trainable_convention() -> None:
    graph = paraminspect.load(ST / "cnn_head_frozen.safetensors")
    assert graph.tensors["head.weight"].trainable is Trainable.FROZEN
    assert graph.tensors["backbone.conv.weight"].trainable is Trainable.TRAINABLE
    assert graph.tensors["head.weight"].trainable_fact.evidence == "paraminspect.trainable metadata"
    assert graph.order_source is OrderSource.REGISTRATION
    leaves = [p for p in graph.order if graph.own_parameters(p)]
    assert leaves == ["backbone.conv", "backbone.bn", "head"]


def _write(path: Path, header: dict | bytes, data: bytes) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [1], 12, 16)}, 16, "gap of 4 bytes"),
        ({"a": _entry("F32", [2], 0, 8)}, 12, "4 bytes after the last tensor"),
        ({"a": _entry("F32", [-1], 0, 8)}, 8, "non-negative"),
        ({"a": _entry("F32", [2], 8, 0)}, 8, "end before they begin"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, 8, "two non-negative"),
        ({"a": _entry("F4", [3], 0, 2)}, 2, "needs 1.5 bytes"),
        ({"__metadata__": {"k": 1}, "a": _entry("U8", [1], 0, 1)}, 1, "strings to strings"),
        (b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {}}', 1, "duplicate"),
        # the later duplicate is the valid one: the plain parse alone would accept it
        (b'{"a": {}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', 1, "duplicate"),
        (b'{"a": {"dtype": "U8", "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', 1,
         "duplicate"),
        (b'["not", "an", "object"]', 0, "start with '{'"),
        (b'{"a": "\xff"}', 0, "UTF-8"),
    ],
)
def test_header_validation(tmp_path: Path, header, data: int, message: str) -> None:
    path = _write(tmp_path / "x.safetensors", header, bytes(data))
    if isinstance(header, bytes) and not header.startswith(b"{"):
        from paraminspect.loaders.safetensors.model import load
        from paraminspect.sniff import Sniffed

        with pytest.raises(LoadError, match=message):
            load(path, Sniffed("safetensors"))
        return
    with pytest.raises(LoadError, match=message) as info:
        paraminspect.load(path)
    assert "\n" not in str(info.value)
    if has_module("safetensors"):  # the library refuses the same files
        from safetensors import safe_open

        with pytest.raises(Exception), safe_open(str(path), "np") as handle:  # noqa: B017
            list(handle.keys())


def test_header_length_over_100_mb(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", 100_000_001) + b'{"a": {}}')
    with pytest.raises(LoadError, match="100 MB"):
        paraminspect.load(path)


def test_zero_size_tensor_and_sub_byte_dtypes(tmp_path: Path) -> None:
    header = {"e": _entry("F32", [0, 3], 0, 0), "f": _entry("F4", [4], 0, 2),
              "g": _entry("F6_E2M3", [4], 2, 5)}
    graph = paraminspect.load(_write(tmp_path / "ok.safetensors", header, bytes(5)))
    assert graph.tensors["e"].shape == (0, 3) and graph.tensors["g"].dtype == "float6_e2m3"


def test_loading_imports_no_framework() -> None:
    code = (
        "import sys, paraminspect\n"
        f"paraminspect.load({str(ST / 'cnn_head_frozen.safetensors')!r})\n"
        "print(','.join(m for m in ('safetensors', 'torch', 'numpy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("names", [
    ["a.b", "a.b.c", "a.bz"],  # layer a's tensors are not adjacent in name order
    ["x", "y.w", "y.z.w", "y.b", "", ".w", "a..b", "z.0.w", "z.0.b", "z.10.w", "z.2.w"],
    [f"m.{i}.p{j}.weight" for i in range(12) for j in range(3)][::-1],  # not in name order
    ["m.0.weight", "m.0.bias", "m.0.running_var", "m.0.running_mean", "m.1.weight"],
])
@pytest.mark.parametrize("compact", [True, False])
def test_layers_as_one_tensor_at_a_time_would_build_them(
    tmp_path: Path, names: list[str], compact: bool,
) -> None:
    """The column-wise building equals adding tensors one by one in name order: layers and
    their order, children, owned tensors; for the column reader and the json path alike."""
    from paraminspect.graph import ModelGraph

    header, position = {}, 0
    for i, name in enumerate(names):  # contiguous, in header order
        dtype, size = ("F32", 4) if i % 3 else ("I64", 8)
        header[name] = _entry(dtype, [1], position, position + size)
        position += size
    text = json.dumps(header, separators=(",", ":") if compact else None).encode()
    graph = paraminspect.load(_write(tmp_path / "m.safetensors", text, bytes(position)))
    expected = ModelGraph(path="", format="safetensors")
    expected.ensure_layer("")
    for name in sorted(names):
        expected.ensure_layer(name.rpartition(".")[0]).tensors.append(name)
    assert list(graph.layers) == list(expected.layers)
    for path, layer in expected.layers.items():
        assert graph.layers[path].children == layer.children
        assert graph.layers[path].tensors == layer.tensors
    assert list(graph.tensors) == sorted(names)
    assert [t.role.value for t in graph.tensors.values()] == [
        "buffer" if header[n]["dtype"] == "I64" or n.endswith(("running_var", "running_mean"))
        else "parameter" for n in sorted(names)]
