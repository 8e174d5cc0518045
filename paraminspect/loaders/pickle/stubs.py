"""The inert stand-ins the restricted unpickler puts where a pickle names a global, and the log
of every global a walk met and how it was used (referenced, instantiated, called)."""

from __future__ import annotations

from ...record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class GlobalUse(Record):
    __slots__ = ("references", "instantiations", "calls", "resolved", "flags", "resolved_calls",
                 "nested_clean")
    references: int
    instantiations: int  #: created without calling (NEWOBJ), like a module class
    calls: int  #: called while unpickling (REDUCE): code that would run on load
    resolved: str  #: the target Python would reach (aliases and attribute walks resolved)
    flags: list[str]  #: dangerous uses the walk itself saw
    resolved_calls: int  #: getattr lookups whose result was resolved and judged on its own
    nested_clean: int  #: nested pickles this loader was given that walked clean

    def __init__(
        self, references: int = 0, instantiations: int = 0, calls: int = 0, resolved: str = "",
        flags: list[str] | None = None, resolved_calls: int = 0, nested_clean: int = 0,
    ) -> None:
        self.references = references
        self.instantiations = instantiations
        self.calls = calls
        self.resolved = resolved
        self.flags = [] if flags is None else flags
        self.resolved_calls = resolved_calls
        self.nested_clean = nested_clean


class GlobalLog(Record):
    __slots__ = ("uses", "class_sources")
    uses: dict[str, GlobalUse]
    class_sources: list[str]  #: legacy format: pickled class source

    def __init__(
        self, uses: dict[str, GlobalUse] | None = None, class_sources: list[str] | None = None,
    ) -> None:
        self.uses = {} if uses is None else uses
        self.class_sources = [] if class_sources is None else class_sources

    def use(self, target: str, resolved: str = "") -> GlobalUse:
        entry = self.uses.get(target)
        if entry is None:
            entry = self.uses[target] = GlobalUse(resolved=resolved or target)
        return entry

    def merge(self, other: GlobalLog) -> None:
        """Add what a nested walk saw."""
        for target, use in other.uses.items():
            mine = self.use(target, use.resolved)
            mine.references += use.references
            mine.instantiations += use.instantiations
            mine.calls += use.calls
            mine.resolved_calls += use.resolved_calls
            mine.nested_clean += use.nested_clean
            mine.flags.extend(use.flags)
        self.class_sources.extend(other.class_sources)


class Stub:
    """Base of every stand-in class. Instances record arguments, BUILD state and items."""

    _pi_target: str = "?"
    _pi_log: GlobalLog | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        self = object.__new__(cls)
        self._pi_args = args
        self._pi_kwargs = kwargs
        self._pi_state: Any = None
        self._pi_items: dict[Any, Any] = {}
        self._pi_list: list[Any] = []
        if cls._pi_log is not None:
            cls._pi_log.use(cls._pi_target).instantiations += 1
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Only REDUCE gets here (NEWOBJ calls __new__ alone): the pickle *calls* this global.
        log = type(self)._pi_log
        if log is not None:
            use = log.use(type(self)._pi_target)
            use.instantiations -= 1
            use.calls += 1

    def __setstate__(self, state: Any) -> None:
        self._pi_state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pi_items[key] = value

    def append(self, value: Any) -> None:
        self._pi_list.append(value)

    def extend(self, values: Any) -> None:
        self._pi_list.extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:
        # A stub's result being called (getattr(os, 'system')(...)): record it as a call too,
        # judged like what produced it.
        parent_target = type(self)._pi_target
        target = f"{parent_target}()"
        log = type(self)._pi_log
        if log is not None:
            parent = log.use(parent_target)
            use = log.use(target, parent.resolved.removesuffix("()"))
            if parent.flags and not use.flags:
                use.flags.append(f"calls what {parent_target} returned")
        result_cls = type("Result", (Stub,), {"_pi_target": target, "_pi_log": log})
        return result_cls(*args, **kwargs)

    @classmethod
    def target(cls) -> str:
        return cls._pi_target

    @property
    def state_dict(self) -> dict[str, Any]:
        """The BUILD state as a dict (``(state, slotstate)`` tuples flattened)."""
        state = self._pi_state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<stub {type(self)._pi_target}>"



#: the module stand-in classes say they come from: where they were made before this module was
#: split off, since a class's repr can reach a report (a corrupt pickle's storage key)
STUB_MODULE = f"{__package__}.unpickler"


def new_stub_class(raw: str, namespace: dict[str, Any]) -> type:
    """A Stub subclass named after the last part of the dotted name ``raw``."""
    name = raw.rsplit(".", 1)[-1]
    namespace = {"__module__": STUB_MODULE, **namespace}
    return type(name if name.isidentifier() else "Global", (Stub,), namespace)

