"""full: every parameter trained, with learning rates that shrink toward the input.

Discriminative learning rates (fastai's ``slice(lr/100, lr)``): unfreezing everything at the
head's rate wrecks the pretrained features (fastai's Pets: 7.98% error frozen, 14.5% after a
naive unfreeze). Group i of n gets ``lr * top * (lowest/top) ** ((n-1-i)/(n-1))``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import StrategyError
from .base import Strategy, head_group, is_number, register_strategy, unfreeze


@register_strategy
@dataclass
class Full(Strategy):
    name = "full"
    top_lr_scale: float = 0.1
    lowest_lr_scale: float = 0.01

    def __post_init__(self) -> None:
        if not (is_number(self.lowest_lr_scale) and is_number(self.top_lr_scale)
                and 0 < self.lowest_lr_scale <= self.top_lr_scale):
            raise StrategyError(
                f"need 0 < lowest_lr_scale <= top_lr_scale, got {self.lowest_lr_scale!r} and {self.top_lr_scale!r}."
            )

    def apply(self, backbone, learning_rate):
        n = len(backbone.groups)
        groups = []
        for i, g in enumerate(backbone.groups):
            depth = (n - 1 - i) / (n - 1) if n > 1 else 0.0
            lr = learning_rate * self.top_lr_scale * (self.lowest_lr_scale / self.top_lr_scale) ** depth
            groups.append({"name": g.name, "params": unfreeze(backbone.model, g.params), "lr": lr})
        return groups + [head_group(backbone, learning_rate)]
