"""The JSON reporter: the Report serialized. This is the stable contract."""

from __future__ import annotations

import json

from ..findings import Report
from . import Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def render(report: Report, stream: TextIO, options: Options) -> None:
    json.dump(report.to_dict(), stream, indent=2)
    stream.write("\n")
