"""Training-time guards: the rules on live objects, before the optimizer steps.

- :func:`paraminspect.guard` / :mod:`.torch`: hand-written PyTorch loops;
- :mod:`.lightning`: a Lightning ``Callback``;
- :mod:`.transformers`: a transformers ``TrainerCallback``;
- :mod:`.keras`: a ``keras.callbacks.Callback``.

Each framework is imported only by its own module.
"""

from .core import GuardError, GuardWarning

__all__ = ["GuardError", "GuardWarning"]
