"""How the restricted unpickler resolves what a pickle names: globals to inert stubs or a few real
harmless builtins, ``getattr`` and ``copyreg._reconstructor`` calls to what they would reach, nested
pickles walked, and persistent ids to :class:`StorageRef` records.
"""

from __future__ import annotations

import collections
import pickle

from ...errors import LoadError
from . import policy
from .stubs import GlobalLog, Stub, new_stub_class
from .tensors import STORAGE_DTYPES, TENSOR_BUILDERS, StorageRef, builder_class

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .limits import Limits

_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _latin1_encode(obj: object, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles spell ``bytes`` objects with it."""
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError("unexpected _codecs.encode use")
    return obj.encode("latin-1")


def _safe_str(obj: object = "", *rest: object) -> str:
    """``builtins.str`` for scalars only: str() of a shared-reference structure never ends."""
    if not rest and type(obj) in (str, int, float, bool, complex, type(None)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)) and len(obj) <= 1 << 20 and rest:
        return bytes(obj).decode("latin-1")
    raise pickle.UnpicklingError("str() of a container or object: refused")


#: Globals that resolve to the real, harmless object instead of a stub.
REAL_GLOBALS: dict[str, object] = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.defaultdict": collections.defaultdict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.dict": dict,
    "builtins.list": list,
    "builtins.tuple": tuple,
    "builtins.slice": slice,
    "builtins.complex": complex,
    "builtins.int": int,
    "builtins.float": float,
    "builtins.bool": bool,
    "builtins.str": _safe_str,
    "_codecs.encode": _latin1_encode,
}


class GlobalResolution:
    """The :class:`~.unpickler.RestrictedUnpickler`'s answers to the globals and persistent ids a
    pickle names (its state is set up by the unpickler)."""

    log: GlobalLog
    limits: Limits
    depth: int
    _classes: dict[str, type]
    storages: dict[str, StorageRef]

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise pickle.UnpicklingError("global name is not a string")
        module = _MODULE_ALIASES.get(module, module)
        raw = f"{module}.{name}"
        resolved, reason = policy.resolve(module, name)
        use = self.log.use(raw, resolved)
        use.references += 1
        if reason:
            use.flags.append(reason)
        if raw == "builtins.getattr":
            return self._getattr
        if raw in ("copyreg._reconstructor",):
            return self._reconstructor
        if raw in REAL_GLOBALS and not reason:
            return REAL_GLOBALS[raw]
        return self._stub_class(raw, resolved)

    def _stub_class(self, raw: str, resolved: str) -> type:
        cls = self._classes.get(raw)
        if cls is None:
            if raw in TENSOR_BUILDERS:
                cls = builder_class(raw)
            else:
                namespace: dict[str, Any] = {"_pi_target": raw, "_pi_log": self.log}
                if resolved in policy.NESTED_LOADERS:
                    namespace["__new__"] = self._nested_loader(raw)
                cls = new_stub_class(raw, namespace)
            self._classes[raw] = cls
        return cls

    def _getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        """``getattr`` as the pickle would call it, resolved to the attribute it would reach."""
        use = self.log.use("builtins.getattr")
        use.calls += 1
        owner = _owner_name(obj)
        if not isinstance(name, str) or owner is None:
            use.flags.append("looks up an attribute that is only known at load time")
            return self._stub_class("builtins.getattr()", "builtins.getattr()")
        raw = f"{owner}.{name}"
        module, _, first = owner.partition(".")
        resolved, reason = policy.resolve(module, f"{first}.{name}" if first else name)
        if reason:
            use.flags.append(f"getattr({owner}, {name!r}) {reason}")
        else:
            use.resolved_calls += 1
        self.log.use(raw, resolved).references += 1
        return self._stub_class(raw, resolved)

    def _reconstructor(self, cls: Any, base: Any, state: Any = None) -> Any:
        """``copyreg._reconstructor``: creates ``cls`` and, unless ``base`` is object, calls
        ``base.__init__`` on it, which runs whatever that class does."""
        self.log.use("copyreg._reconstructor").calls += 1
        base_name = _owner_name(base)
        if base is not object and base_name is not None and not policy.is_known(base_name):
            self.log.use(base_name).flags.append(
                "copyreg._reconstructor would run its constructor while loading"
            )
        if isinstance(cls, type) and issubclass(cls, Stub):
            instance = cls.__new__(cls)
            instance._pi_state = state
            return instance
        if cls in (dict, list, set, frozenset, collections.OrderedDict, object):
            return cls()
        raise pickle.UnpicklingError("copyreg._reconstructor of an unexpected class")

    def _nested_loader(self, raw: str) -> Any:
        unpickler = self

        def load_nested(cls: type, *args: Any, **kwargs: Any) -> Any:
            instance = Stub.__new__(cls)
            use = unpickler.log.use(raw)
            data = args[0] if args else None
            if not isinstance(data, (bytes, bytearray)):
                use.flags.append("unpickles data that is only computed at load time")
            elif unpickler.depth + 1 > unpickler.limits.max_nesting:
                use.flags.append(
                    f"nests pickles more than {unpickler.limits.max_nesting} levels deep: "
                    "the innermost were not walked"
                )
            else:
                from .carriers import walk_bytes  # a nested pickle may be a whole torch archive

                inner = GlobalLog()
                try:
                    walk_bytes(bytes(data), inner, unpickler.limits, unpickler.depth + 1)
                except LoadError as exc:
                    use.flags.append(f"unpickles bytes that could not be walked ({exc})")
                if not any(policy.verdict_of(u) for u in inner.uses.values()):
                    use.nested_clean += 1
                unpickler.log.merge(inner)
            return instance

        return load_nested

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple and len(pid) >= 5 and pid[0] == "storage" and type(pid[2]) is str:
            # torch's ('storage', storage_type, key, location, numel), once per tensor: the
            # general branch below, minus the checks these types make moot
            return self._storage(pid[2], pid[1], pid[3], pid[4])
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("unsupported persistent id")
        typename = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if typename == "storage" and len(pid) >= 5:
            storage_type, key, location, numel = pid[1:5]
            return self._storage(
                key if isinstance(key, str) else repr(key)[:64], storage_type, location, numel
            )
        if typename == "module" and len(pid) >= 4:
            # Legacy whole-module files carry each class's source: recorded, never compiled.
            cls = pid[1]
            name = cls._pi_target if isinstance(cls, type) and issubclass(cls, Stub) else "?"
            self.log.class_sources.append(name)
            return cls
        raise pickle.UnpicklingError("unsupported persistent id")

    def _storage(self, key: str, storage_type: Any, location: Any, numel: Any) -> StorageRef:
        """The one StorageRef of ``key``: tensors sharing a storage share the record."""
        ref = self.storages.get(key)
        if ref is None:
            dtype = None
            if isinstance(storage_type, type) and issubclass(storage_type, Stub):
                dtype = STORAGE_DTYPES.get(storage_type._pi_target.rsplit(".", 1)[-1])
            ref = self.storages[key] = StorageRef(
                key,
                dtype,
                location if isinstance(location, str) else None,
                numel if isinstance(numel, int) else None,
            )
        return ref


def _owner_name(obj: Any) -> str | None:
    """The dotted name of what a getattr or reconstructor is applied to."""
    if isinstance(obj, type) and issubclass(obj, Stub):
        return obj._pi_target
    if isinstance(obj, Stub):
        target = type(obj)._pi_target
        if target in ("builtins.__import__", "importlib.import_module") and obj._pi_args:
            module = obj._pi_args[0]
            if isinstance(module, str) and module.replace(".", "").replace("_", "").isalnum():
                return _MODULE_ALIASES.get(module, module)
        return target
    if obj is object:
        return "builtins.object"
    if isinstance(obj, type):
        return f"builtins.{obj.__name__}"
    if obj is None or isinstance(obj, (str, bytes, int, float, list, tuple, dict, set)):
        return f"builtins.{type(obj).__name__}"
    return None
