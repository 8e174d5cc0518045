"""Which layer an ONNX node belongs to, from the module scope its exporter recorded.

The dynamo exporter writes ``pkg.torch.onnx.name_scopes`` / ``class_hierarchy`` node metadata;
the legacy exporter encodes the scope in the node name (``/backbone/bn/BatchNormalization`` ->
``backbone.bn``). A node with neither gets a standalone name of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .records import NodeInfo

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"
#: the legacy exporter's per-node suffix: ``Conv``, ``Conv_1``, ``Constant_3``
LEGACY_SUFFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_\d+)?$")
#: metadata lists longer than this are not parsed (they are Python-literal strings)
MAX_LITERAL = 64 * 1024
#: (layer path, module scopes, their classes) of a node
Scope = tuple[str, Sequence[str], Sequence[str]]


def literal_list(text: str | None) -> list[str] | None:
    if not text or len(text) > MAX_LITERAL:
        return None
    import ast  # the dynamo exporter's metadata are Python literals; legacy exports have none

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def dynamo_scope(node: NodeInfo) -> Scope | None:
    """(layer path, module scopes, their classes) from the dynamo exporter's node metadata.

    Both lists end with the op itself (``'_native_batch_norm_legit_no_training'``,
    ``'aten.linear.default'``); the entry before it is the innermost module.
    """
    scopes = literal_list(node.metadata.get(NAME_SCOPES))
    if not scopes:
        return None
    classes = literal_list(node.metadata.get(CLASS_HIERARCHY)) or []
    modules = scopes[:-1] if len(scopes) > 1 else scopes
    module_classes = classes[: len(modules)] if len(classes) >= len(modules) else []
    path = modules[-1] if modules else ""
    if any(not p or p.startswith(".") or p.endswith(".") or ".." in p for p in modules[1:]):
        return None
    return path, modules, module_classes


def legacy_scope(node: NodeInfo, suffixes: dict[str, bool]) -> Scope | None:
    """``/backbone/blocks/blocks.0/conv/Conv_1`` -> ``backbone.blocks.0.conv``. ``suffixes``
    remembers which last parts are op suffixes (a model repeats a few: ``Mul``, ``Conv``)."""
    name = node.name
    if not name.startswith("/"):
        return None
    slashes = name.count("/")
    if slashes == 2:  # /scope/Op: the common case, without the list work below
        _, scope, suffix = name.split("/")
        is_op = suffixes.get(suffix)
        if is_op is None:
            is_op = suffixes[suffix] = LEGACY_SUFFIX.match(suffix) is not None
        return (scope, (), ()) if is_op and scope else None
    if slashes < 2:
        return None
    parts = name.split("/")[1:]
    suffix = parts[-1]
    is_op = suffixes.get(suffix)
    if is_op is None:
        is_op = suffixes[suffix] = LEGACY_SUFFIX.match(suffix) is not None
    if not is_op or "" in parts:
        return None
    path: list[str] = []
    for part in parts[:-1]:
        # containers repeat their own name: /blocks/blocks.0 -> blocks.0
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path), (), ()


def standalone_name(node: NodeInfo) -> str:
    name = node.name.strip("/") if node.name else f"{node.op_type}_{node.index}"
    return re.sub(r"[./]", "_", name) or f"{node.op_type}_{node.index}"


def unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"
