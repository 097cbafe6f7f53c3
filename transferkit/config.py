"""Typed run configuration: dataclasses that validate themselves and round-trip to JSON.

The whole run (model source, task, labels, strategy options, every learning rate actually
used) is written beside the weights, so a saved folder says exactly how it was made.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

MIXED_PRECISION = ("no", "fp16", "bf16")
HEAD_INITS = ("probe", "random", "given")  # "given": the head as built (an extension's grown head)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class TrainingConfig:
    """How to train. ``learning_rate`` is the new head's rate; each strategy derives the
    backbone's (lower) rates from it and records them, so no rate changes silently.

    ``epochs`` / ``max_steps`` left at None mean "a step budget from the data size"
    (:mod:`transferkit.training.schedule`); set, they are obeyed exactly. ``head_init="probe"``
    starts ``freeze``/``lora``/``full`` from the converged linear probe's head (LP-FT, Kumar et
    al. 2022) instead of a random one.
    """

    epochs: int | None = None
    max_steps: int | None = None
    head_init: str = "probe"
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    seed: int = 0
    early_stopping_patience: int | None = 3
    max_grad_norm: float | None = 1.0
    validation_fraction: float = 0.15
    max_length: int = 128
    image_size: int | None = None
    augment: bool = True
    feature_cache: bool | None = None
    num_workers: int = 0
    progress_bar: bool = True
    save_every: int | None = None

    def __post_init__(self) -> None:
        _check(self.save_every is None or _is_int(self.save_every) and self.save_every >= 1,
               f"save_every must be None or an integer >= 1 (optimizer steps between checkpoints), got {self.save_every!r}.")
        _check(self.epochs is None or _is_int(self.epochs) and self.epochs >= 1,
               f"epochs must be None or an integer >= 1, got {self.epochs!r}.")
        _check(self.max_steps is None or _is_int(self.max_steps) and self.max_steps >= 1,
               f"max_steps must be None or an integer >= 1, got {self.max_steps!r}.")
        _check(self.head_init in HEAD_INITS, f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}.")
        _check(_is_int(self.batch_size) and self.batch_size >= 1,
               f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        _check(_is_number(self.learning_rate) and 0 < self.learning_rate < float("inf"),
               f"learning_rate must be a number > 0, got {self.learning_rate!r}.")
        _check(_is_number(self.weight_decay) and self.weight_decay >= 0,
               f"weight_decay must be a number >= 0, got {self.weight_decay!r}.")
        _check(_is_number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
               f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        _check(_is_int(self.gradient_accumulation_steps) and self.gradient_accumulation_steps >= 1,
               f"gradient_accumulation_steps must be an integer >= 1, got {self.gradient_accumulation_steps!r}.")
        _check(_is_int(self.seed) and 0 <= self.seed < 2 ** 32,
               f"seed must be an integer in [0, 2**32 - 1] (what torch and numpy accept), got {self.seed!r}.")
        _check(self.mixed_precision is None or self.mixed_precision in MIXED_PRECISION,
               f"mixed_precision must be None (the launch config's, else 'no') or one of {MIXED_PRECISION}, "
               f"got {self.mixed_precision!r}.")
        _check(self.early_stopping_patience is None or _is_int(self.early_stopping_patience) and self.early_stopping_patience >= 1,
               f"early_stopping_patience must be None or >= 1, got {self.early_stopping_patience!r}.")
        _check(_is_number(self.validation_fraction) and 0 <= self.validation_fraction < 1,
               f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}.")
        _check(_is_int(self.max_length) and self.max_length >= 2, f"max_length must be an integer >= 2, got {self.max_length!r}.")
        _check(self.image_size is None or _is_int(self.image_size) and self.image_size >= 8,
               f"image_size must be None or an integer >= 8 pixels, got {self.image_size!r}.")
        _check(self.max_grad_norm is None or _is_number(self.max_grad_norm) and self.max_grad_norm > 0,
               f"max_grad_norm must be None or > 0, got {self.max_grad_norm!r}.")
        _check(_is_int(self.num_workers) and self.num_workers >= 0, f"num_workers must be an integer >= 0, got {self.num_workers!r}.")
        _check(self.feature_cache in (None, True, False), f"feature_cache must be None, True or False, got {self.feature_cache!r}.")


@dataclass
class RunConfig:
    """Everything needed to rebuild and explain an adapted model (saved as ``transferkit.json``)."""

    model: str
    family: str
    modality: str
    task: str
    labels: list[str]
    strategy: dict[str, Any]
    training: TrainingConfig = field(default_factory=TrainingConfig)
    pretrained: bool = True
    input_column: str | None = None
    label_column: str | None = None
    threshold: float | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    transferkit_version: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.training, dict):  # keys a newer version added are ignored, as at the top level
            known = {f.name for f in dataclasses.fields(TrainingConfig)}
            self.training = TrainingConfig(**{k: v for k, v in self.training.items() if k in known})
        from .tasks import get_task  # the registry names the tasks; tasks import this module's neighbours

        task = get_task(self.task)
        _check(len(self.labels) >= task.min_labels,
               f"task {self.task!r} needs at least {task.min_labels} labels, got {self.labels!r}.")
        _check(self.threshold is None or 0 < self.threshold < 1, f"threshold must be in (0, 1), got {self.threshold!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
