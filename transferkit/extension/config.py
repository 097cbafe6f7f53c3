"""``Protection``: how an extension keeps the classes the model already knows.

Four kinds of protection, selectable and combinable (the defaults need no old data):

* **feature rehearsal** (``feature_rehearsal=True``): pseudo-features of every old class, drawn
  around its stored mean with the stored within-class spread (``extension.memory``; with means only,
  FeTrIL's moved offsets, Petit et al. 2023). transferkit keeps those statistics with every
  single-label classifier, so this needs no old example. They describe the body they were taken
  with: exact while the body is frozen; when the body trains they are moved with it (below).
* **distillation** (``distillation=True``): the old model's outputs on the training examples are
  kept as soft targets for the old classes (learning without forgetting, Li & Hoiem 2016). It
  matters when the body trains; with a frozen body and fixed old rows the old logits cannot move.
* **rehearsal** of real old examples: those given to ``adapt(..., rehearsal=...)`` and the
  exemplars a model keeps (``adapt(..., keep_exemplars=N)``) join the training set.
* **bias correction** (``bias_correction``): trained only on new examples, new rows outscore old
  ones. "align" rescales the new rows to the old rows' mean norm (weight aligning, Zhao et al.
  2020); "none" leaves them; "auto" aligns only rows the loop trained, not rows solved against
  old-class features (feature rehearsal already puts old and new scores on one scale; measured in
  ``benchmarks/extension.py``, aligning on top lowered forgetting but cost 5 to 8 points of accuracy
  on MNIST and 8x8 digits, taken from the new classes, and moved tweets by under one point).

When the body trains, the stored class means no longer describe its features: they are moved by
how the training examples' features moved (semantic drift compensation, Yu et al. 2020), the
spread is taken again from the extension's own examples on the trained body, and the new rows are
solved again against pseudo-features drawn from both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

BIAS_CORRECTIONS = ("auto", "align", "none")


@dataclass
class Protection:
    """Options of ``adapt(previous, new_data, extend=Protection(...))``; ``extend=True`` is ``Protection()``."""

    feature_rehearsal: bool = True
    distillation: bool = True
    temperature: float = 2.0
    distillation_weight: float = 1.0
    bias_correction: str = "auto"
    use_exemplars: bool = True  # rehearse the exemplars the previous model kept, if any

    def __post_init__(self) -> None:
        for name in ("feature_rehearsal", "distillation", "use_exemplars"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"Protection {name} must be True or False, got {getattr(self, name)!r}.")
        for name in ("temperature", "distillation_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigError(f"Protection {name} must be a number > 0, got {value!r}.")
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise ConfigError(f"Protection bias_correction must be one of {BIAS_CORRECTIONS}, got "
                              f"{self.bias_correction!r}.")

    @classmethod
    def none(cls) -> "Protection":
        """No protection at all: the ablation ``compare=True`` shows beside the default."""
        return cls(feature_rehearsal=False, distillation=False, bias_correction="none", use_exemplars=False)

    def aligns(self, solved: bool) -> bool:
        """"auto" aligns only new rows that were trained, not solved against old-class features."""
        return self.bias_correction == "align" or self.bias_correction == "auto" and not solved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_keep_exemplars(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"keep_exemplars must be an integer >= 0 (examples kept per class), got {value!r}.")
    return value
