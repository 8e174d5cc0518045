"""``paraminspect show``: the freeze map, a module tree with trainability, mode and counts.

Repeated blocks fold into one line (``layer.0–11 ×12``), subtrees whose layers are all alike
collapse, and by default the tree is opened breadth-first only as far as about 60 lines allow,
so a 500-layer model fits on a screen; ``--depth N`` opens N levels, ``--all`` everything. Lines
are wrapped between words at the terminal's width. Plain Python, no third-party imports.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from ..graph import ModelGraph, Trainable
from . import Options
from .freeze_tree import FreezeTree, Item, class_label, legend
from .style import Paint, dumb_terminal, printable, terminal_width, use_color

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

STATE_STYLE = {
    "trainable": "green",
    "frozen": "blue",
    "mixed": "magenta",
    "unknown": "dim",
    "-": "dim",
}
#: a uniform subtree with more layers below than this is collapsed
COLLAPSE_AFTER = 2
#: lines the default map aims to fit in (the tree itself; the footer adds a few)
LINE_BUDGET = 56

#: layer path -> what a freeze policy asks of it (``frozen``, ``eval``...), for ``show --policy``
Marks = Mapping[str, tuple[str, ...]]


def _plan(
    tree: FreezeTree, root: Item, marks: Marks, depth: int | None, unfold: bool
) -> None:
    """Decide which items are opened (``item.children`` filled)."""
    fold = not unfold
    if unfold or depth is not None:
        stack = [root]
        while stack:
            item = stack.pop()
            if depth is not None and item.depth >= depth:
                continue
            tree.expand(item, fold)
            stack.extend(item.children)
        return
    lines = 1
    queue = [root]
    while queue:
        item = queue.pop(0)
        if item is not root and _collapsible(tree, item, marks):
            continue
        kids = tree.items(item.path, fold, item.depth)
        cost = len(kids) + sum(len(k.own) for k in kids)
        if lines + cost > LINE_BUDGET:
            if item is not root:
                continue
            kids = kids[: max(LINE_BUDGET - lines - 1, 1)]
            cost = len(kids) + sum(len(k.own) for k in kids)
        item.children = kids
        lines += cost
        queue.extend(kids)


def _collapsible(tree: FreezeTree, item: Item, marks: Marks) -> bool:
    if not item.uniform or item.summary.layers <= COLLAPSE_AFTER:
        return False
    if marks:  # a subtree whose layers a policy marks differently stays open
        below = {marks.get(layer.path) for layer in tree.graph.walk(item.path)}
        return len(below) == 1
    return True


class _Writer:
    def __init__(self, stream: TextIO, options: Options) -> None:
        self.stream = stream
        self.paint = Paint(use_color(stream, options.color))
        self.width = terminal_width(stream, options.width)
        fancy = not dumb_terminal() and getattr(stream, "isatty", lambda: False)()
        self.guides = ("├── ", "└── ", "│   ", "    ") if fancy else ("|-- ", "`-- ", "|   ", "    ")

    def line(self, prefix: str, head: list[tuple[str, str]], rest: list[tuple[str, str]],
             cont: str) -> None:
        """``prefix`` + painted ``head`` parts, then ``rest``; wrapped between parts (and words)
        with ``cont`` as the continuation prefix when a width is known."""
        p = self.paint
        text = prefix + "".join(t for t, _ in head)
        painted = prefix + "".join(p(t, s) for t, s in head)
        for part, style in rest:
            if self.width is None or len(text) + len(part) <= self.width:
                text += part
                painted += p(part, style)
                continue
            if text.strip():
                self.stream.write(painted.rstrip() + "\n")
            chunks = textwrap.wrap(
                part.strip(), width=max(self.width - len(cont) - 2, 20), break_long_words=False,
                break_on_hyphens=False,
            ) or [""]
            for chunk in chunks[:-1]:
                self.stream.write(cont + "  " + p(chunk, style) + "\n")
            text = cont + "  " + chunks[-1]
            painted = cont + "  " + p(chunks[-1], style)
        self.stream.write(painted.rstrip() + "\n")


def _describe(graph: ModelGraph, item: Item, marks: Marks, root: bool = False
              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    s = item.summary
    head = [(item.label if not root else "(model)", "bold")]
    if item.repeat > 1:
        head.append((f" ×{item.repeat}", "bold"))
    rest: list[tuple[str, str]] = []
    cls = class_label(graph, item.path)
    if cls:
        rest.append((f" {cls}", "dim"))
    rest.append((f"  {s.state}", STATE_STYLE.get(s.state, "")))
    if s.mode != "unknown":
        rest.append((f"  {s.mode}", "red" if s.mode == "train" else ""))
    if s.params:
        rest.append((f"  {s.params:,} params{' each' if item.repeat > 1 else ''}", "dim"))
    if not item.children and s.layers and not root:
        alike = ", all alike" if item.uniform else ""
        word = "layer" if s.layers == 1 else "layers"
        rest.append((f"  ({s.layers} {word} below{alike})", "dim italic"))
    if item.path in marks:
        rest.append((f"  [policy: {', '.join(marks[item.path])}]", "bold cyan"))
    return head, rest


def _draw(out: _Writer, graph: ModelGraph, item: Item, prefix: str, marks: Marks) -> None:
    tee, last, pipe, blank = out.guides
    total = graph.layers[item.path].children
    entries: list[Item | tuple[str, str, str]] = [*item.own, *item.children]
    shown_layers = sum(child.repeat for child in item.children)
    hidden = len(total) - shown_layers if item.children else 0
    for index, entry in enumerate(entries):
        end = index == len(entries) - 1 and not hidden
        guide, cont = (last, prefix + blank) if end else (tee, prefix + pipe)
        if isinstance(entry, tuple):
            name, shape, state = entry
            out.line(prefix + guide, [(f"{name} {shape}", "dim")],
                     [(f"  {state}", STATE_STYLE.get(state, ""))], cont)
            continue
        head, rest = _describe(graph, entry, marks)
        out.line(prefix + guide, head, rest, cont + (pipe if entry.children else blank))
        if entry.children or entry.own:
            _draw(out, graph, entry, cont, marks)
    if hidden > 0:
        out.line(prefix + last, [(f"… {hidden} more", "dim italic")],
                 [("  (--depth N or --all shows them)", "dim")], prefix + blank)


def render(
    graph: ModelGraph,
    stream: TextIO,
    options: Options,
    marks: Marks | None = None,
    depth: int | None = None,
    unfold: bool = False,
) -> None:
    """Print the freeze map; ``marks`` (layer path -> policy expectations) labels covered layers."""
    marks = marks or {}
    out = _Writer(stream, options)
    tree = FreezeTree(graph)
    root = Item("", "(model)", tree.summaries[""], depth=0)
    _plan(tree, root, marks, depth, unfold)
    title = [(printable(graph.path), "bold")]
    out.line("", title, [(f"  {graph.format} ({graph.content})", "dim")], "")
    head, rest = _describe(graph, root, marks, root=True)
    out.line("", head, rest, out.guides[2])
    _draw(out, graph, root, "", marks)
    _footer(out, graph)


def _footer(out: _Writer, graph: ModelGraph) -> None:
    source = graph.trainability_source()
    params = graph.parameters()
    trainable = sum(p.numel or 0 for p in params if p.trainable is Trainable.TRAINABLE)
    total = sum(p.numel or 0 for p in params)
    if source.value != "unknown":
        share = f"{100 * trainable / total:.2f}%" if total else "0%"
        out.line("", [(f"trainable params: {trainable:,} || all params: {total:,} || "
                       f"trainable%: {share}", "")],
                 [(f"  (trainability {source.value})", "dim")], "")
    else:
        out.line("", [(f"all params: {total:,}", "")],
                 [("  (trainability unknown: the file does not store it)", "dim")], "")
    for opt in graph.optimizers:
        evidence = f" ({opt.alignment_fact.evidence})" if opt.alignment_fact.evidence else ""
        out.line("", [(f"optimizer {opt.name}:", "")],
                 [(f" {opt.type or 'type unknown'}, {opt.size} parameters,", ""),
                  (f" alignment {opt.alignment}{evidence}", "")], "")
    for note in graph.notes:
        out.line("", [], [(f"note: {note}", "dim")], "")
    out.line("", [], [(f"legend: {legend(graph)}", "dim")], "")
