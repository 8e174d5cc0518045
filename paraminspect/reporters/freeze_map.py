"""``paraminspect show``: the freeze map, a module tree with trainability, mode and counts.

Uniform subtrees (every layer below shares trainability and mode) collapse into one line, so a
500-layer model fits on a screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from rich.text import Text
from rich.tree import Tree

from ..graph import Mode, ModelGraph, Trainable, subtree_state
from . import Options
from .text import make_console

STATE_STYLE = {
    "trainable": "green",
    "frozen": "blue",
    "mixed": "magenta",
    "unknown": "dim",
    "-": "dim",
}
#: a uniform subtree with more descendants than this is collapsed
COLLAPSE_AFTER = 2


@dataclass(frozen=True)
class NodeSummary:
    state: str  #: trainable / frozen / mixed / unknown / - (no parameters)
    mode: str  #: train / eval / unknown / mixed
    params: int
    layers: int


def summarize(graph: ModelGraph, path: str) -> NodeSummary:
    params = graph.subtree_parameters(path)
    uniform = subtree_state(params)
    state = "-" if not params else "mixed" if uniform is None else uniform.value
    modes = {layer.mode for layer in graph.walk(path)}
    mode = modes.pop().value if len(modes) == 1 else "mixed"
    return NodeSummary(
        state=state,
        mode=mode,
        params=sum(p.numel or 0 for p in params),
        layers=sum(1 for _ in graph.walk(path)) - 1,
    )


#: layer path -> what a freeze policy asks of it (``frozen``, ``eval``...), for ``show --policy``
Marks = Mapping[str, tuple[str, ...]]


def _label(
    graph: ModelGraph, path: str, summary: NodeSummary, collapsed: bool, marks: Marks
) -> Text:
    layer = graph.layers[path]
    text = Text()
    text.append(layer.name or "(model)", style="bold")
    cls = (layer.class_name or "").rsplit(".", 1)[-1]
    if cls:
        text.append(f" {cls}", style="dim")
    elif layer.kind.value != "other":
        text.append(f" <{layer.kind.value}>", style="dim")
    text.append("  ")
    text.append(summary.state, style=STATE_STYLE.get(summary.state, ""))
    if summary.mode != Mode.UNKNOWN.value:
        text.append(f"  {summary.mode}", style="red" if summary.mode == "train" else "")
    if summary.params:
        text.append(f"  {summary.params:,} params", style="dim")
    if collapsed and summary.layers:
        text.append(f"  ({summary.layers} layers below, all alike)", style="dim italic")
    if path in marks:
        text.append(f"  [policy: {', '.join(marks[path])}]", style="bold cyan")
    return text


def _add(tree: Tree, graph: ModelGraph, path: str, marks: Marks) -> None:
    layer = graph.layers[path]
    for child in layer.children:
        summary = summarize(graph, child)
        uniform = summary.state != "mixed" and summary.mode != "mixed"
        # A subtree whose layers the policy marks differently stays open, so every mark shows.
        below = {marks.get(item.path) for item in graph.walk(child)}
        collapsed = uniform and summary.layers > COLLAPSE_AFTER and len(below) == 1
        branch = tree.add(_label(graph, child, summary, collapsed, marks))
        if not collapsed:
            _own_tensors(branch, graph, child)
            _add(branch, graph, child, marks)


def _own_tensors(branch: Tree, graph: ModelGraph, path: str) -> None:
    params = graph.own_parameters(path)
    if len({p.trainable for p in params}) > 1:  # a mixed layer: show each parameter
        for param in params:
            state = param.trainable.value
            branch.add(
                Text(f"{param.local_name} {param.shape}  ", style="dim")
                + Text(state, style=STATE_STYLE.get(state, ""))
            )


def render(
    graph: ModelGraph, stream: TextIO, options: Options, marks: Marks | None = None
) -> None:
    """Print the freeze map; ``marks`` (layer path -> policy expectations) labels covered layers."""
    marks = marks or {}
    console = make_console(stream, options)
    root_summary = summarize(graph, "")
    title = Text(f"{graph.path}  ", style="bold")
    title.append(f"{graph.format} ({graph.content})", style="dim")
    tree = Tree(title)
    tree.add(_label(graph, "", root_summary, False, marks))
    _add(tree, graph, "", marks)
    console.print(tree)
    source = graph.trainability_source()
    trainable = sum(p.numel or 0 for p in graph.parameters() if p.trainable is Trainable.TRAINABLE)
    total = sum(p.numel or 0 for p in graph.parameters())
    if source.value != "unknown":
        share = f"{100 * trainable / total:.2f}%" if total else "0%"
        console.print(
            f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {share}"
            f"  (trainability {source.value})"
        )
    else:
        console.print(f"all params: {total:,}  (trainability unknown: the file does not store it)")
    for opt in graph.optimizers:
        console.print(
            f"optimizer {opt.name}: {opt.type or 'type unknown'}, {opt.size} parameters, "
            f"alignment {opt.alignment}"
            + (f" ({opt.alignment_fact.evidence})" if opt.alignment_fact.evidence else "")
        )
    for note in graph.notes:
        console.print(Text(f"note: {note}", style="dim"))
