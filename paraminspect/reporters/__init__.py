"""Reporters turn a :class:`~paraminspect.findings.Report` into text. They know nothing of
formats or rules beyond what a Finding carries. Each is imported only when asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, TextIO

from ..findings import Report

#: --format name -> "module:function" in this package
REPORTERS: dict[str, str] = {
    "text": "text:render",
    "json": "json_report:render",
}


@dataclass(frozen=True)
class Options:
    color: bool = True
    quiet: bool = False
    width: int | None = None


class Renderer(Protocol):
    def __call__(self, report: Report, stream: TextIO, options: Options) -> None: ...


def get_reporter(name: str) -> Renderer:
    target = REPORTERS.get(name)
    if target is None:
        raise KeyError(name)
    module_name, function = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    renderer: Renderer = getattr(module, function)
    return renderer
