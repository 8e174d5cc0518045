"""The JSON reporter: the Report serialized. This is the stable contract."""

from __future__ import annotations

import json
from typing import TextIO

from ..findings import Report
from . import Options


def render(report: Report, stream: TextIO, options: Options) -> None:
    json.dump(report.to_dict(), stream, indent=2)
    stream.write("\n")
