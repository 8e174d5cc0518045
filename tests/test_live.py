"""The live-object API on real torch modules and optimizers."""

from __future__ import annotations

import sys

import pytest

from paraminspect import check

from .conftest import FIXTURES, needs_torch

pytestmark = needs_torch


@pytest.fixture()
def model():
    import torch

    sys.path.insert(0, str(FIXTURES))
    try:
        from torch_models import SmallCNN
    finally:
        sys.path.remove(str(FIXTURES))
    torch.manual_seed(0)
    return SmallCNN()


def _step(model, optimizer, set_to_none: bool = True) -> None:
    import torch

    optimizer.zero_grad(set_to_none=set_to_none)
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(4, 3, 8, 8)), torch.tensor([0, 1, 0, 1])
    )
    loss.backward()
    optimizer.step()


def _codes(model, optimizer=None) -> set[tuple[str, str]]:
    from paraminspect.live import graph_from_module

    report = check(graph_from_module(model, optimizer))
    return {(f.code, location) for f in report.findings for location in f.all_locations}


def test_clean_transfer_learning(model) -> None:
    import torch

    model.backbone.requires_grad_(False)
    optimizer = torch.optim.Adam(p for p in model.parameters() if p.requires_grad)
    model.train()
    model.backbone.eval()
    _step(model, optimizer)
    assert _codes(model, optimizer) == set()


def test_freeze_after_optimizer_and_bn_left_in_train_mode(model) -> None:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=0.1)
    _step(model, optimizer)
    model.backbone.requires_grad_(False)
    _step(model, optimizer, set_to_none=False)
    assert _codes(model, optimizer) == {
        ("PI301", "backbone.conv"),
        ("PI301", "backbone.bn"),
        ("PI201", "backbone.bn"),
    }


def test_module_without_optimizer_via_check(model) -> None:
    model.head.requires_grad_(False)
    report = check(model)
    assert {(f.code, f.location) for f in report.findings} == {("PI102", "head")}
