"""linear-probe: the whole backbone frozen, only the new head trained.

The cheapest strategy, and with a handful of labels per class often as good as fine-tuning
(see the README's evidence): the pretrained features are used exactly as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import Strategy, freeze_all, head_group, register_strategy


@register_strategy
@dataclass
class LinearProbe(Strategy):
    """``min_steps``: with cached features (the default where the head allows it) the head trains for
    at least this many optimizer steps, since an epoch then costs almost nothing; see training.feature_cache."""

    name = "linear-probe"
    min_steps: int = 300

    def apply(self, backbone, learning_rate):
        freeze_all(backbone.model)
        return [head_group(backbone, learning_rate)]
