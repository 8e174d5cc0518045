"""PI202 train-mode-export: an exported inference graph runs BatchNorm or Dropout in train mode."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Severity
from ..graph import LayerKind, Mode, ModelGraph
from .base import Issue, Rule

#: graph.content of files meant for inference (ONNX, TorchScript, torch.export)
EXPORT_CONTENT = "export"
#: graph.metadata key: training-mode layers an exporter lowered into plain ops, each a dict with
#: ``location``, ``kind`` ("dropout" | "batchnorm") and ``evidence`` (the op chain)
LOWERED_KEY = "train_mode_ops"
LOWERED_FIX = (
    "Export from the model in inference mode: model.eval() before torch.onnx.export, "
    "model(x, training=False) in the function tf2onnx converts."
)
LOWERED_EFFECT = {
    "dropout": "draws random numbers and zeroes activations with them at inference (dropout "
    "in training mode, lowered to plain ops)",
    "batchnorm": "normalizes with the statistics of the batch it is given, not the learned "
    "running statistics (batch normalization in training mode, lowered to plain ops)",
}


class TrainModeExport(Rule):
    code = "PI202"
    name = "train-mode-export"
    severity = Severity.ERROR
    fix = (
        "Call model.eval() before exporting (torch.onnx.export(..., training=TrainingMode.EVAL), "
        "torch.jit.trace/script, torch.export.export)."
    )

    def check(self, graph: ModelGraph) -> Iterator[Issue]:
        if graph.content != EXPORT_CONTENT:
            return
        for layer in graph.layers.values():
            if layer.mode is not Mode.TRAIN:
                continue
            if (
                layer.kind is LayerKind.BATCHNORM
                and layer.attrs.get("track_running_stats") is not False
            ):
                effect = "normalizes with batch statistics and updates its running statistics"
            elif layer.kind is LayerKind.DROPOUT:
                effect = "randomly zeroes activations at inference"
            else:
                continue
            cls = (layer.class_name or layer.kind.value).rsplit(".", 1)[-1]
            yield Issue(
                location=layer.path,
                message=(
                    f"Exported {cls} is in training mode. At inference it {effect}, so outputs "
                    "differ from the evaluated model."
                ),
                paths=(layer.path,),
                evidence=layer.mode_fact.evidence or "stored in the export",
            )
        yield from self._lowered(graph)

    def _lowered(self, graph: ModelGraph) -> Iterator[Issue]:
        records = graph.metadata.get(LOWERED_KEY)
        if not isinstance(records, list):
            return
        for record in records:
            if not isinstance(record, dict) or record.get("kind") not in LOWERED_EFFECT:
                continue
            location = str(record.get("location", ""))
            yield Issue(
                location=location,
                message=(
                    f"{location or 'the graph'} {LOWERED_EFFECT[record['kind']]}: "
                    f"{record.get('evidence', '')}"
                ),
                fix=LOWERED_FIX,
                paths=(location,) if location else (),
            )
