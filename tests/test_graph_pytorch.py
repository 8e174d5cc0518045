"""What the PyTorch loader puts into the graph, and with which provenance."""

from __future__ import annotations

from paraminspect import LayerKind, Mode, Source, TensorRole, Trainable, load

from .conftest import TORCH_FIXTURES


def test_state_dict_knows_nothing_about_trainability() -> None:
    graph = load(TORCH_FIXTURES / "cnn_sd_clean.pt")
    assert graph.content == "state_dict"
    assert {t.trainable for t in graph.parameters()} == {Trainable.UNKNOWN}
    assert graph.trainability_source() is Source.UNKNOWN
    assert graph.tensors["backbone.bn.running_mean"].role is TensorRole.BUFFER
    bn = graph.layers["backbone.bn"]
    assert bn.kind is LayerKind.BATCHNORM and bn.kind_fact.source is Source.INFERRED
    assert bn.mode is Mode.UNKNOWN


def test_keep_vars_state_dict_stores_requires_grad() -> None:
    graph = load(TORCH_FIXTURES / "cnn_sd_keepvars.pt")
    assert graph.tensors["backbone.conv.weight"].trainable is Trainable.FROZEN
    assert graph.tensors["head.weight"].trainable is Trainable.TRAINABLE
    assert graph.tensors["head.weight"].trainable_fact.source is Source.STORED


def test_whole_module_tree_classes_and_modes() -> None:
    graph = load(TORCH_FIXTURES / "cnn_whole_clean.pt")
    assert graph.content == "module"
    assert list(graph.layers) == [
        "",
        "backbone",
        "backbone.conv",
        "backbone.bn",
        "backbone.relu",
        "pool",
        "drop",
        "head",
    ]
    bn = graph.layers["backbone.bn"]
    assert bn.class_name == "torch.nn.modules.batchnorm.BatchNorm2d"
    assert bn.kind is LayerKind.BATCHNORM and bn.mode is Mode.EVAL
    assert bn.attrs["track_running_stats"] is True
    assert graph.layers["head"].mode is Mode.TRAIN
    assert graph.layers[""].class_name == "torch_models.SmallCNN"
    assert graph.layers["drop"].kind is LayerKind.DROPOUT


def test_ddp_prefix_is_stripped() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ddp_sd.pt")
    assert "backbone.conv.weight" in graph.tensors
    assert graph.stripped_prefix == "module."


def test_inferred_trainability_from_step_lag() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim.pt")
    (opt,) = graph.optimizers
    assert opt.type == "Adam" and opt.alignment == "positional"
    assert opt.tracked["backbone.conv.weight"].step == 2.0
    assert opt.tracked["head.weight"].step == 5.0
    assert set(opt.tracked["head.weight"].slots) == {"exp_avg", "exp_avg_sq"}
    conv = graph.tensors["backbone.conv.weight"]
    assert conv.trainable is Trainable.FROZEN and conv.trainable_fact.source is Source.INFERRED
    assert "step" in conv.trainable_fact.evidence
    assert graph.tensors["head.weight"].trainable is Trainable.TRAINABLE
    assert graph.metadata["epoch"] == 5


def test_subset_optimizer_aligns_by_unique_shape_match() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_clean.pt")
    (opt,) = graph.optimizers
    assert opt.alignment == "shape"
    assert set(opt.tracked) == {"head.weight", "head.bias"}
    assert graph.tensors["backbone.conv.weight"].trainable is Trainable.FROZEN
    assert graph.tensors["backbone.conv.weight"].trainable_fact.evidence.startswith("not tracked")


def test_param_names_give_exact_alignment() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_named_optim.pt")
    (opt,) = graph.optimizers
    assert opt.alignment == "names" and opt.alignment_fact.source is Source.STORED
    assert set(opt.tracked) == {"head.weight", "head.bias"}


def test_sgd_type_and_weight_decay_groups() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_sgd_nonone.pt")
    (opt,) = graph.optimizers
    assert opt.type == "SGD"
    assert opt.groups[0].lr == 0.1
    assert all(s.slots == ("momentum_buffer",) for s in opt.tracked.values())


def test_lightning_checkpoint() -> None:
    graph = load(TORCH_FIXTURES / "lightning_like.ckpt")
    assert graph.content == "lightning-checkpoint"
    assert graph.framework_version == "lightning 2.5.0"
    assert graph.optimizers[0].name == "optimizer_states[0]"
    assert "model.backbone.conv.weight" in graph.tensors


def test_legacy_format_reads_steps_from_trailing_storages() -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim_legacy.pt")
    assert graph.format == "pytorch-legacy"
    steps = {n: s.step for n, s in graph.optimizers[0].tracked.items()}
    assert steps["backbone.bn.bias"] == 2.0 and steps["head.bias"] == 5.0


def test_whole_module_with_optimizer_is_exact() -> None:
    graph = load(TORCH_FIXTURES / "cnn_wholeckpt_unfrozen_after_optim.pt")
    (opt,) = graph.optimizers
    assert opt.alignment == "shape" and opt.exhaustive
    assert graph.tensors["backbone.conv.weight"].trainable_fact.source is Source.STORED


def test_legacy_class_source_is_recorded_not_compiled() -> None:
    graph = load(TORCH_FIXTURES / "cnn_whole_legacy_bn_train.pt")
    assert any(r.how == "source" and r.target.endswith("SmallCNN") for r in graph.code_references)
