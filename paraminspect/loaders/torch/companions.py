"""Training-state files saved beside the weights: what they are and the few facts they hold.

Training frameworks write, next to the model, pickles that hold no model: training arguments,
learning-rate scheduler state, random-number-generator state, AMP grad-scaler state. They are
parts of a training run, not broken model files. Each object here is the restricted unpickler's
inert stand-in; nothing is executed.
"""

from __future__ import annotations

from ..pickle.stubs import Stub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: keys of ``torch.cuda.amp.GradScaler.state_dict()``
SCALER_KEYS = frozenset({"scale", "growth_factor", "backoff_factor", "growth_interval"})
#: keys of RNG-state dicts (transformers ``rng_state*.pth``, accelerate ``random_states_*.pkl``)
RNG_KEYS = frozenset({
    "python", "numpy", "cpu", "cuda", "xpu", "mps", "npu", "hpu", "mlu", "musa", "xla",
    "random_state", "numpy_random_seed", "torch_manual_seed", "torch_cuda_manual_seed",
    "torch_xpu_manual_seed", "torch_mps_manual_seed", "torch_npu_manual_seed", "xm_seed", "step",
})
#: fields that identify a pickled training-arguments dataclass (TrainingArguments and subclasses)
ARGS_FIELDS = frozenset({"output_dir", "learning_rate"})


def companion_kind(obj: Any) -> str | None:
    """``training-args``, ``scheduler``, ``rng-state`` or ``grad-scaler``; None for anything else."""
    if isinstance(obj, Stub):
        state = obj.state_dict
        if set(state) >= ARGS_FIELDS and obj.target().rsplit(".", 1)[-1].endswith(
                ("Arguments", "Config", "Args")):
            return "training-args"
        return None
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        return None
    keys = set(obj)
    if "last_epoch" in keys and keys & {"base_lrs", "_step_count", "lr_lambdas", "_last_lr"}:
        return "scheduler"
    if keys >= SCALER_KEYS:
        return "grad-scaler"
    if keys <= RNG_KEYS and keys & {"python", "numpy", "cpu", "random_state"}:
        return "rng-state"
    return None


def training_args_facts(obj: Any) -> dict[str, object]:
    """The fields of a pickled TrainingArguments that tell how the optimizer was built."""
    if not isinstance(obj, Stub):
        return {}
    state = obj.state_dict
    facts: dict[str, object] = {}
    for key in ("weight_decay", "learning_rate", "gradient_accumulation_steps", "max_steps"):
        value = state.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            facts[key] = value
    optim = _enum_value(state.get("optim"))
    if optim is not None:
        facts["optim"] = optim
    return facts


def _enum_value(value: Any) -> str | None:
    """A str enum member pickled as ``REDUCE(cls, (value,))`` (or a plain str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Stub) and value._pi_args and isinstance(value._pi_args[0], str):
        return value._pi_args[0]
    return None


def scheduler_step(obj: Any) -> int | None:
    """``last_epoch`` of a scheduler stepped once per optimizer step (the global step)."""
    if isinstance(obj, dict) and isinstance(obj.get("last_epoch"), int):
        return int(obj["last_epoch"])
    return None
