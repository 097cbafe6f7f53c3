"""auto: decide by measurement on the user's data, within a budget.

The cheap candidate is always measured: the converged linear probe on cached features, scored by
k-fold cross-validation (``training.probe``). It is also the head every costlier strategy starts
from (LP-FT). Whether a costlier strategy is chosen depends on ``budget`` and on that score:

* ``"fast"``: the probe, always.
* ``"best"`` (default): a costlier strategy when the probe leaves room (CV score below
  ``SATURATED``) and the data can feed it (``examples per class`` at least ``ADAPT_PER_CLASS``):
  LoRA on every layer for transformers, the full network with discriminative rates for CNNs;
  with thousands per class, full fine-tuning everywhere.

Every choice states its numbers in ``strategy_reason``; the same data and seed give the same choice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import StrategyError
from .base import Strategy, register_strategy
from .full import Full
from .linear_probe import LinearProbe
from .lora import LoRA

logger = logging.getLogger("transferkit")

BUDGETS = ("fast", "best")
SATURATED = 0.98
ADAPT_PER_CLASS = 25
MANY_PER_CLASS = 1000


@register_strategy
@dataclass
class Auto(Strategy):
    name = "auto"
    budget: str = "best"

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise StrategyError(f"Auto budget must be one of {BUDGETS}, got {self.budget!r}.")

    def choose(self, modality: str, examples_per_class: float, probe=None) -> tuple[Strategy, str]:
        """The strategy for this data, and the reason with its numbers. ``probe``: the measured ProbeFit, if any."""
        measured = (f"the linear probe scores {probe.cv_score:.3f} {probe.metric} in {probe.folds}-fold CV "
                    f"(C={probe.C:g})" if probe is not None and probe.cv_score is not None
                    else "the linear probe could not be cross-validated")
        per_class = f"{examples_per_class:.0f} examples per class"
        if self.budget == "fast":
            return LinearProbe(), f"{measured}; budget 'fast' keeps it"
        if probe is not None and probe.cv_score is not None and probe.cv_score >= SATURATED:
            return LinearProbe(), f"{measured}: little left to gain from adapting the backbone"
        if examples_per_class < ADAPT_PER_CLASS:
            return LinearProbe(), (f"{measured}; {per_class} (< {ADAPT_PER_CLASS}): with this little data adapting the "
                                   "backbone rarely beats the converged probe and costs far more")
        if examples_per_class >= MANY_PER_CLASS:
            return Full(), f"{measured}; {per_class} (>= {MANY_PER_CLASS}): enough data to fine-tune every layer"
        if modality == "text":
            return LoRA(), f"{measured}; {per_class}: LoRA on every layer, starting from the probe's head (LP-FT)"
        return Full(), f"{measured}; {per_class}: the whole network at discriminative rates, from the probe's head (LP-FT)"

    def apply(self, backbone, learning_rate):  # pragma: no cover - api resolves Auto before applying
        raise RuntimeError("Auto must be resolved with choose() before it is applied.")
