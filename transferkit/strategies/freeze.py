"""freeze: the lower layer groups frozen, the upper groups and the head trained.

Lower layers hold generic features (edges, sub-words) that transfer; upper ones are the most
task-specific. Trained backbone groups use ``backbone_lr_scale`` times the head's rate, since
the head starts from random and the backbone does not.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import StrategyError
from .base import Strategy, freeze_all, head_group, lower_count, register_strategy, unfreeze


@register_strategy
@dataclass
class Freeze(Strategy):
    """Freeze the lower ``groups`` layer groups (or ``fraction`` of them when ``groups`` is None)."""

    name = "freeze"
    groups: int | None = None
    fraction: float = 0.5
    backbone_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.backbone_lr_scale <= 0:
            raise StrategyError(f"backbone_lr_scale must be > 0, got {self.backbone_lr_scale!r}.")

    def apply(self, backbone, learning_rate):
        n_frozen = lower_count(len(backbone.groups), self.groups, self.fraction)
        freeze_all(backbone.model)
        param_groups = [
            {"name": g.name, "params": unfreeze(backbone.model, g.params), "lr": learning_rate * self.backbone_lr_scale}
            for g in backbone.groups[n_frozen:]
        ]
        return param_groups + [head_group(backbone, learning_rate)]
