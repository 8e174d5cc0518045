"""Rules: one module each. Importing this package registers every rule it contains."""

from __future__ import annotations

import importlib
import os

from .base import Issue, Rule

__all__ = ["Issue", "Rule", "all_rules", "get_rule"]

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    # every module of this folder but the contract and the helpers (os.scandir: pkgutil, which
    # does the same, costs more to import than all the rules)
    names = sorted(
        entry.name[:-3] for folder in __path__ for entry in os.scandir(folder)
        if entry.name.endswith(".py") and not entry.name.startswith("_") and entry.name != "base.py"
    )
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
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
