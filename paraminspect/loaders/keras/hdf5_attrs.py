"""HDF5 attributes and group contents as plain Python values: an attribute as text, a name-list
attribute (``layer_names`` / ``weight_names``) as a list, the dataset names under a group.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def dataset_names(group: Any) -> list[str]:
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if hasattr(obj, "shape") else None)
    return found


def attr_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def attr_names(value: Any) -> list[str] | None:
    """A ``weight_names`` / ``layer_names`` attribute: an array, or its numpy repr string."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        text = attr_text(value) or ""
        if "..." in text:
            return None
        return [m.group(1) or m.group(2) for m in re.finditer(r"'([^']*)'|\"([^\"]*)\"", text)]
    try:
        return [attr_text(v) or "" for v in value]
    except TypeError:
        return None
