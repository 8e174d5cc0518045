"""TensorFlow SavedModels and tf.train.Checkpoint folders against the exact findings they must
produce, plus the readers' guarantees (no TensorFlow import, bounded on hostile input).

The fixtures are real tf_keras / Keras 3 / TensorFlow runs made by fixtures/make_tf.py. An empty
set means the folder is clean: a finding there is a false positive.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect import api, check
from paraminspect.engine import iter_model_files
from paraminspect.errors import LoadError
from paraminspect.graph import Mode, Source, TensorRole, Trainable
from paraminspect.loaders.tf.bundle import read_index
from paraminspect.sniff import sniff

from .conftest import FIXTURES, ROOT, findings

TF = FIXTURES / "tf"
ENC = ("enc.enc_dense", "enc.enc_bn")

EXPECTED: dict[str, set[tuple[str, str]]] = {
    # tf_keras save_format="tf": compile, fit, freeze enc, fit again without compile()
    "tfk_sm_frozen_after_compile": {("PI301", p) for p in ENC},
    "tfk_sm_clean": set(),
    # frozen, compiled, fitted, then unfrozen: enc trainable without optimizer slots
    "tfk_sm_unfrozen_after_compile": {("PI302", p) for p in ENC},
    # BatchNormalization and Dropout called with training=True inside the model
    "tfk_sm_train_mode": {("PI202", "bn"), ("PI202", "drop")},
    # Keras 3 export whose serving endpoint runs the model with training=True
    "k3_export_train": {("PI202", "enc.enc_bn"), ("PI202", "drop")},
    "k3_export_clean": set(),
    # tf.saved_model.save of a fitted Keras 3 model (its optimizer saved inside)
    "k3_tf_saved_model": set(),
    # checkpoints store no trainable flag: coverage is read, no freeze rule can speak
    "ckpt_k3": set(),
    "ckpt_tfk": set(),
    "ckpt_tfk_legacy": set(),
    "tf1_saver": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_findings(name: str) -> None:
    got = {(code, location) for code, location, _ in findings(TF / name)}
    assert got == EXPECTED[name]


def test_saved_model_pb_given_directly_is_a_saved_model() -> None:
    pb = TF / "k3_export_train" / "saved_model.pb"
    assert sniff(pb).format == "tf-savedmodel"
    got = {(code, location) for code, location, _ in findings(pb)}
    assert got == EXPECTED["k3_export_train"]


def test_bare_index_prefix_is_a_checkpoint() -> None:
    index = TF / "ckpt_k3" / "ckpt-1.index"
    assert sniff(index).format == "tf-bundle-index"
    graph = api.load(index)
    assert graph.format == "tf-checkpoint"
    assert set(graph.optimizers[0].tracked) == {"head.kernel", "head.bias"}


def test_folder_scan_checks_each_model_once() -> None:
    files = sorted(p.relative_to(TF).as_posix() for p in iter_model_files([TF]))
    assert files == sorted(EXPECTED)
    report = check(TF)
    assert all(f.error is None for f in report.files)


def test_tf_keras_trainability_comes_from_keras_metadata() -> None:
    graph = api.load(TF / "tfk_sm_clean")
    kernel = graph.tensors["enc.enc_dense.kernel"]
    # SavedVariable.trainable is true for this frozen kernel: the metadata decides
    assert kernel.trainable is Trainable.FROZEN and kernel.trainable_fact.source is Source.STORED
    assert "keras_metadata.pb" in kernel.trainable_fact.evidence
    assert graph.tensors["head.kernel"].trainable is Trainable.TRAINABLE
    assert graph.tensors["enc.enc_bn.moving_mean"].role is TensorRole.BUFFER
    assert graph.layers["enc.enc_bn"].mode is Mode.EVAL
    opt = graph.optimizers[0]
    assert opt.type == "Adam" and opt.exhaustive and set(opt.tracked) == {"head.kernel", "head.bias"}


def test_optimizer_objects_are_not_model_variables() -> None:
    graph = api.load(TF / "k3_tf_saved_model")
    assert {t.layer for t in graph.tensors.values()} == {"enc.enc_dense", "enc.enc_bn", "head"}
    assert any("optimizer variables are saved" in n for n in graph.notes)


def test_keras3_export_has_no_trainability() -> None:
    graph = api.load(TF / "k3_export_clean")
    assert graph.trainability_source() is Source.UNKNOWN
    assert graph.tensors["enc.enc_bn.gamma"].role is TensorRole.PARAMETER
    assert graph.tensors["seed_generator.seed_generator_state"].role is TensorRole.BUFFER
    assert not any(layer.mode is Mode.TRAIN for layer in graph.layers.values())


@pytest.mark.parametrize("name,names", [
    ("ckpt_k3", ("enc.enc_dense.kernel", "head.kernel")),
    ("ckpt_tfk", ("enc_dense.kernel", "head.kernel")),
    ("ckpt_tfk_legacy", ("enc_dense.kernel", "head.kernel")),
    ("tf1_saver", ("emb.table", "dense.kernel")),  # slots dense/kernel/Adam, not tensors
])
def test_checkpoint_optimizer_coverage(name: str, names: tuple[str, str]) -> None:
    graph = api.load(TF / name)
    frozen, trained = names
    assert {frozen, trained} <= set(graph.tensors)
    (opt,) = graph.optimizers
    assert opt.exhaustive and trained in opt.tracked and frozen not in opt.tracked
    assert graph.trainability_source() is Source.UNKNOWN
    assert sum("stores no trainable flag" in n for n in graph.notes) == 1
    assert not any(n.endswith(("Adam", "Adam_1", "_power")) for n in graph.tensors)


def test_index_entries_without_tensor_bytes() -> None:
    bundle = read_index(TF / "tfk_sm_clean" / "variables" / "variables.index")
    entry = bundle.entries["layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    assert (entry.dtype, entry.shape, entry.size) == ("float32", (4, 2), 32)
    assert bundle.num_shards == 1


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(TF / name, target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garbage", "magic-only"])
def test_hostile_index_is_one_line_error(tmp_path: Path, damage: str) -> None:
    folder = _copy("ckpt_tfk", tmp_path)
    index = folder / "ckpt-1.index"
    raw = index.read_bytes()
    if damage == "truncate":
        index.write_bytes(raw[: len(raw) // 2] + raw[-48:])
    elif damage == "garbage":
        index.write_bytes(b"\xff" * (len(raw) - 8) + raw[-8:])
    else:
        index.write_bytes(b"\x00" * 40 + raw[-8:])
    report = check(folder)
    (file,) = report.files
    assert file.error and "\n" not in file.error and "internal error" not in file.error
    assert [f.code for f in file.findings] == ["PI001"]


def test_missing_data_shard_and_truncated_saved_model(tmp_path: Path) -> None:
    folder = _copy("ckpt_k3", tmp_path)
    (folder / "ckpt-1.data-00000-of-00001").unlink()
    with pytest.raises(LoadError, match="data shard|checkpoint folder"):
        api.load(folder)
    model = _copy("k3_export_clean", tmp_path)
    pb = model / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:5000])
    with pytest.raises(LoadError, match="saved_model.pb"):
        api.load(model)


def test_check_imports_no_tensorflow() -> None:
    code = (
        "import sys; from paraminspect import check; "
        f"r = check({str(TF)!r}); "
        "assert sum(len(f.findings) for f in r.files) == 8; "
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras', 'google.protobuf') "
        "if m in sys.modules]; print(bad); assert not bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _table(entries: list[tuple[int, bytes, bytes]]) -> bytes:
    """A sorted table with one data block of ``(shared, key suffix, value)`` entries."""
    def block(items: list[tuple[int, bytes, bytes]]) -> bytes:
        body = b"".join(_varint(shared) + _varint(len(k)) + _varint(len(v)) + k + v
                        for shared, k, v in items)
        return body + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")

    data = block(entries)
    index = block([(0, b"\xff", _varint(0) + _varint(len(data)))])
    index_offset = len(data) + 5
    footer = (_varint(0) + _varint(0) + _varint(index_offset) + _varint(len(index))).ljust(40, b"\0")
    return (data + b"\0" * 5 + index + b"\0" * 5 + footer
            + (0xDB4775248B80FB57).to_bytes(8, "little"))


@pytest.mark.parametrize("entries,message", [
    ([(0, b"a", b"")], "without a tensor-bundle header"),  # another kind of sorted table
    ([(0, b"", b"")] + [(i * 60000, b"k" * 60000, b"") for i in range(3)], "key longer"),
])
def test_handmade_tables_are_refused(tmp_path: Path, entries: list, message: str) -> None:
    index = tmp_path / "x.index"
    index.write_bytes(_table(entries))
    assert sniff(index).format == "tf-bundle-index"
    with pytest.raises(LoadError, match=message):
        read_index(index)
