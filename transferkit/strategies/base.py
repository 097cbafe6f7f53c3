"""What every strategy shares: the registry, the typed-config base class, and freezing helpers.

A strategy is a dataclass whose fields are its options (as in peft, the config *is* the
method). ``apply`` freezes or wraps the backbone and returns the optimizer's parameter groups,
each with the learning rate it will use, so the run can log and save every rate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ..errors import StrategyError, did_you_mean

STRATEGIES: dict[str, type["Strategy"]] = {}


def register_strategy(cls: type["Strategy"]) -> type["Strategy"]:
    STRATEGIES[cls.name] = cls
    return cls


@dataclass
class Strategy:
    """Base class; subclasses set ``name``, add option fields, and implement ``apply``."""

    name: ClassVar[str] = ""
    # True: the head is solved on the backbone's features (training.probe), never trained by the loop;
    # ``tune`` may first change the body (contrastive), and then the features are taken again.
    solves_head: ClassVar[bool] = False

    def check(self, task, modality: str) -> None:
        """Refuse, before anything loads, a task (a :class:`~transferkit.tasks.Task`) or modality this strategy
        cannot serve. A strategy that solves a linear head needs a task with one (classification)."""
        task = as_task(task)
        if self.solves_head and not task.solves_head:
            raise StrategyError(f"strategy {self.name!r} solves a linear head on one feature vector per example, and "
                                f"task {task.name!r} has no such head. Use strategy='lora' (the default for this "
                                "task), 'freeze' or 'full'.")

    def apply(self, backbone, learning_rate: float) -> list[dict[str, Any]]:
        """Freeze/wrap ``backbone`` in place; return optimizer groups ``{"name", "params", "lr"}``."""
        raise NotImplementedError

    def tune(self, backbone, inputs, y, param_groups, cfg) -> dict[str, Any] | None:
        """A phase on the body before the head is solved (``solves_head`` strategies); its record, or None."""
        return None

    def finalize(self, backbone) -> None:
        """After training: turn the trained model back into a plain model of its family (default: nothing)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self)}


def as_task(task: Any):
    """A Task object from a task or its registered name (callers may pass either)."""
    from ..tasks import get_task

    return get_task(task) if isinstance(task, str) else task


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any, low: float = float("-inf"), high: float = float("inf")) -> bool:
    """A finite real number (not a bool, a string or NaN) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return False
    return low <= value <= high and abs(value) != float("inf")


def require(ok: bool, strategy: str, key: str, value: Any, need: str) -> None:
    """Raise the one-line error every strategy option uses: which option, what it must be, what was seen."""
    if not ok:
        raise StrategyError(f"{strategy} {key} must be {need}, got {value!r}.")


def strategy_from(spec: "str | Strategy | dict[str, Any]") -> Strategy:
    """A strategy object from a name, a dict saved in a run config, or an object (returned as is)."""
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, type) and issubclass(spec, Strategy):
        raise StrategyError(f"strategy={spec.__name__} is the class; pass an instance, {spec.__name__}() (with options "
                            f"if you like), or the name {spec.name!r}.")
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
    else:
        name, spec = spec, {}
    if not isinstance(name, str) or name not in STRATEGIES:
        raise StrategyError(
            f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}.{did_you_mean(str(name), STRATEGIES)}"
        )
    cls = STRATEGIES[name]
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in spec if k not in fields]
    if unknown:
        raise StrategyError(f"strategy {name!r} has no option {unknown[0]!r}.{did_you_mean(unknown[0], fields)} "
                            f"Its options: {fields}.")
    return cls(**spec)


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze(model: nn.Module, names: list[str]) -> list[nn.Parameter]:
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise StrategyError(f"parameters {missing[:3]} not found in the model; this is a transferkit bug, please report it.")
    for n in names:
        params[n].requires_grad_(True)
    return [params[n] for n in names]


def head_group(backbone, learning_rate: float) -> dict[str, Any]:
    return {"name": "head", "params": unfreeze(backbone.model, backbone.head), "lr": learning_rate}


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The top-most sub-modules whose every parameter is frozen.

    Training puts these in eval mode: BatchNorm in a frozen group keeps its running statistics
    untouched (the Keras/Lightning trap), and dropout inside a frozen feature extractor is off.
    """
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix, _ in found if prefix):
            continue
        params = list(module.parameters())
        if name and params and not any(p.requires_grad for p in params):
            found.append((name, module))
    return [m for _, m in found]


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    model.train()
    for module in frozen:
        module.eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def lower_count(n_groups: int, groups: int | None, fraction: float | None) -> int:
    """How many groups from the input side a 'groups' or 'fraction' option selects."""
    if groups is not None:
        if not 0 <= groups <= n_groups:
            raise StrategyError(f"groups={groups} is out of range: this backbone has {n_groups} layer groups (0..{n_groups}).")
        return groups
    if fraction is None or not 0 <= fraction <= 1:
        raise StrategyError(f"fraction must be in [0, 1], got {fraction!r}.")
    return int(round(fraction * n_groups))
