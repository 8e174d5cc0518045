"""Records: slotted classes with a dataclass's value semantics and none of its start-up cost.

``@dataclass`` writes each class's methods as source text and compiles it when the module is
imported; over the thirty-odd classes a check needs, that was a third of a small check's run
time. A record instead declares its fields in ``__slots__`` (in constructor order) and writes its
own ``__init__``, which is compiled ahead of time like any other function; equality, ``repr``,
hashing of frozen records, pickling, :func:`replace` and :func:`asdict` come from here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    R = TypeVar("R", bound="Record")


class Record:
    """Base of a mutable record. Subclasses list their fields in ``__slots__``."""

    __slots__ = ()
    #: every field, base classes first: filled in for each subclass
    _fields: tuple[str, ...] = ()
    #: fields left out of equality, hashing and ``repr`` (handles, caches)
    _hidden: tuple[str, ...] = ()
    #: the fields that make a record's value
    _compared: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__slots__", ())
        cls._fields = (*cls._fields, *((own,) if isinstance(own, str) else own))
        cls._compared = tuple(name for name in cls._fields if name not in cls._hidden)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._compared)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._compared)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable: like a dataclass, not hashable

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self._fields, state):
            object.__setattr__(self, name, value)


class FrozenRecord(Record):
    """A record whose fields cannot be reassigned after ``__init__``; hashable by value.

    Its ``__init__`` sets each field with :func:`assign`."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())


#: sets a field of a frozen record, in its ``__init__``
assign = object.__setattr__


def replace(record: R, **changes: Any) -> R:
    """A copy of ``record`` with the given fields changed (``dataclasses.replace``)."""
    values = {name: getattr(record, name) for name in record._fields}
    unknown = set(changes) - values.keys()
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(record)(**values)


def asdict(record: Record) -> dict[str, Any]:
    """The fields as a dict, records inside records and containers converted too."""
    return {name: _plain(getattr(record, name)) for name in record._fields}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
