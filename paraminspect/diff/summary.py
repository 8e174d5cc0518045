"""The per-module summary of a diff: changed / unchanged / missing / reshaped tensors per module,
with repeated blocks folded (``encoder.layer.0`` ... ``encoder.layer.11`` become
``encoder.layer.*``) so a 48-block model still fits on one screen."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from .model import Diff

STATUSES = ("changed", "unchanged", "missing", "reshaped", "unread")
_INDEX = re.compile(r"^\d+$")


@dataclass
class ModuleRow:
    module: str  #: a module path, repeated blocks folded to ``*``
    instances: int = 0  #: how many concrete modules it stands for
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    reshaped: int = 0
    unread: int = 0
    _paths: set[str] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("_paths")
        return data


def module_key(layer: str) -> tuple[str, str]:
    """(folded key, concrete prefix) of a layer path: cut after the first numeric component and
    the one after it (``encoder.layer.3.attention``), or after two components."""
    parts = layer.split(".") if layer else []
    for index, part in enumerate(parts):
        if _INDEX.match(part):
            concrete = parts[: index + 2]
            folded = [*parts[:index], "*", *parts[index + 1 : index + 2]]
            return ".".join(folded), ".".join(concrete[: index + 1])
    cut = parts[:2]
    return ".".join(cut), ".".join(cut)


def fold_modules(diff: Diff) -> list[ModuleRow]:
    rows: dict[str, ModuleRow] = {}
    for name, delta in diff.deltas.items():
        tensor = diff.tensor(name)
        layer = tensor.layer if tensor is not None else name.rpartition(".")[0]
        key, concrete = module_key(layer)
        row = rows.setdefault(key, ModuleRow(module=key or "(root)"))
        row._paths.add(concrete)
        status = "missing" if delta.status.startswith("missing") else delta.status
        setattr(row, status, getattr(row, status) + 1)
    for row in rows.values():
        row.instances = len(row._paths)
    return list(rows.values())


def render_modules(rows: list[ModuleRow], stream: TextIO) -> None:
    """A plain-text table (the text reporter prints findings; this follows it)."""
    if not rows:
        return
    shown = [s for s in STATUSES if any(getattr(r, s) for r in rows)]
    width = max(len("module"), *(len(r.module) + (5 if r.instances > 1 else 0) for r in rows))
    stream.write("\ntensors per module (repeated blocks folded):\n")
    stream.write(f"  {'module':<{width}}  " + "  ".join(f"{s:>9}" for s in shown) + "\n")
    for row in rows:
        label = row.module + (f" (x{row.instances})" if row.instances > 1 else "")
        stream.write(f"  {label:<{width}}  "
                     + "  ".join(f"{getattr(row, s) or '-':>9}" for s in shown) + "\n")
