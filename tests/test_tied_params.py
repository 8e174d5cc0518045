"""Tied (shared) parameters: sharing read from the bytes, PI105 on frozen/trainable conflicts.
Fixtures: fixtures/make_tied.py (real torch / transformers runs)."""

from __future__ import annotations

import pytest

from paraminspect import check
from paraminspect.loaders import load

from .conftest import FIXTURES, findings

HERE = FIXTURES / "tied"
W = "warning"

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "tied_whole_embed_frozen.pt": {("PI105", "lm_head", W)},
    "tied_ckpt_embed_frozen.pt": {("PI105", "lm_head", W)},
    "tied_whole_clean.pt": set(),
    "tied_ckpt_clean.pt": set(),
    "untied_whole_embed_frozen.pt": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tied_fixture_findings(name: str) -> None:
    assert findings(HERE / name) == EXPECTED[name]


@pytest.mark.parametrize("name", ["tied_whole_embed_frozen.pt", "tied_ckpt_embed_frozen.pt"])
def test_sharing_is_read_from_the_bytes(name: str) -> None:
    graph = load(HERE / name)
    assert graph.tensors["embed.weight"].aliases == ["lm_head.weight"]
    assert "lm_head.weight" not in graph.tensors  # one tensor, counted once
    (finding,) = check(HERE / name).files[0].findings
    assert finding.paths == ("lm_head.weight", "embed.weight")
    assert "shared with embed.weight" in finding.message and "frozen" in finding.message


def test_state_dict_copies_of_one_storage_are_one_tensor() -> None:
    # state_dict() detaches each name separately: two tensor records over the same storage.
    graph = load(HERE / "tied_ckpt_clean.pt")
    assert graph.tensors["embed.weight"].aliases == ["lm_head.weight"]
    assert graph.optimizers[0].alignment == "positional"


def test_hf_config_ties_the_dropped_output_projection() -> None:
    graph = load(HERE / "hf_gpt2_tied")
    assert graph.tensors["transformer.wte.weight"].aliases == ["lm_head.weight"]
    # a classification BERT with tie_word_embeddings=true has no output projection to tie
    bert = load(FIXTURES / "folders" / "hf_bert")
    assert not any(t.aliases for t in bert.tensors.values())
