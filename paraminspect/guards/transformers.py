"""The transformers guard: a ``TrainerCallback`` running the PyTorch guard from the Trainer.

    from paraminspect.guards.transformers import ParamInspectTrainerCallback
    trainer = Trainer(model, args, callbacks=[ParamInspectTrainerCallback(strict=True)], ...)

Checks at ``on_train_begin``, at every epoch start and in ``on_pre_optimizer_step`` (gradients
in place, after clipping, before the step): see :mod:`paraminspect.guards.torch`.
"""

from __future__ import annotations

from transformers import TrainerCallback

from ..config import Settings
from .torch import TorchGuard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _unwrap(optimizer: Any) -> Any:
    """accelerate wraps the optimizer; the guard needs the torch one (its param groups, state)."""
    inner = getattr(optimizer, "optimizer", None)
    return inner if inner is not None and hasattr(inner, "param_groups") else optimizer


class ParamInspectTrainerCallback(TrainerCallback):
    """Warn once per finding (``strict=True``: raise before the step) about freezing mistakes."""

    def __init__(self, strict: bool = False, settings: Settings | None = None) -> None:
        self.strict = strict
        self.settings = settings
        self.guard: TorchGuard | None = None

    @property
    def findings(self) -> list:
        return self.guard.findings if self.guard is not None else []

    def _ensure(self, model: Any, optimizer: Any) -> TorchGuard | None:
        if model is None:
            return None
        if self.guard is None or self.guard.model is not model:
            self.guard = TorchGuard(model, [_unwrap(optimizer)] if optimizer is not None else [],
                                    strict=self.strict, settings=self.settings)
        elif optimizer is not None and not self.guard.optimizers:
            self.guard.optimizers = [_unwrap(optimizer)]
        return self.guard

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, **kwargs: Any) -> None:
        guard = self._ensure(model, optimizer)
        if guard is not None and guard.optimizers:
            guard.start()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, **kwargs: Any) -> None:
        guard = self._ensure(model, optimizer)
        if guard is not None and guard.optimizers:
            guard.start()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None,
                              optimizer: Any = None, **kwargs: Any) -> None:
        guard = self._ensure(model, optimizer)
        if guard is not None:
            guard.before_step()

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.guard is not None:
            self.guard.after_step()
