"""linear-probe: the whole backbone frozen, only the new head fitted.

The cheapest strategy, and with a handful of labels per class often as good as fine-tuning: the
pretrained features are used exactly as they are. The head is solved as the convex problem it is
(training.probe: L-BFGS with the L2 strength ``C`` chosen by ``folds``-fold cross-validation on the
training examples), so no validation split is carved for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import StrategyError
from .base import Strategy, freeze_all, head_group, register_strategy


@register_strategy
@dataclass
class LinearProbe(Strategy):
    """``C``: inverse L2 strength in scikit-learn's meaning (None: chosen by CV); ``folds``: CV folds."""

    name = "linear-probe"
    solves_head = True
    C: float | None = None
    folds: int = 5

    def __post_init__(self) -> None:
        if self.C is not None and not (isinstance(self.C, (int, float)) and not isinstance(self.C, bool) and self.C > 0):
            raise StrategyError(f"LinearProbe C must be None (chosen by cross-validation) or a number > 0, got {self.C!r}.")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 2:
            raise StrategyError(f"LinearProbe folds must be an integer >= 2, got {self.folds!r}.")

    def apply(self, backbone, learning_rate):
        freeze_all(backbone.model)
        return [head_group(backbone, learning_rate)]
