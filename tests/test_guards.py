"""Training-time guards on real short runs: each bug fires before optimizer step 2 (strict mode
stops the run there), each clean twin stays silent. Findings asserted by code and location."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from paraminspect.guards import GuardError, GuardWarning

from .conftest import FIXTURES

torch = pytest.importorskip("torch")
sys.path.insert(0, str(FIXTURES))
try:
    import diff_runs
finally:
    sys.path.remove(str(FIXTURES))

BACKBONE = ("backbone.0", "backbone.1", "backbone.3", "backbone.4")
EXPECTED = {
    "clean": set(),
    # the freeze is seen before step 2: the static PI301 plus the live PI601
    "freeze_after_optimizer": {("PI601", b) for b in BACKBONE}
    | {("PI301", b) for b in BACKBONE}
    # adapter.base is in the optimizer: with no state yet it reads as never updated (PI303,
    # info), once it has state as frozen after the optimizer was built (PI301)
    | {("PI303", "adapter.base"), ("PI301", "adapter.base")},
    "bn_drift": {("PI602", "backbone.1"), ("PI602", "backbone.4")},
    "dead_lora": {("PI302", "adapter")},
    "unused_head": {("PI603", "aux_head")},
}


def codes(findings: list) -> set[tuple[str, str]]:
    return {(f.code, location) for f in findings for location in f.all_locations}


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_torch_loop_guard(variant: str) -> None:
    import paraminspect

    guards, seen_at = [], {}

    def setup(model: object, optimizer: object) -> None:
        guards.append(paraminspect.guard(model, optimizer))

    def on_step(step: int) -> None:
        seen_at.setdefault(len(guards[0].findings) > 0, step)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diff_runs.train(variant, setup=setup, on_step=on_step)
    assert codes(guards[0].findings) == EXPECTED[variant]
    said = [w for w in caught if issubclass(w.category, GuardWarning)]
    if EXPECTED[variant]:
        assert seen_at[True] <= 2  # reported by the time step 2 has run: before it, see strict
        assert len(said) == len({str(w.message) for w in said})  # each report once
    else:
        assert not said


@pytest.mark.parametrize("variant", [v for v in EXPECTED if EXPECTED[v]])
def test_torch_loop_guard_strict_stops_before_step_2(variant: str) -> None:
    import paraminspect

    done: list[int] = []
    with pytest.raises(GuardError) as raised:
        diff_runs.train(variant, setup=lambda m, o: paraminspect.guard(m, o, strict=True),
                        on_step=done.append)
    assert len(done) <= 1  # the optimizer never ran step 2
    assert codes(raised.value.findings) <= EXPECTED[variant]


# -- Lightning ------------------------------------------------------------------------------
def _lightning_run(variant: str, strict: bool, folder: Path | None = None) -> tuple[list, list]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from paraminspect.guards.lightning import ParamInspectCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = diff_runs.Net()
            if variant != "freeze_after_optimizer":
                self.net.backbone.requires_grad_(False)

        def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def on_train_epoch_start(self) -> None:
            if variant != "bn_drift":
                self.net.backbone.eval()

        def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
            if variant == "freeze_after_optimizer" and batch_idx == 0:
                self.net.backbone.requires_grad_(False)  # the optimizer still holds it
            if folder is not None and batch_idx in (0, 3):
                self.trainer.save_checkpoint(folder / f"step{batch_idx + 1}.ckpt")

        def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: object) -> None:
            # the bug keeps zero-filled gradients, so AdamW keeps moving the frozen backbone
            optimizer.zero_grad(set_to_none=variant != "freeze_after_optimizer")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)

    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 3, 8, 8, generator=generator),
                         torch.randint(0, 3, (16,), generator=generator))
    callback = ParamInspectCallback(strict=strict)
    steps: list[int] = []

    class Count(pl.Callback):
        def on_train_batch_end(self, trainer: object, *args: object) -> None:
            steps.append(trainer.global_step)

    trainer = pl.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback, Count()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Module(), DataLoader(data, batch_size=4))
    return callback.findings, steps


LIGHTNING = {
    "clean": set(),
    "freeze_after_optimizer": {("PI601", f"net.{b}") for b in BACKBONE}
    | {("PI301", f"net.{b}") for b in BACKBONE},
    "bn_drift": {("PI602", "net.backbone.1"), ("PI602", "net.backbone.4")},
}


@pytest.mark.parametrize("variant", list(LIGHTNING))
def test_lightning_callback(variant: str) -> None:
    pytest.importorskip("lightning")
    findings, _ = _lightning_run(variant, strict=False)
    assert codes(findings) == LIGHTNING[variant]
    if LIGHTNING[variant]:
        with pytest.raises(GuardError) as raised:
            _lightning_run(variant, strict=True)
        assert codes(raised.value.findings) <= LIGHTNING[variant]


def test_lightning_checkpoints_diffed(tmp_path: Path) -> None:
    """The same Lightning runs written to disk twice: diff proves the drift and the moved
    weights (Lightning checkpoints store no requires_grad: the policy declares the freeze)."""
    pytest.importorskip("lightning")
    from paraminspect.config import Policy, Settings
    from paraminspect.diff import diff_paths

    policy = Settings(policies=(Policy(frozen=("net.backbone", "net.adapter.base")),))
    expected = {
        "clean": set(),
        "bn_drift": {("PI502", "net.backbone.1"), ("PI502", "net.backbone.4")},
        "freeze_after_optimizer": {("PI501", f"net.{b}") for b in BACKBONE},
    }
    for variant, wanted in expected.items():
        folder = tmp_path / variant
        folder.mkdir()
        _lightning_run(variant, strict=False, folder=folder)
        report = diff_paths(folder / "step1.ckpt", folder / "step4.ckpt", policy)
        assert codes(report.findings) == wanted, variant


# -- transformers Trainer -------------------------------------------------------------------
def _trainer_run(bug: bool, strict: bool, tmp_path: Path, save: bool = False) -> list:
    transformers = pytest.importorskip("transformers")
    from paraminspect.guards.transformers import ParamInspectTrainerCallback

    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    generator = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(0, 40, (8,), generator=generator),
             "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(16)]

    class FreezeEmbeddingsAfterStep1(transformers.TrainerCallback):
        """The bug: freezing after the Trainer built its optimizer over everything."""

        def on_step_end(self, args: object, state: object, control: object, model: object = None,
                        **kwargs: object) -> None:
            if state.global_step == 1:
                model.bert.embeddings.requires_grad_(False)

    if not bug:
        model.bert.embeddings.requires_grad_(False)  # before the Trainer: never optimized
    guard = ParamInspectTrainerCallback(strict=strict)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, max_steps=3, per_device_train_batch_size=4,
        report_to=[], save_strategy="steps" if save else "no", save_steps=1, save_only_model=True,
        logging_strategy="no", disable_tqdm=True,
        learning_rate=1e-2, weight_decay=0.1,
    )
    callbacks = [guard, *([FreezeEmbeddingsAfterStep1()] if bug else [])]
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=callbacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return guard.findings


def test_transformers_trainer_callback(tmp_path: Path) -> None:
    assert codes(_trainer_run(bug=False, strict=False, tmp_path=tmp_path, save=True)) == set()
    # the Trainer's checkpoint folders (config.json + model.safetensors), diffed: they store no
    # trainability, so a policy declares it; a policy that wrongly says the frozen embeddings
    # train gets PI503 for each embedding layer
    from paraminspect.config import Policy, Settings
    from paraminspect.diff import diff_paths

    first, last = tmp_path / "checkpoint-1", tmp_path / "checkpoint-3"
    right = Settings(policies=(Policy(frozen=("bert.embeddings",), trainable=("bert.encoder",
                                                                                "classifier")),))
    assert codes(diff_paths(first, last, right).findings) == set()
    wrong = Settings(policies=(Policy(trainable=("bert",)),))
    embeddings = {"bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
                  "bert.embeddings.token_type_embeddings", "bert.embeddings.LayerNorm"}
    assert codes(diff_paths(first, last, wrong).findings) == {("PI503", e) for e in embeddings}
    embeddings = {"bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
                  "bert.embeddings.token_type_embeddings", "bert.embeddings.LayerNorm"}
    with pytest.raises(GuardError) as raised:
        _trainer_run(bug=True, strict=True, tmp_path=tmp_path)
    found = codes(raised.value.findings)
    assert {("PI601", e) for e in embeddings} <= found
    assert {code for code, _ in found} <= {"PI601", "PI301"}
    assert "before optimizer step 2" in str(raised.value)


# -- Keras ----------------------------------------------------------------------------------
def test_keras_callback() -> None:
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    import numpy as np

    from paraminspect.guards.keras import ParamInspectKerasCallback

    def run(bug: bool, strict: bool) -> ParamInspectKerasCallback:
        keras.utils.set_random_seed(0)
        inp = keras.Input((8,))
        backbone = keras.Sequential([keras.layers.Dense(8, name="dense"),
                                     keras.layers.BatchNormalization(name="bn"),
                                     keras.layers.ReLU(name="relu")], name="backbone")
        model = keras.Model(inp, keras.layers.Dense(3, name="head")(backbone(inp)))
        x = np.random.RandomState(0).randn(32, 8).astype("float32")
        y = np.random.RandomState(1).randint(0, 3, 32)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if not bug:
            backbone.trainable = False
        model.compile("adam", loss)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        if bug:
            backbone.trainable = False  # after compile: the compiled step still updates it
        callback = ParamInspectKerasCallback(strict=strict)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
        return callback

    assert codes(run(bug=False, strict=False).findings) == set()
    expected = {("PI601", "backbone.dense"), ("PI601", "backbone.bn"), ("PI602", "backbone.bn")}
    with pytest.raises(GuardError, match="before step 2") as raised:
        run(bug=True, strict=True)
    assert codes(raised.value.findings) == expected
