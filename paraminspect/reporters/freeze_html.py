"""``paraminspect show --format html``: the freeze map as one self-contained HTML page.

The model is drawn as a strip of its layers with parameters, in model order, in three rows:
trainability (trainable / frozen / partly frozen / unknown), BatchNorm mode (train / eval) and
optimizer coverage (tracked by a saved optimizer or not). Findings are pinned to their layers.
No script, no font, no image, no link: the page renders the same offline, as a CI artifact.
"""

from __future__ import annotations

from html import escape

from ..findings import Finding
from ..graph import LayerKind, Mode, ModelGraph, Trainable
from .freeze_tree import FreezeTree, class_label, legend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

#: fill colours; tests look for them in a screenshot, so keep them flat and distinct
COLORS = {
    "trainable": "#2e7d32",
    "frozen": "#1565c0",
    "mixed": "#8e24aa",
    "unknown": "#9e9e9e",
    "bn-train": "#d32f2f",
    "bn-eval": "#80cbc4",
    "tracked": "#f9a825",
    "untracked": "#eeeeee",
    "no-optimizer": "#ffffff",
}
LABELS = {
    "trainable": "trainable",
    "frozen": "frozen",
    "mixed": "partly frozen",
    "unknown": "unknown (not stored)",
    "bn-train": "BatchNorm in train mode",
    "bn-eval": "BatchNorm in eval mode",
    "tracked": "in the saved optimizer",
    "untracked": "not in the saved optimizer",
}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #212121; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; }
.meta { color: #616161; margin-bottom: 12px; }
.strip { display: grid; grid-template-columns: 9em 1fr; gap: 2px 8px; align-items: stretch; }
.rowname { color: #616161; font-size: 12px; align-self: center; }
.row { display: flex; gap: 1px; min-height: 36px; }
.row.thin { min-height: 18px; }
.cell { flex: 1 1 0; min-width: 2px; position: relative; }
.pins { display: flex; gap: 1px; min-height: 22px; }
.pin { flex: 1 1 0; min-width: 2px; text-align: center; font-size: 11px; font-weight: 600;
       color: #b71c1c; overflow: hidden; white-space: nowrap; }
.legend { margin: 12px 0; display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle;
          margin-right: 4px; border: 1px solid #bdbdbd; }
table { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
td, th { border-bottom: 1px solid #e0e0e0; padding: 4px 8px; text-align: left;
         vertical-align: top; }
code { font-size: 12px; }
"""


def _layers(graph: ModelGraph) -> list[str]:
    """Layers that own parameters or are BatchNorm, in model order."""
    out = []
    for path in graph.order or [layer.path for layer in graph.walk("")]:
        layer = graph.layers.get(path)
        if layer is None or not path:
            continue
        if graph.own_parameters(path) or layer.kind is LayerKind.BATCHNORM:
            out.append(path)
    return out


def _state(graph: ModelGraph, path: str) -> str:
    states = {p.trainable for p in graph.own_parameters(path)}
    if not states:
        return "unknown"
    if len(states) == 1:
        return next(iter(states)).value
    return "unknown" if Trainable.UNKNOWN in states else "mixed"


def _mode(graph: ModelGraph, path: str) -> str | None:
    layer = graph.layers[path]
    if layer.kind is not LayerKind.BATCHNORM:
        return None
    if layer.mode is Mode.TRAIN:
        return "bn-train"
    if layer.mode is Mode.EVAL:
        return "bn-eval"
    return None


def _coverage(graph: ModelGraph, path: str) -> str:
    if not any(opt.aligned for opt in graph.optimizers):
        return "no-optimizer"
    tracked = {name for opt in graph.optimizers for name in opt.tracked}
    own = [p.name for p in graph.own_parameters(path)]
    if not own:
        return "no-optimizer"
    return "tracked" if any(name in tracked for name in own) else "untracked"


def _owner(location: str, layers: list[str]) -> str | None:
    """The strip cell a finding's location belongs to (the layer or its nearest ancestor)."""
    if location in layers:
        return location
    below = [p for p in layers if p.startswith(location + ".")] if location else []
    if below:
        return below[0]
    parts = location.split(".")
    while parts:
        parts.pop()
        candidate = ".".join(parts)
        if candidate in layers:
            return candidate
    return None


def render(graph: ModelGraph, findings: list[Finding], stream: TextIO) -> None:
    """Write the page for ``graph`` with ``findings`` pinned to their layers."""
    tree = FreezeTree(graph)
    layers = _layers(graph)
    pins: dict[str, list[str]] = {}
    for finding in findings:
        for location in finding.all_locations:
            owner = _owner(location, layers)
            if owner is not None and finding.code not in pins.setdefault(owner, []):
                pins[owner].append(finding.code)
    has_modes = any(_mode(graph, p) for p in layers)
    has_optimizer = any(opt.aligned for opt in graph.optimizers)

    def cell(path: str, key: str | None, what: str) -> str:
        color = COLORS.get(key or "", "#ffffff")
        params = tree.summaries[path].params
        title = f"{path} ({class_label(graph, path) or 'layer'}, {params:,} params): {what}"
        return (f'<div class="cell" style="background:{color}" data-layer="{escape(path)}" '
                f'title="{escape(title)}"></div>')

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>paraminspect freeze map: {escape(graph.path)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Freeze map of <code>{escape(graph.path)}</code></h1>",
        f'<div class="meta">{escape(graph.format)} ({escape(graph.content)}), '
        f"{len(layers)} layers with parameters, {tree.summaries[''].params:,} parameters; "
        f"{escape(legend(graph))}</div>",
        '<div class="strip">',
        '<div class="rowname">findings</div><div class="pins">',
        *[f'<div class="pin" title="{escape(", ".join(pins.get(p, [])))}">'
          f'{escape(" ".join(pins.get(p, [])))}</div>' for p in layers],
        "</div>",
        '<div class="rowname">trainability</div><div class="row" id="trainability">',
        *[cell(p, _state(graph, p), LABELS[_state(graph, p)]) for p in layers],
        "</div>",
    ]
    if has_modes:
        out += ['<div class="rowname">BatchNorm mode</div><div class="row thin" id="mode">']
        out += [cell(p, _mode(graph, p), LABELS.get(_mode(graph, p) or "", "no BatchNorm"))
                for p in layers]
        out += ["</div>"]
    if has_optimizer:
        out += ['<div class="rowname">optimizer</div><div class="row thin" id="optimizer">']
        out += [cell(p, _coverage(graph, p), LABELS.get(_coverage(graph, p), "")) for p in layers]
        out += ["</div>"]
    out += ["</div>", '<div class="legend">']
    shown = ["trainable", "frozen", "mixed", "unknown"]
    shown += ["bn-train", "bn-eval"] if has_modes else []
    shown += ["tracked", "untracked"] if has_optimizer else []
    out += [f'<span><span class="swatch" style="background:{COLORS[k]}"></span>'
            f"{escape(LABELS[k])}</span>" for k in shown]
    out += ["</div>"]
    if findings:
        out += ["<table><tr><th>rule</th><th>where</th><th>what</th><th>fix</th></tr>"]
        for finding in findings:
            where = ", ".join(loc or "(model)" for loc in finding.all_locations)
            out.append(
                f"<tr><td><b>{escape(finding.code)}</b> {escape(finding.name)} "
                f"[{escape(finding.severity.value)}]</td><td><code>{escape(where)}</code></td>"
                f"<td>{escape(finding.message)}</td><td>{escape(finding.fix)}</td></tr>"
            )
        out += ["</table>"]
    else:
        out += ["<p>No findings.</p>"]
    out += ["</body></html>"]
    stream.write("\n".join(out) + "\n")
