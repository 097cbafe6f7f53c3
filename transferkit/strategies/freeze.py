"""freeze: the lower layer groups frozen, the upper groups and the head trained.

Lower layers hold generic features (edges, sub-words) that transfer; upper ones are the most
task-specific. Trained backbone groups use ``backbone_lr_scale`` times the head's rate, since
the head starts from random and the backbone does not.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import Strategy, freeze_all, head_group, is_int, is_number, lower_count, register_strategy, require, unfreeze


@register_strategy
@dataclass
class Freeze(Strategy):
    """Freeze the lower ``groups`` layer groups (or ``fraction`` of them when ``groups`` is None)."""

    name = "freeze"
    groups: int | None = None
    fraction: float = 0.5
    backbone_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        require(self.groups is None or (is_int(self.groups) and self.groups >= 0), "Freeze", "groups", self.groups,
                "None or an integer >= 0 (how many lower layer groups to freeze)")
        require(is_number(self.fraction, 0, 1), "Freeze", "fraction", self.fraction, "in [0, 1]")
        require(is_number(self.backbone_lr_scale) and self.backbone_lr_scale > 0, "Freeze", "backbone_lr_scale",
                self.backbone_lr_scale, "a number > 0")

    def apply(self, backbone, learning_rate):
        n_frozen = lower_count(len(backbone.groups), self.groups, self.fraction)
        freeze_all(backbone.model)
        param_groups = [
            {"name": g.name, "params": unfreeze(backbone.model, g.params), "lr": learning_rate * self.backbone_lr_scale}
            for g in backbone.groups[n_frozen:]
        ]
        return param_groups + [head_group(backbone, learning_rate)]
