"""Weights folders: one model's weights stored as one or several files.

* sharded checkpoints: ``*.index.json`` (``model.safetensors.index.json``,
  ``pytorch_model.bin.index.json``) whose ``weight_map`` names the shard of every tensor;
* Hugging Face folders: ``config.json`` (``architectures`` names the model) beside the weights;
* PEFT adapter folders: ``adapter_config.json`` + ``adapter_model.*``. The adapter weights are
  what was trained; the base model they modify stayed frozen.

Each file is read by the loader of its own format; this module only merges graphs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import LoadError
from ...graph import Fact, LayerKind, ModelGraph, OrderSource, Source, Tensor, Trainable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INDEX_PREFERENCE = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.pt", "model.pth")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_FACT = Fact(Source.INFERRED, "PEFT adapter weights are the trained parameters")
BASE_FACT = Fact(Source.INFERRED, "the base model under a PEFT adapter stays frozen")
#: prefix PEFT puts before base-model names in adapter files
PEFT_PREFIX = "base_model.model."


def _index_files(path: Path) -> list[Path]:
    found = sorted(p for p in path.glob("*.index.json") if p.is_file())
    return sorted(found, key=lambda p: (p.name not in INDEX_PREFERENCE, p.name))


def _single_weights(path: Path) -> Path | None:
    for name in SINGLE_WEIGHTS:
        if (path / name).is_file():
            return path / name
    return None


def folder_kind(path: Path) -> str | None:
    """``tf-savedmodel``, ``tf-checkpoint``, ``peft``, ``sharded``, ``hf`` or None when ``path`` is not one model stored as a folder."""
    if not path.is_dir():
        return None
    from ..torch.dcp import is_dcp_folder  # framework checkpoint folders
    from ..torch.deepspeed import is_deepspeed_tag_folder

    if is_dcp_folder(path):
        return "dcp"
    if is_deepspeed_tag_folder(path):
        return "deepspeed"
    from ..tf.folder import folder_kind as tf_folder_kind  # SavedModel / tf.train.Checkpoint

    if tf_kind := tf_folder_kind(path):
        return tf_kind
    if (path / "adapter_config.json").is_file() and any(
            (path / name).is_file() for name in ADAPTER_WEIGHTS):
        return "peft"
    if _index_files(path):
        return "sharded"
    if (path / "config.json").is_file() and _single_weights(path) is not None:
        return "hf"
    return None


def model_files(path: Path) -> set[Path]:
    """The files of a model folder that belong to the model (other files are checked alone)."""
    kind = folder_kind(path)
    files: set[Path] = set()
    if kind == "deepspeed":  # model and optimizer-partition files of one checkpoint tag
        from ..torch.deepspeed import checkpoint_files

        return checkpoint_files(path)
    if kind == "dcp":  # the metadata pickle and every rank's data file are parts of one model
        return {path / ".metadata"} | {p for p in path.glob("*.distcp") if p.is_file()}
    if kind and kind.startswith("tf-"):
        from ..tf.folder import model_files as tf_model_files

        return tf_model_files(path, kind)
    if kind == "peft":
        files |= {path / n for n in ADAPTER_WEIGHTS if (path / n).is_file()}
        if _index_files(path) or _single_weights(path):
            files |= _base_files(path)
    elif kind in ("sharded", "hf"):
        files |= _base_files(path)
    return files


def _base_files(path: Path) -> set[Path]:
    indexes = _index_files(path)
    if indexes:
        try:
            weight_map = _read_index(indexes[0])
        except LoadError:
            return set()
        return {path / shard for shard in weight_map.values()}
    single = _single_weights(path)
    return {single} if single else set()


def has_weights(path: Path) -> bool:
    """Whether ``path`` holds model weights in one of the layouts read here (config or not)."""
    return folder_kind(path) is not None or _single_weights(path) is not None


def weights_files(path: Path) -> set[Path]:
    """The weight files of ``path`` (adapter, shards or the single file), whatever the layout."""
    return model_files(path) if folder_kind(path) else (
        {_single_weights(path)} if _single_weights(path) else set())  # type: ignore[misc]


def load(path: Path) -> ModelGraph:
    """The weights of ``path`` as one graph (PEFT adapter, shards, or the single weights file)."""
    kind = folder_kind(path)
    if kind is None:
        from ..torch.deepspeed import tag_folder  # a DeepSpeed run folder: `latest` names the tag

        kind = "deepspeed" if tag_folder(path) is not None else None
    if kind is None and _single_weights(path) is None:
        raise LoadError(
            "a folder that is not a model folder (no *.index.json, no config.json beside "
            "weights, no adapter_config.json + adapter_model.*)"
        )
    if kind == "dcp":
        from ..torch.dcp import load_dcp

        return load_dcp(path)
    if kind == "deepspeed":
        from ..torch.deepspeed import load_deepspeed

        return load_deepspeed(path)
    if kind and kind.startswith("tf-"):
        from ..tf.folder import load_folder as load_tf_folder

        return load_tf_folder(path, kind)
    graph = _load_peft(path) if kind == "peft" else _load_base(path)
    _name_from_config(graph, path)
    return graph


# -- sharded and single-file weights -----------------------------------------------------------
def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{file.name} is not readable JSON ({exc})") from None


def _read_index(index: Path) -> dict[str, str]:
    data = _read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(k, str) and isinstance(v, str) and "/" not in v and "\\" not in v
            and v not in ("", ".", "..") for k, v in weight_map.items()):
        raise LoadError(f"{index.name} has no valid weight_map (tensor name -> shard file)")
    return weight_map


def _load_file(file: Path) -> ModelGraph:
    from .. import load  # the registry: each shard goes to the loader of its own format

    try:
        return load(file)
    except LoadError as exc:
        raise LoadError(f"shard {file.name}: {exc}") from None


def _load_base(path: Path) -> ModelGraph:
    indexes = _index_files(path)
    if not indexes:
        single = _single_weights(path)
        assert single is not None
        graph = _load_file(single)
        graph.path = str(path)
        graph.metadata["folder"] = "hf"
        graph.metadata["weights_file"] = single.name
        return graph
    index = indexes[0]
    weight_map = _read_index(index)
    shards = list(dict.fromkeys(weight_map.values()))
    missing = [s for s in shards if not (path / s).is_file()]
    if missing:
        raise LoadError(f"shard {missing[0]} named by {index.name} is missing"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    graph: ModelGraph | None = None
    for shard in shards:
        part = _load_file(path / shard)
        if graph is None:
            graph = ModelGraph(path=str(path), format=part.format, content=part.content,
                               framework=part.framework, framework_version=part.framework_version)
            graph.ensure_layer("")
        wanted = {name for name, file in weight_map.items() if file == shard}
        for name in sorted(wanted - set(part.tensors)):
            raise LoadError(f"tensor {name} is not in shard {shard} as {index.name} says")
        extra = set(part.tensors) - wanted
        if extra:
            graph.notes.append(f"{shard} holds {len(extra)} tensors the index does not list "
                               f"(e.g. {sorted(extra)[0]}); they are ignored")
        _merge(graph, part, wanted)
    assert graph is not None
    if len(indexes) > 1:
        graph.notes.append(f"read {index.name}; also present: "
                           + ", ".join(p.name for p in indexes[1:]))
    graph.metadata["folder"] = "sharded"
    graph.metadata["index"] = index.name
    graph.metadata["shards"] = len(shards)
    _finish_order(graph)
    return graph


def _merge(graph: ModelGraph, part: ModelGraph, names: set[str] | None = None,
           rename: dict[str, str] | None = None) -> None:
    rename = rename or {}
    for name, tensor in part.tensors.items():
        if names is not None and name not in names:
            continue
        new_name = rename.get(name, name)
        layer, _, _ = new_name.rpartition(".")
        if new_name in graph.tensors:
            raise LoadError(f"tensor {new_name} is stored twice")
        graph.add_tensor(Tensor(
            name=new_name, layer=layer, role=tensor.role, shape=tensor.shape, dtype=tensor.dtype,
            trainable=tensor.trainable, trainable_fact=tensor.trainable_fact,
            aliases=[rename.get(a, a) for a in tensor.aliases],
        ))
        source = part.layers.get(tensor.layer)
        target = graph.layers[layer]
        if source is not None and target.class_name is None:
            target.class_name, target.kind, target.kind_fact = (
                source.class_name, source.kind, source.kind_fact)
            target.mode, target.mode_fact = source.mode, source.mode_fact
            target.attrs.update(source.attrs)
    for ref in part.code_references:
        if ref not in graph.code_references:
            graph.code_references.append(ref)
    graph.notes.extend(n for n in part.notes if n not in graph.notes)


def _finish_order(graph: ModelGraph) -> None:
    for layer in graph.layers.values():
        if layer.kind is LayerKind.OTHER and layer.children and not layer.tensors:
            layer.kind = LayerKind.CONTAINER
    if graph.format == "safetensors":
        graph.order = []  # safetensors keys are sorted, not in module order
    else:
        graph.order = list(graph.layers)
    graph.order_source = OrderSource.REGISTRATION


# -- PEFT ------------------------------------------------------------------------------------------
def _load_peft(path: Path) -> ModelGraph:
    config = _read_json(path / "adapter_config.json")
    if not isinstance(config, dict):
        raise LoadError("adapter_config.json is not a JSON object")
    adapter_file = next(path / n for n in ADAPTER_WEIGHTS if (path / n).is_file())
    adapter = _load_file(adapter_file)
    has_base = bool(_index_files(path) or _single_weights(path))
    graph = _load_base(path) if has_base else ModelGraph(
        path=str(path), format=adapter.format, content="adapter", framework="peft")
    graph.path = str(path)
    graph.content = "adapter"
    for tensor in graph.parameters():  # the base model, when its weights are beside the adapter
        tensor.trainable, tensor.trainable_fact = Trainable.FROZEN, BASE_FACT
    rename = {n: n[len(PEFT_PREFIX):] if n.startswith(PEFT_PREFIX) else n for n in adapter.tensors}
    _merge(graph, adapter, rename=rename)
    adapter_names = set(rename.values())
    for name in adapter_names:
        tensor = graph.tensors[name]
        if tensor.role.value == "parameter":
            tensor.trainable, tensor.trainable_fact = Trainable.TRAINABLE, PEFT_FACT
    if not has_base:
        graph.order = []
    else:
        _finish_order(graph)
    graph.metadata.update({
        "folder": "peft",
        "peft_type": config.get("peft_type"),
        "base_model": config.get("base_model_name_or_path"),
        "adapter_file": adapter_file.name,
    })
    for key in ("r", "lora_alpha", "target_modules", "modules_to_save", "task_type"):
        if config.get(key) is not None:
            graph.metadata[f"peft_{key}"] = config[key]
    trainable = sum(graph.tensors[n].numel or 0 for n in adapter_names)
    graph.metadata["trainable_params"] = trainable
    if has_base:
        total = sum(t.numel or 0 for t in graph.parameters())
        graph.metadata["all_params"] = total
        graph.metadata["trainable_percent"] = round(100 * trainable / total, 4) if total else None
        graph.notes.append(
            f"trainable params: {trainable:,} || all params: {total:,} || trainable%: "
            f"{100 * trainable / total:.4f}" if total else "no parameters found"
        )
    else:
        graph.notes.append(
            f"PEFT adapter: {trainable:,} trainable adapter parameters; the base model "
            f"({config.get('base_model_name_or_path') or 'not named'}) is not in the folder, so "
            "the trainable fraction is unknown"
        )
    return graph


def _name_from_config(graph: ModelGraph, path: Path) -> None:
    config_file = path / "config.json"
    if not config_file.is_file():
        return
    config = _read_json(config_file)
    if not isinstance(config, dict):
        return
    from ..tied_config import record_tied_embeddings

    record_tied_embeddings(graph, config)
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        graph.metadata["architecture"] = architectures[0]
        root = graph.root
        if root.class_name is None:
            root.class_name = architectures[0]
            root.kind = LayerKind.CONTAINER if root.children else LayerKind.OTHER
            root.kind_fact = Fact(Source.STORED, "config.json architectures")
    for key in ("model_type", "transformers_version", "torch_dtype", "dtype"):
        if isinstance(config.get(key), str):
            graph.metadata[key] = config[key]
    if not graph.order and isinstance(architectures, list) and architectures:
        _order_from_config(graph, str(architectures[0]), str(config.get("model_type") or ""))


#: names transformers gives the base model inside a task model (``base_model_prefix``)
BASE_MODEL_NAMES = ("model", "transformer", "base_model", "backbone")


def _natural(path: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in path.split(".")]


def _order_from_config(graph: ModelGraph, architecture: str, model_type: str) -> None:
    """Registration order of a transformers task model whose weights keep none (safetensors).

    A ``*For<Task>`` model registers its base model (``base_model_prefix``: the model type or a
    generic name) before the task head, so the head's layers come last. Inside each part the
    order is taken from the names (numbered blocks in number order).
    """
    if not re.search(r"For[A-Z]", architecture):
        return
    top = graph.root.children
    base_names = {model_type.replace("-", "_"), *BASE_MODEL_NAMES}
    base = [c for c in top if c in base_names]
    heads = [c for c in top if c not in base_names]
    if len(base) != 1 or not heads:
        return
    def subtree(path: str) -> list[str]:
        return sorted((layer.path for layer in graph.walk(path)), key=_natural)

    graph.order = ["", *subtree(base[0]), *(p for head in sorted(heads) for p in subtree(head))]
    graph.order_source = OrderSource.REGISTRATION
    graph.notes.append(
        f"layer order: {architecture} registers its base model ({base[0]}) before its task head "
        f"({', '.join(sorted(heads))}); inside each, order taken from the names")
