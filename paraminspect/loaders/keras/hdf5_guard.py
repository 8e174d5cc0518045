"""Checks run on an HDF5 file before anything reads it: libhdf5 would follow an external link to
any path (a FIFO there blocks forever), a hard-link cycle or shared group makes a recursive walk
revisit groups without end, and one attribute can hold millions of names.
"""

from __future__ import annotations

import math

from ...errors import LoadError
from ..pickle.limits import DEFAULT_LIMITS, Limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def guard(handle: Any, h5py: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise LoadError on external or soft links, objects reachable twice, oversized attributes."""
    links = 0

    def visit_link(name: str, link: Any) -> None:
        nonlocal links
        links += 1
        if links > limits.max_hdf5_objects:
            raise LoadError(f"HDF5 file with more than {limits.max_hdf5_objects:,} links: refused")
        if isinstance(link, h5py.ExternalLink):
            raise LoadError(
                f"HDF5 external link {name[:80]!r} -> {str(link.filename)[:120]}: never "
                "followed (it would open another file), so the file is not read"
            )
        if isinstance(link, h5py.SoftLink):
            raise LoadError(f"HDF5 soft link {name[:80]!r}: not followed, so the file is not read")

    try:
        handle.visititems_links(visit_link)
        objects: list[Any] = [handle]
        handle.visititems(lambda name, obj: objects.append(obj))  # each object once
        if links > len(objects) - 1:
            raise LoadError(
                "HDF5 object reachable by more than one path (a hard-link cycle or shared "
                "group): refused"
            )
        for obj in objects:
            _check_attributes(obj, h5py, limits)
    except LoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise LoadError(f"unreadable HDF5 structure ({str(exc)[:120]})") from None


def _check_attributes(obj: Any, h5py: Any, limits: Limits) -> None:
    for raw in _attribute_names(obj, h5py):
        attr = h5py.h5a.open(obj.id, raw)
        try:
            size = attr.get_storage_size()
        except (RuntimeError, OSError, ValueError):  # empty attributes report an error
            size = 0
        count = math.prod(attr.shape) if attr.shape else 1
        if size > limits.max_hdf5_attribute_bytes or count > limits.max_layers:
            raise LoadError(
                f"HDF5 attribute {raw.decode('utf-8', 'replace')[:60]!r} holds {count:,} values "
                f"({size:,} bytes), over the limit: refused"
            )


def _attribute_names(obj: Any, h5py: Any) -> list[bytes]:
    names: list[bytes] = []
    h5py.h5a.iterate(obj.id, lambda name, *_: names.append(name))
    return names
