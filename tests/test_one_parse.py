"""One parse per file: one zip directory read and one open archive for all entries, step counters
included (a new ZipFile per counter made training checkpoints quadratic in their tensor count)."""

from __future__ import annotations

import zipfile

import pytest

from paraminspect.graph import Trainable
from paraminspect.loaders import load

from .conftest import TORCH_FIXTURES


@pytest.fixture
def zip_opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    opened: list[object] = []
    original = zipfile.ZipFile.__init__

    def counting(self: zipfile.ZipFile, *args: object, **kwargs: object) -> None:
        opened.append(args[0] if args else kwargs.get("file"))
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting)
    return opened


def test_step_counters_are_read_through_one_archive(zip_opens: list[object]) -> None:
    graph = load(TORCH_FIXTURES / "cnn_ckpt_frozen_after_optim.pt")
    (opt,) = graph.optimizers
    # the counters were really read (2 steps before the freeze, 5 in all) ...
    assert opt.tracked["backbone.conv.weight"].step == 2.0
    assert opt.tracked["head.weight"].step == 5.0
    assert graph.tensors["backbone.conv.weight"].trainable is Trainable.FROZEN
    # ... from the one archive sniffing opened
    assert len(zip_opens) == 1


def test_whole_module_checkpoint_opens_one_archive(zip_opens: list[object]) -> None:
    graph = load(TORCH_FIXTURES / "cnn_wholeckpt_frozen_after_optim.pt")
    assert any(s.step is not None for o in graph.optimizers for s in o.tracked.values())
    assert len(zip_opens) == 1
