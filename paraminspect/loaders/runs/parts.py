"""Reading the non-weight files of a run folder (optimizer, scheduler, RNG, arguments, progress).

Every pickle goes through the restricted unpickler of the torch reader; the globals each one names
are recorded on the model's graph (located by file name), so an unsafe companion file is reported
like an unsafe model file. Nothing here parses a format of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import LoadError
from ...graph import ModelGraph
from ...sniff import sniff
from ..pickle.policy import code_references
from ..torch.companions import companion_kind
from ..torch.optimizer import (
    RawOptimizer,
    ScalarReader,
    is_optimizer_object,
    is_optimizer_state_dict,
    parse,
)
from ..torch.saved_files import read_pickle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: a JSON companion is never worth more than this
MAX_JSON_BYTES = 64 * 1024 * 1024


def read_part(graph: ModelGraph, file: Path) -> tuple[Any, ScalarReader]:
    """Unpickle ``file`` safely; its globals are recorded on ``graph``. LoadError names the file."""
    try:
        obj, log, read_scalar = read_pickle(file, sniff(file))
    except LoadError as exc:
        raise LoadError(f"{file.name}: {exc}") from None
    graph.code_references.extend(code_references(log, location=file.name))
    return obj, read_scalar


def read_optimizers(graph: ModelGraph, file: Path) -> tuple[list[RawOptimizer], ScalarReader]:
    """The optimizer(s) saved in ``file``: a state dict, a pickled optimizer, or a list of them."""
    obj, read_scalar = read_part(graph, file)
    values = obj if isinstance(obj, list) else [obj]
    found = [v for v in values if is_optimizer_state_dict(v) or is_optimizer_object(v)]
    if not found:
        raise LoadError(f"{file.name} holds no optimizer state")
    name = file.name if len(found) == 1 else None
    return [parse(name or f"{file.name}[{i}]", v) for i, v in enumerate(found)], read_scalar


def read_side_file(graph: ModelGraph, file: Path) -> tuple[str, Any]:
    """A scheduler / RNG / scaler / arguments pickle: its kind (``other`` if unknown) and object."""
    obj, _ = read_part(graph, file)
    return companion_kind(obj) or "other", obj


def read_json(file: Path) -> Any:
    try:
        if file.stat().st_size > MAX_JSON_BYTES:
            raise LoadError(f"{file.name} is larger than {MAX_JSON_BYTES // 2**20} MB")
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{file.name} is not readable JSON ({exc})") from None


def int_field(data: Any, key: str) -> int | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
