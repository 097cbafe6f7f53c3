"""auto: pick a strategy from the number of labelled examples per class and the backbone.

The rules follow what the evidence shows on small data (README, reference runs): with about
ten examples per class, fine-tuning is no better than a linear probe on frozen features and
costs far more; with tens to hundreds, adapting the backbone pays (LoRA on every layer for text
models, the upper half of the layer groups unfrozen for image models); with thousands, fine-tune
everything.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .base import Strategy, register_strategy
from .freeze import Freeze
from .full import Full
from .linear_probe import LinearProbe
from .lora import LoRA

logger = logging.getLogger("transferkit")

FEW_PER_CLASS = 25
MANY_PER_CLASS = 1000


@register_strategy
@dataclass
class Auto(Strategy):
    name = "auto"

    def choose(self, modality: str, examples_per_class: float) -> tuple[Strategy, str]:
        if examples_per_class < FEW_PER_CLASS:
            return LinearProbe(), (f"{examples_per_class:.0f} examples per class (< {FEW_PER_CLASS}): with this little "
                                   "data fine-tuning rarely beats a linear probe on frozen features and costs far more")
        if examples_per_class >= MANY_PER_CLASS:
            return Full(), f"{examples_per_class:.0f} examples per class (>= {MANY_PER_CLASS}): enough data to fine-tune every layer"
        if modality == "text":
            return LoRA(), (f"{examples_per_class:.0f} examples per class on a transformer: LoRA adapts every layer "
                            "with few trainable parameters")
        return Freeze(fraction=0.5), (f"{examples_per_class:.0f} examples per class on an image model: train the upper "
                                      "half of the layer groups, keep the generic lower half frozen")

    def apply(self, backbone, learning_rate):  # pragma: no cover - api resolves Auto before applying
        raise RuntimeError("Auto must be resolved with choose() before it is applied.")
