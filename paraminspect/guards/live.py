"""What the live-run rules (PI601-PI603) read: a graph of the live model plus what only a running
step shows (gradients, optimizer state, statistics that moved). Built by the guards; framework
neutral, so the torch, Lightning, transformers and Keras guards share the rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import ModelGraph


@dataclass
class LiveState:
    graph: ModelGraph
    step: int  #: the optimizer step about to run (1 = the first)
    #: parameter name -> it holds a gradient now (None: the framework does not show gradients)
    has_grad: dict[str, bool] | None = None
    #: parameter name -> the optimizer holds state for it (absent: not in the optimizer)
    opt_state: dict[str, bool] = field(default_factory=dict)
    #: parameter name -> its values changed in the steps so far (frameworks without gradients)
    updated: dict[str, bool] | None = None
    #: BatchNorm layer path -> (statistic tensor names, largest absolute change) since the start
    stats_moved: dict[str, tuple[list[str], float]] = field(default_factory=dict)
    framework: str = "pytorch"
