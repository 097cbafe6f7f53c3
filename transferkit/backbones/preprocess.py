"""The preprocessing that goes with a backbone's weights, as plain objects the data code calls.

Data code never imports a family: it hands a list of decoded inputs (PIL images or strings) to
one of these and gets the tensors the model takes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger("transferkit")


@dataclass
class ImagePreprocess:
    """timm's data config (size, mean/std, interpolation, crop) turned into train and eval transforms.

    Training augmentation is deliberately mild (random resized crop over 70-100% of the image, no
    flips, no colour jitter): flips and heavy crops destroy digits, text and other oriented content,
    and with a few labels per class a mild crop is most of the gain.
    """

    data_config: dict[str, Any]
    augment: bool = True
    _transforms: dict[bool, Any] = field(default_factory=dict, repr=False, compare=False)

    def transform(self, training: bool):
        if training not in self._transforms:
            from timm.data import create_transform

            cfg = dict(self.data_config)
            kwargs: dict[str, Any] = dict(
                input_size=tuple(cfg["input_size"]), interpolation=cfg.get("interpolation", "bilinear"),
                mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
            )
            if training and self.augment:
                kwargs.update(is_training=True, scale=(0.7, 1.0), hflip=0.0, color_jitter=0.0)
            else:
                kwargs.update(crop_pct=cfg.get("crop_pct"), crop_mode=cfg.get("crop_mode"))
            self._transforms[training] = create_transform(**kwargs)
        return self._transforms[training]

    def __call__(self, images: list, training: bool = False) -> dict[str, torch.Tensor]:
        tf = self.transform(training)
        return {"pixel_values": torch.stack([tf(img) for img in images])}


def fitted_max_length(requested: int, config: Any) -> int:
    """``max_length`` within the model's position table: longer inputs cannot be embedded, so they are cut there."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and limit:
        limit -= 2  # RoBERTa's positions start after the padding index
    if limit and requested > limit:
        logger.warning("max_length=%d is more than this model's %d positions: texts are truncated to %d tokens",
                       requested, limit, limit)
        return int(limit)
    return requested


@dataclass
class TextPreprocess:
    """A tokenizer with dynamic padding: each batch is padded to its own longest text."""

    tokenizer: Any
    max_length: int = 128

    def __call__(self, texts: list[str], training: bool = False) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return dict(enc)  # only the tokenizer's model_input_names: what this model's forward takes
