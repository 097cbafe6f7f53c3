"""auto: decide by measurement on the user's data, within a budget.

A task without a head to probe (token classification, causal LM) names its own pick
(``Task.default_strategy``, LoRA) and auto runs it. For classification the cheap candidate is always measured: the converged linear probe on cached features, scored by
k-fold cross-validation (``training.probe``). It is also the head every costlier strategy starts
from (LP-FT). Whether a costlier candidate is tried depends on the budget, the probe's CV score and
the data:

* ``"fast"``: the probe, always.
* ``"best"`` (default): a costlier candidate unless the probe is saturated (CV score at least
  ``SATURATED``): for text, contrastive tuning of the body (SetFit's recipe) below
  ``ADAPT_PER_CLASS`` examples per class and LoRA on every layer from the probe's head (LP-FT) from
  there (full fine-tuning from ``MANY_PER_CLASS``); for images, the upper half of the network from
  the probe's head (``freeze``, LP-FT; ``full`` from ``MANY_PER_CLASS``), and **only where it can be
  verified** (below): at 50 per class, fine-tuning EfficientNet-Lite0 scored below the probe on
  8x8 digits (freeze -6.3, full -11.2 points) and, with every layer trained, on MNIST (-2.4);
  ``freeze`` gained 1.8 on MNIST. Measured in ``benchmarks/few_shot.py``.
* a number of seconds: as ``"best"``, but a candidate is tried only if its estimated training time
  fits in what is left after the probe. The estimate is the measured forward rate of the feature
  extraction times the candidate's example passes times ``BACKWARD_FACTOR``. The choice then
  depends on the machine's speed; with ``"best"`` and ``"fast"`` it depends only on data and seed.

A gradient-trained candidate is **verified** when the run has a validation split with enough
examples of every class (``training.schedule.MIN_VALIDATION_PER_CLASS``): its best validation
score is compared with the probe fitted on the same training part, and the probe is kept when it
scores at least as well. Below that size no held-out comparison is trustworthy (two examples per
class move a score by 25-50 points), so the rule above decides. Every choice states its numbers
in ``strategy_reason``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..errors import StrategyError
from .base import Strategy, as_task, register_strategy
from .contrastive import Contrastive
from .freeze import Freeze
from .full import Full
from .linear_probe import LinearProbe
from .lora import LoRA

logger = logging.getLogger("transferkit")

BUDGETS = ("fast", "best")
SATURATED = 0.98
ADAPT_PER_CLASS = 25
MANY_PER_CLASS = 1000
BACKWARD_FACTOR = 3.0  # a training step costs about three forward passes (forward, backward, optimizer)


@dataclass
class Decision:
    """What auto runs, why, and whether the run must still beat the probe on held-out data to be kept."""

    strategy: Strategy
    reason: str
    verify: bool = False


@register_strategy
@dataclass
class Auto(Strategy):
    """``budget``: "best" (default), "fast", or seconds of training time (the probe's included)."""

    name = "auto"
    budget: str | float = "best"

    def __post_init__(self) -> None:
        numeric = isinstance(self.budget, (int, float)) and not isinstance(self.budget, bool)
        if not (self.budget in BUDGETS or (numeric and 0 < self.budget < float("inf"))):
            raise StrategyError(f"auto budget must be one of {BUDGETS} or a number of seconds > 0, got "
                                f"{self.budget!r}. Example: adapt(..., auto_budget=600).")

    def candidate(self, modality: str, task, examples_per_class: float, embeds: bool = True,
                  can_verify: bool = False) -> tuple[Strategy, str] | None:
        """The costlier strategy worth trying for this data, and why; None where only the probe fits.

        ``embeds``: the head reads one feature vector per example (False for GPT-2, which pools after
        its head): contrastive tuning needs that embedding. ``can_verify``: a validation split large
        enough to check a fine-tuned candidate against the probe exists.
        """
        per_class, task = f"{examples_per_class:.0f} examples per class", as_task(task)
        if modality == "image":
            if not can_verify:
                return None
            if examples_per_class >= MANY_PER_CLASS:
                return Full(), f"{per_class} (>= {MANY_PER_CLASS}): enough data to fine-tune every layer"
            return Freeze(), f"{per_class}: the upper half of the network from the probe's head (LP-FT)"
        if examples_per_class >= MANY_PER_CLASS:
            return Full(), f"{per_class} (>= {MANY_PER_CLASS}): enough data to fine-tune every layer"
        if examples_per_class < ADAPT_PER_CLASS:
            if not task.one_label_per_example or not embeds:
                return None
            return Contrastive(), (f"{per_class} (< {ADAPT_PER_CLASS}): contrastive tuning of the body, then the "
                                   "probe (SetFit's recipe)")
        return LoRA(), f"{per_class}: LoRA on every layer, starting from the probe's head (LP-FT)"

    def decide(self, modality: str, task, examples_per_class: float, probe=None, *,
               estimate: Callable[[Strategy], float | None] | None = None, spent: float = 0.0,
               can_verify: bool = False, embeds: bool = True) -> Decision:
        """The strategy to run for ``task`` (a :class:`~transferkit.tasks.Task`). ``estimate(strategy)``: its
        training seconds (None: unknown); ``spent``: seconds so far."""
        task = as_task(task)
        if task.default_strategy is not None:  # no head to probe (token classification, causal LM)
            from .base import strategy_from

            return Decision(strategy_from(task.default_strategy), task.strategy_reason)
        measured = (f"the linear probe scores {probe.cv_score:.3f} {probe.metric} in {probe.folds}-fold CV "
                    f"(C={probe.C:g})" if probe is not None and probe.cv_score is not None
                    else "the linear probe could not be cross-validated")
        if self.budget == "fast":
            return Decision(LinearProbe(), f"{measured}; budget 'fast' keeps it")
        if probe is not None and probe.cv_score is not None and probe.cv_score >= SATURATED:
            return Decision(LinearProbe(), f"{measured}: little left to gain from adapting the backbone")
        found = self.candidate(modality, task, examples_per_class, embeds, can_verify)
        if found is None:
            from ..training.schedule import MIN_VALIDATION_PER_CLASS  # here: training imports strategies

            why = (("no contrastive tuning for several labels per example" if not task.one_label_per_example else
                    "no contrastive tuning: the head does not read one embedding per example")
                   if modality == "text" else
                   f"fine-tuning an image backbone is tried only where a validation split holds at least "
                   f"{MIN_VALIDATION_PER_CLASS} examples of every class to check it against the probe (at 50 per class "
                   "it scored below the probe on 8x8 digits and on MNIST with every layer trained)")
            return Decision(LinearProbe(), f"{measured}; {examples_per_class:.0f} examples per class: {why}")
        strategy, why = found
        if not isinstance(self.budget, str):
            seconds = estimate(strategy) if estimate is not None else None
            left = self.budget - spent
            if seconds is None or seconds > left:
                cost = "an unknown time" if seconds is None else f"about {seconds:.0f} s"
                return Decision(LinearProbe(), f"{measured}; {strategy.name} would take {cost}, more than the "
                                               f"{max(left, 0):.0f} s left of auto_budget={self.budget:g}")
            why += f"; estimated {seconds:.0f} s of the {left:.0f} s left"
        verify = can_verify and not strategy.solves_head
        if verify:
            why += "; kept only if it beats the probe on the validation split"
        return Decision(strategy, f"{measured}; {why}", verify)

    def choose(self, modality: str, examples_per_class: float, probe=None, task: str = "single_label"):
        """(strategy, reason) as :meth:`decide` gives them without a time budget or verification."""
        d = self.decide(modality, task, examples_per_class, probe)
        return d.strategy, d.reason

    def apply(self, backbone, learning_rate):  # pragma: no cover - api resolves Auto before applying
        raise RuntimeError("Auto must be resolved with decide() before it is applied.")

