"""Tied word embeddings declared by a Hugging Face ``config.json``.

``save_pretrained`` writes a tied tensor once: safetensors refuses shared tensors, so the output
projection (``lm_head.weight``) is dropped and rebuilt from the input embeddings at load time.
When the config ties them (``tie_word_embeddings``, true by default in transformers) and the
weights hold an input embedding but no output projection, the projection is an alias of it.
"""

from __future__ import annotations

import re

from ..graph import ModelGraph, TensorRole

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: output projection -> the architectures (class-name endings) that have it
OUTPUTS = {
    "lm_head.weight": re.compile(r"(CausalLM|LMHeadModel|ForConditionalGeneration|Seq2SeqLM)$"),
    "cls.predictions.decoder.weight": re.compile(r"(ForMaskedLM|ForPreTraining)$"),
}
#: input embedding tensors, by their local suffix
INPUT_SUFFIXES = (
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "embed_in.weight",
    "tok_embeddings.weight",
    "shared.weight",
)


def record_tied_embeddings(graph: ModelGraph, config: dict[str, Any]) -> None:
    tie = config.get("tie_word_embeddings")
    text = config.get("text_config")
    if tie is None and isinstance(text, dict):
        tie = text.get("tie_word_embeddings")
    if tie is False:
        return
    inputs = [
        t for t in graph.tensors.values()
        if t.role is TensorRole.PARAMETER
        and any(t.name == s or t.name.endswith("." + s) for s in INPUT_SUFFIXES)
    ]
    if len(inputs) != 1:
        return
    embedding = inputs[0]
    architectures = config.get("architectures")
    arch = architectures[0] if isinstance(architectures, list) and architectures else None
    if not isinstance(arch, str):
        return
    for name, pattern in OUTPUTS.items():
        module = name.rsplit(".", 1)[0]
        if not pattern.search(arch) or name in graph.tensors or name in embedding.aliases:
            continue
        if any(n.startswith(module + ".") for n in graph.tensors):
            continue  # the projection's module is stored (a bias, another weight): not dropped
        embedding.aliases.append(name)
        graph.notes.append(
            f"{name} is not stored: config.json ties it to {embedding.name} (one tensor)"
        )
        return
