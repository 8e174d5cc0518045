"""The Lightning guard: a ``Callback`` running the PyTorch guard from Lightning's hooks.

    from paraminspect.guards.lightning import ParamInspectCallback
    trainer = lightning.Trainer(callbacks=[ParamInspectCallback(strict=True)])

Checks at ``on_train_start``, at every epoch start (where ``BaseFinetuning`` unfreezes) and in
``on_before_optimizer_step`` (gradients in place, before the step): see
:mod:`paraminspect.guards.torch`. Imports Lightning (``lightning`` or ``pytorch_lightning``).
"""

from __future__ import annotations

from ..config import Settings
from .torch import TorchGuard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the standalone package
    from pytorch_lightning.callbacks import Callback


class ParamInspectCallback(Callback):
    """Warn once per finding (``strict=True``: raise before the step) about freezing mistakes."""

    def __init__(self, strict: bool = False, settings: Settings | None = None) -> None:
        super().__init__()
        self.strict = strict
        self.settings = settings
        self.guard: TorchGuard | None = None
        self._stepped = False

    @property
    def findings(self) -> list:
        return self.guard.findings if self.guard is not None else []

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.guard = TorchGuard(pl_module, list(trainer.optimizers), strict=self.strict,
                                settings=self.settings)
        self._stepped = False
        self.guard.start()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.guard is not None:
            self.guard.optimizers = list(trainer.optimizers)
            self.guard.start()

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.guard is None:
            return
        if self._stepped:  # the previous step has run by now
            self.guard.after_step()
        self._stepped = True
        self.guard.before_step()
