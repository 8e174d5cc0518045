"""Every PyTorch fixture against the exact findings it must produce: (code, location, severity).

The fixtures are real torch files made by fixtures/make_torch.py (see fixtures/README.md).
An empty set means the file is clean: a finding there is a false positive.
"""

from __future__ import annotations

import pytest

from .conftest import TORCH_FIXTURES, findings

W, E, I = "warning", "error", "info"  # noqa: E741

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    # plain state dicts: no trainability, no modes -> nothing can be proven
    "cnn_sd_clean.pt": set(),
    "cnn_sd_keepvars.pt": set(),
    "cnn_ddp_sd.pt": set(),
    "tfm_sd.pt": set(),
    # training checkpoints (state dict + optimizer state). Except in the clean one, make_torch.py
    # freezes the backbone but leaves it in train mode, so backbone.bn's num_batches_tracked equals
    # the optimizer's step count while its weights are not trained: BN drift, read from the bytes.
    "cnn_ckpt_clean.pt": set(),
    "cnn_ckpt_named_optim.pt": {("PI201", "backbone.bn", W)},
    "cnn_ckpt_frozen_after_optim.pt": {
        ("PI301", "backbone.conv", W),
        ("PI301", "backbone.bn", W),
        ("PI201", "backbone.bn", W),
    },
    "cnn_ckpt_frozen_after_optim_legacy.pt": {
        ("PI301", "backbone.conv", W),
        ("PI301", "backbone.bn", W),
        ("PI201", "backbone.bn", W),
    },
    # frozen before the first step: no optimizer state at all -> never updated (PI303), not PI301
    "cnn_ckpt_frozen_before_step.pt": {
        ("PI303", "backbone.conv", I),
        ("PI303", "backbone.bn", I),
        ("PI201", "backbone.bn", W),
    },
    # set_to_none=False with a plain state dict: all step counts equal, no static signal
    "cnn_ckpt_sgd_nonone.pt": set(),
    "lightning_like.ckpt": {
        ("PI301", "model.backbone.conv", W),
        ("PI301", "model.backbone.bn", W),
        ("PI201", "model.backbone.bn", W),
    },
    # whole pickled modules
    "cnn_whole_clean.pt": set(),
    "cnn_whole_eval.pt": set(),
    "cnn_whole_bn_train_frozen.pt": {("PI201", "backbone.bn", W)},
    "cnn_whole_proto4.pt": {("PI201", "backbone.bn", W)},
    "cnn_whole_legacy_bn_train.pt": {("PI201", "backbone.bn", W)},
    "cnn_whole_all_frozen.pt": {("PI101", "", W), ("PI201", "backbone.bn", W)},
    # all frozen, eval mode, no optimizer: a serving artifact, as intended
    "cnn_whole_all_frozen_eval.pt": set(),
    "cnn_whole_head_frozen.pt": {("PI102", "head", W)},
    "cnn_whole_mixed.pt": {("PI103", "head", W)},
    "cnn_whole_bitfit.pt": {("PI103", "", I)},
    "deep_whole_bn_train_frozen.pt": {("PI201", f"backbone.blocks.{i}.bn", W) for i in range(6)},
    "frozenbn_whole_train.pt": set(),
    "bn_nostats_whole_train.pt": set(),
    "tfm_whole_frozen_train.pt": set(),
    # whole module + optimizer
    "cnn_wholeckpt_clean.pt": set(),
    "cnn_wholeckpt_frozen_after_optim.pt": {
        ("PI301", "backbone.conv", W),
        ("PI301", "backbone.bn", W),
    },
    "cnn_wholeckpt_unfrozen_after_optim.pt": {
        ("PI302", "backbone.conv", W),
        ("PI302", "backbone.bn", W),
    },
    # hostile and broken input
    # a payload that holds no model is data: scanned (PI002), not "unreadable"
    "evil.pt": {("PI002", "", E)},
    "evil_legacy.pt": {("PI002", "", E)},
    "truncated.pt": {("PI001", "", E)},
    "not_a_model.pt": {("PI001", "", E)},
    "empty.pt": {("PI001", "", E)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_findings(name: str) -> None:
    assert findings(TORCH_FIXTURES / name) == EXPECTED[name]


def test_every_torch_fixture_has_an_expectation() -> None:
    on_disk = {
        p.name
        for p in TORCH_FIXTURES.iterdir()
        if p.suffix in {".pt", ".ckpt"} and "_ts_" not in p.name
    }
    assert on_disk <= set(EXPECTED), sorted(on_disk - set(EXPECTED))
