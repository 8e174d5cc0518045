"""Model folders: sharded checkpoints, HF folders and PEFT adapters are each one model.

Fixtures: fixtures/folders/ (made by fixtures/make_folders.py, see its README.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paraminspect.engine import check_file, iter_model_files
from paraminspect.errors import LoadError
from paraminspect.graph import LayerKind, Source, TensorRole, Trainable
from paraminspect.loaders import load

from .conftest import FIXTURES, TORCH_FIXTURES, findings

FOLDERS = FIXTURES / "folders"
VERSIONS = json.loads((FOLDERS / "VERSIONS.json").read_text())
E = "error"

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "hf_bert": set(),
    "sharded_safetensors": set(),
    "sharded_missing_shard": {("PI001", "", E)},
    "sharded_bin": set(),
    "peft_lora": set(),
    "peft_lora_with_base": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_folder_findings(name: str) -> None:
    assert findings(FOLDERS / name) == EXPECTED[name]


def test_every_folder_has_an_expectation() -> None:
    assert {p.name for p in FOLDERS.iterdir() if p.is_dir()} == set(EXPECTED)


def test_sharded_safetensors_merges_every_shard() -> None:
    graph = load(FOLDERS / "sharded_safetensors")
    assert graph.format == "safetensors" and graph.path == str(FOLDERS / "sharded_safetensors")
    assert graph.metadata["shards"] == 2 and len(graph.tensors) == VERSIONS["bert_tensors"]
    index = json.loads((FOLDERS / "sharded_safetensors/model.safetensors.index.json").read_text())
    assert set(graph.tensors) == set(index["weight_map"])
    assert graph.metadata["architecture"] == "BertForSequenceClassification"
    assert graph.root.class_name == "BertForSequenceClassification"
    assert graph.root.kind_fact.source is Source.STORED
    single = load(FOLDERS / "hf_bert")
    assert {(t.name, t.shape, t.dtype) for t in single.tensors.values()} == {
        (t.name, t.shape, t.dtype) for t in graph.tensors.values()
    }


def test_missing_shard_is_named() -> None:
    with pytest.raises(LoadError, match=f"shard {VERSIONS['missing_shard']} named by "
                       "model.safetensors.index.json is missing"):
        load(FOLDERS / "sharded_missing_shard")


def test_sharded_bin_folder() -> None:
    graph = load(FOLDERS / "sharded_bin")
    assert graph.format == "pytorch" and graph.metadata["index"] == "pytorch_model.bin.index.json"
    assert list(graph.tensors) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert graph.tensors["fc2.weight"].shape == (4, 32)


def test_peft_adapter_only() -> None:
    graph = load(FOLDERS / "peft_lora")
    assert graph.content == "adapter" and graph.metadata["peft_type"] == "LORA"
    assert set(graph.tensors) == {"fc1.lora_A.weight", "fc1.lora_B.weight"}
    for tensor in graph.tensors.values():
        assert tensor.role is TensorRole.PARAMETER and tensor.trainable is Trainable.TRAINABLE
        assert tensor.trainable_fact.source is Source.INFERRED
        assert tensor.trainable_fact.evidence == "PEFT adapter weights are the trained parameters"
    assert graph.metadata["trainable_params"] == VERSIONS["peft_trainable"]
    assert "all_params" not in graph.metadata
    assert any("trainable fraction is unknown" in note for note in graph.notes)


def test_peft_with_base_reports_trainable_fraction_like_peft() -> None:
    graph = load(FOLDERS / "peft_lora_with_base")
    trainable, total = VERSIONS["peft_trainable"], VERSIONS["peft_all"]
    assert graph.metadata["trainable_params"] == trainable
    assert graph.metadata["all_params"] == total
    assert graph.metadata["trainable_percent"] == round(100 * trainable / total, 4)
    assert f"trainable params: {trainable:,} || all params: {total:,}" in " ".join(graph.notes)
    base = graph.tensors["fc1.weight"]
    assert base.trainable is Trainable.FROZEN and base.trainable_fact.source is Source.INFERRED
    assert graph.layers["fc1"].kind is not LayerKind.BATCHNORM


def test_a_model_folder_is_one_model_and_other_files_are_still_checked(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FOLDERS / "sharded_safetensors", run / "checkpoint-1")
    shutil.copy(TORCH_FIXTURES / "evil.pt", run / "checkpoint-1" / "training_args.bin")
    shutil.copy(TORCH_FIXTURES / "cnn_sd_clean.pt", run / "other.pt")
    found = list(iter_model_files([run]))
    # training_args.bin is part of the model folder, and its unsafe globals are the model's
    assert found == [run / "other.pt", run / "checkpoint-1"]
    assert list(iter_model_files([run / "checkpoint-1"]))[0] == run / "checkpoint-1"
    assert ("PI002", "training_args.bin", "error") in findings(run / "checkpoint-1")


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LoadError, match="not a model folder"):
        load(tmp_path)


def test_broken_index(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(FOLDERS / "sharded_safetensors", folder)
    (folder / "model.safetensors.index.json").write_text("{")
    # the folder is reported unreadable; with no usable index its shards are checked one by one
    assert list(iter_model_files([folder])) == [
        folder, folder / "model-00001-of-00002.safetensors",
        folder / "model-00002-of-00002.safetensors",
    ]
    report = check_file(folder)
    assert [(f.code, f.location) for f in report.findings] == [("PI001", "")]
    assert "model.safetensors.index.json is not readable JSON" in (report.error or "")
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"x": "../../etc/passwd"}}))
    with pytest.raises(LoadError, match="no valid weight_map"):
        load(folder)


def test_loading_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from paraminspect.loaders import load\n"
        f"for name in {sorted(n for n in EXPECTED if n != 'sharded_missing_shard')!r}:\n"
        f"    load(__import__('pathlib').Path({str(FOLDERS)!r}) / name)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
