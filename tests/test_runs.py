"""Training-run folders and framework checkpoints are each one model, fused with their optimizer.

Fixtures: fixtures/runs/ (made by fixtures/make_runs.py from tiny real runs, see its README.md).
PI002 on companion pickles is judged by the pickle-safety policy and is not asserted here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from paraminspect.engine import check_file, check_paths, iter_model_files
from paraminspect.errors import LoadError
from paraminspect.graph import Source, Trainable
from paraminspect.loaders import load
from paraminspect.loaders.runs import folder_kind

from .conftest import FIXTURES, findings

RUNS = FIXTURES / "runs"
W = "warning"
BERT_LAYERS = [
    "bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
    "bert.embeddings.token_type_embeddings", "bert.embeddings.LayerNorm",
    "bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.key",
    "bert.encoder.layer.0.attention.self.value", "bert.encoder.layer.0.attention.output.dense",
    "bert.encoder.layer.0.attention.output.LayerNorm", "bert.encoder.layer.0.intermediate.dense",
    "bert.encoder.layer.0.output.dense", "bert.encoder.layer.0.output.LayerNorm",
    "bert.pooler.dense",
]

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "trainer_frozen_after_optim/checkpoint-3": set(),  # saved before the freeze
    "trainer_frozen_after_optim/checkpoint-6": {("PI301", layer, W) for layer in BERT_LAYERS},
    "trainer_head_not_in_optim/checkpoint-6": {("PI102", "classifier", W)},
    "trainer_clean/checkpoint-6": set(),
    "trainer_clean": set(),  # save_model() output: config.json, model.safetensors, training_args.bin
    "trainer_frozen_backbone_clean/checkpoint-6": set(),
    "trainer_peft_clean/checkpoint-6": set(),  # LoRA adapter + optimizer over the adapter only
    # embeddings frozen: their LayerNorm shares shapes with trained slots, so a few parameters
    # stay unknown; the head is known frozen and the encoder known trainable all the same
    "trainer_embeddings_and_head_frozen/checkpoint-6": {("PI102", "classifier", W)},
    "trainer_embeddings_frozen_clean/checkpoint-6": set(),
    "accelerate_frozen_after_optim": {("PI301", "backbone.0", W), ("PI301", "backbone.2", W)},
    "accelerate_bin_frozen_after_optim": {("PI301", "backbone.0", W), ("PI301", "backbone.2", W)},
    # the 8x8 head shares shapes with the backbone: only the uniquely shaped layer is named
    "accelerate_ambiguous_frozen_after_optim": {("PI301", "backbone.0", W)},
    "accelerate_head_not_in_optim": {("PI102", "head", W)},
    "accelerate_clean": set(),
    "lightning_finetune_frozen_after_optim.ckpt": {("PI301", "head.0", W)},
    "lightning_finetune_clean.ckpt": set(),  # the backbone's appended group starts late by design
    # conv1 froze at step 2 of 4 while the model stayed in train mode: its BatchNorms drifted
    "timm_frozen_after_optim.pth.tar": {("PI301", layer, W) for layer in
                                        ("conv1.0", "conv1.1", "conv1.3", "conv1.4", "conv1.6")}
    | {("PI201", "conv1.1", W), ("PI201", "conv1.4", W)},
    "timm_clean.pth.tar": set(),
    "ultralytics_head_frozen.pt": {("PI102", "model.4", W)},  # freeze=[4]: the Detect head
    "ultralytics_clean.pt": set(),  # the saved EMA is frozen and in eval mode by design
    "compile_whole_clean.pt": set(),
    "compile_ckpt_clean.pt": set(),
}


def _without_pi002(path: Path) -> set[tuple[str, str, str]]:
    report = check_file(path)  # a folder is one model here, not walked
    return {
        (f.code, location, f.severity.value)
        for f in report.findings
        if f.code != "PI002"
        for location in f.all_locations
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_run_findings(name: str) -> None:
    assert _without_pi002(RUNS / name) == EXPECTED[name]


def test_every_fixture_has_an_expectation() -> None:
    tops = {p.name for p in RUNS.iterdir() if p.name not in ("README.md", "VERSIONS.json")}
    assert tops == {name.split("/")[0] for name in EXPECTED}


def test_companion_files_are_parts_of_their_model_never_pi001() -> None:
    report = check_paths([RUNS])
    paths = {Path(f.path).relative_to(RUNS).as_posix() for f in report.files}
    assert paths == set(EXPECTED)  # every folder recognized, no companion checked on its own
    assert all(f.code != "PI001" for r in report.files for f in r.findings)
    assert all(r.error is None for r in report.files)


@pytest.mark.parametrize("name", [
    "trainer_clean/checkpoint-6/optimizer.pt", "trainer_clean/checkpoint-6/scheduler.pt",
    "trainer_clean/checkpoint-6/rng_state.pth", "trainer_clean/checkpoint-6/training_args.bin",
    "accelerate_clean/optimizer.bin", "accelerate_clean/random_states_0.pkl",
])
def test_a_companion_file_checked_alone_is_not_pi001(name: str) -> None:
    assert not {f for f in findings(RUNS / name) if f[0] == "PI001"}


def test_layouts_are_recognized() -> None:
    assert folder_kind(RUNS / "trainer_clean/checkpoint-6") == "trainer"
    assert folder_kind(RUNS / "accelerate_clean") == "accelerate"
    assert folder_kind(RUNS / "trainer_clean") == "hf"
    assert folder_kind(RUNS / "trainer_frozen_after_optim") is None  # a run folder: walk it
    assert list(iter_model_files([RUNS / "trainer_frozen_after_optim"])) == [
        RUNS / "trainer_frozen_after_optim/checkpoint-3",
        RUNS / "trainer_frozen_after_optim/checkpoint-6",
    ]
    with pytest.raises(LoadError, match="training-run folder.*checkpoint-3, checkpoint-6"):
        load(RUNS / "trainer_frozen_after_optim")


def test_trainer_replay_names_every_slot() -> None:
    graph = load(RUNS / "trainer_clean/checkpoint-6")
    state = json.loads((RUNS / "trainer_clean/checkpoint-6/trainer_state.json").read_text())
    assert graph.metadata["global_step"] == state["global_step"] == 6
    assert isinstance(graph.metadata["global_step"], int)
    assert graph.metadata["args.weight_decay"] == 0.01
    assert graph.metadata["companions"] == {
        "rng_state.pth": "rng-state", "scheduler.pt": "scheduler",
        "training_args.bin": "training-args"}
    (opt,) = graph.optimizers
    assert opt.alignment == "replay" and opt.exhaustive
    # decay / no-decay, as create_optimizer built them: LayerNorm and biases take no decay
    assert [g.size for g in opt.groups] == [11, 14] and len(graph.parameters()) == 25
    assert set(opt.tracked) == {p.name for p in graph.parameters()}
    assert opt.tracked["classifier.weight"].group == 0
    assert opt.tracked["bert.embeddings.LayerNorm.weight"].group == 1
    assert {s.step for s in opt.tracked.values()} == {6.0}


def test_trainer_head_missing_from_the_optimizer_is_frozen_by_construction() -> None:
    graph = load(RUNS / "trainer_head_not_in_optim/checkpoint-6")
    (opt,) = graph.optimizers
    assert "classifier.weight" not in opt.tracked and "classifier.bias" not in opt.tracked
    head = graph.tensors["classifier.weight"]
    assert head.trainable is Trainable.FROZEN and head.trainable_fact.source is Source.INFERRED
    assert graph.order[-1] == "classifier"  # base model before the task head


def test_frozen_step_lag_in_the_trainer_run() -> None:
    graph = load(RUNS / "trainer_frozen_after_optim/checkpoint-6")
    tracked = graph.optimizers[0].tracked
    assert tracked["bert.pooler.dense.weight"].step == 3.0
    assert tracked["classifier.weight"].step == 6.0
    assert graph.tensors["classifier.weight"].trainable is Trainable.TRAINABLE


def test_ambiguous_replay_says_so_instead_of_guessing() -> None:
    graph = load(RUNS / "accelerate_ambiguous_frozen_after_optim")
    assert any("ambiguous" in note and "which is which is not stored" in note
               for note in graph.notes)
    assert graph.tensors["backbone.0.weight"].trainable is Trainable.FROZEN  # unique shape
    for name in ("backbone.2.weight", "head.weight", "head.bias", "backbone.0.bias"):
        assert graph.tensors[name].trainable is Trainable.UNKNOWN, name


def test_lightning_finetuning_state_names_the_groups() -> None:
    graph = load(RUNS / "lightning_finetune_clean.ckpt")
    (opt,) = graph.optimizers
    assert opt.alignment == "names" and graph.metadata["finetuning_callback"] == "BackboneFinetuning"
    backbone = graph.tensors["backbone.0.weight"]
    assert backbone.trainable is Trainable.TRAINABLE
    assert "appended param group 1" in backbone.trainable_fact.evidence


def test_compiled_module_checks_like_the_plain_one() -> None:
    whole = load(RUNS / "compile_whole_clean.pt")
    ckpt = load(RUNS / "compile_ckpt_clean.pt")
    assert whole.content == "module" and whole.metadata["compiled"] is True
    names = [p.name for p in whole.parameters()]
    assert names == [p.name for p in ckpt.parameters()] == [
        "backbone.0.weight", "backbone.0.bias", "backbone.2.weight", "backbone.2.bias",
        "head.weight", "head.bias"]
    assert whole.root.class_name is not None and whole.root.class_name.endswith("SmallNet")
    assert all(p.trainable_fact.source is Source.STORED for p in whole.parameters())
    assert ckpt.optimizers[0].exhaustive and not any("_orig_mod" in n for n in ckpt.tensors)


def test_a_corrupt_companion_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-6"
    shutil.copytree(RUNS / "trainer_clean/checkpoint-6", folder)
    (folder / "scheduler.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(LoadError, match=r"^scheduler\.pt: "):
        load(folder)
    assert {f[0] for f in findings(folder)} == {"PI001"}


def test_timm_replay_uses_the_model_not_the_ema() -> None:
    graph = load(RUNS / "timm_frozen_after_optim.pth.tar")
    assert graph.metadata["framework_layout"] == "timm"
    (opt,) = graph.optimizers
    assert opt.alignment == "replay" and opt.exhaustive
    assert [g.weight_decay for g in opt.groups] == [0.0, 0.05]  # no-decay group first
    assert opt.tracked["fc.weight"].group == 1 and opt.tracked["fc.bias"].group == 0
    assert not any("ema" in name for name in graph.tensors)


def test_ultralytics_trainability_comes_from_the_freeze_list() -> None:
    clean = load(RUNS / "ultralytics_clean.pt")
    assert all(p.trainable is Trainable.TRAINABLE for p in clean.parameters()
               if ".dfl" not in p.name)
    assert all(layer.mode.value == "unknown" for layer in clean.layers.values())
    assert clean.optimizers and not clean.optimizers[0].aligned
    frozen = load(RUNS / "ultralytics_head_frozen.pt")  # the stripped final file
    assert frozen.metadata["freeze"] == [4]
    head = frozen.tensors["model.4.cv2.0.0.conv.weight"]
    assert head.trainable is Trainable.FROZEN and "freeze" in head.trainable_fact.evidence
    assert frozen.tensors["model.0.conv.weight"].trainable is Trainable.TRAINABLE


def test_peft_trainer_checkpoint_replays_over_the_adapter() -> None:
    graph = load(RUNS / "trainer_peft_clean/checkpoint-6")
    assert graph.metadata["weights_folder"] == "peft" and graph.metadata["run_layout"] == "trainer"
    (opt,) = graph.optimizers
    assert opt.alignment == "replay" and opt.exhaustive
    assert [g.size for g in opt.groups] == [5, 1]  # 4 LoRA matrices + classifier.weight; bias
    assert set(opt.tracked) == {p.name for p in graph.parameters()}
    assert "classifier.bias" in opt.tracked
