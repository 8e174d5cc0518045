"""PI003 external-data-escape: a model points at data outside its own folder."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import ModelGraph
from .base import Issue, Rule


class ExternalDataEscape(Rule):
    code = "PI003"
    name = "external-data-escape"
    severity = Severity.ERROR
    fix = (
        "Keep external data files beside the model and refer to them by a plain relative name "
        "(re-save with onnx.save(..., save_as_external_data=True, location='model.data'))."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        for ref in graph.code_references:
            if ref.how == "external-data-escape":
                yield Issue(
                    location=ref.location,
                    message=(
                        f"The tensor reads its data from {ref.target!r}, outside the model's "
                        "folder. A loader would open that file, which can leak or overwrite "
                        "data elsewhere (not opened here)."
                    ),
                    paths=(ref.target,),
                )
