"""Rules: one module each. Importing this package registers every rule it contains."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Issue, Rule

__all__ = ["Issue", "Rule", "all_rules", "get_rule"]

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def all_rules() -> list[type[Rule]]:
    """Every registered rule class, sorted by code."""
    _load_all()
    return [Rule.registry[code] for code in sorted(Rule.registry)]


def get_rule(code_or_name: str) -> type[Rule] | None:
    _load_all()
    wanted = code_or_name.strip()
    for rule in Rule.registry.values():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None
