"""timm image models (CNNs and ViTs): by architecture name, ``hf-hub:`` id, local folder or module.

Layer groups come from the model's own ``group_matcher`` (fine-grained: one group per block),
the preprocessing from its pretrained config, and the head from ``reset_classifier``.
Saved folders use timm's ``save_for_hf`` layout, so ``timm.create_model("local-dir:DIR",
pretrained=True)`` opens them with the new head and label names.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelNotFoundError
from .base import Backbone, Family, LayerGroup, register_family
from .preprocess import ImagePreprocess


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".")[:-1] for n in names]
    prefix = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    return ".".join(prefix)


def _groups(model: nn.Module, head: set[str]) -> list[LayerGroup]:
    from timm.models import group_parameters

    try:
        grouped = group_parameters(model, model.group_matcher(coarse=False))
    except (AttributeError, NotImplementedError):  # a timm-like module without a group matcher
        grouped = {}
        for name, _ in model.named_parameters():
            grouped.setdefault(name.split(".")[0], []).append(name)
    groups = []
    for i, names in enumerate(grouped.values()):
        names = [n for n in names if n not in head]
        if names:
            fallback = "+".join(dict.fromkeys(n.split(".")[0] for n in names))
            groups.append(LayerGroup(_common_prefix(names) or ("stem" if i == 0 else fallback), names))
    return groups


def _head_names(model: nn.Module) -> list[str]:
    classifier = model.get_classifier()
    for prefix, module in model.named_modules():
        if module is classifier:
            return [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters()]
    return []


def _reinitialise(model: nn.Module) -> None:
    """Random weights for a model the user passed in (the from-scratch baseline).

    Layers reset themselves; parameters held directly by a model (ViT's position embedding and
    class token) are re-drawn by the model's own ``init_weights`` where it has one.
    """
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if hasattr(model, "init_weights"):
        model.init_weights()


def _init_head(model: nn.Module) -> None:
    """A small-scale start for the new head.

    timm initialises classifiers for training from scratch; EfficientNet's Google-style init
    draws from U(+-1/sqrt(num_classes)), which on 10 classes and pretrained 1280-d features gives
    initial logits of about +-10 and a first loss near 8. Transfer recipes (BiT, MAE) start the
    head near zero instead, so the first steps learn rather than undo the initialisation.
    """
    for module in model.get_classifier().modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@register_family
class TimmFamily(Family):
    name = "timm"
    modality = "image"
    HEADS = {"sequence": "timm's classifier, reset to the labels (reset_classifier)"}
    examples = "resnet50, vit_base_patch16_224, packaged:efficientnet_lite0"

    def accepts_module(self, module: nn.Module) -> bool:
        return all(hasattr(module, a) for a in ("reset_classifier", "get_classifier", "pretrained_cfg"))


    def accepts_folder(self, config: dict[str, Any]) -> bool:
        return "architecture" in config

    def build(self, source, labels, task, options) -> Backbone:
        import timm

        num_classes = len(labels)
        pretrained = options.get("pretrained", True)
        if isinstance(source, nn.Module):
            model = copy.deepcopy(source)  # never modify the caller's model in place
            model.reset_classifier(num_classes)
            if not pretrained:
                _reinitialise(model)
            name = type(source).__name__
        else:
            name = source
            timm_name = source if source.startswith("hf-hub:") or not Path(source).is_dir() else f"local-dir:{source}"
            try:
                # pretrained=False keeps the architecture and its preprocessing, with random weights
                model = timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes)
            except (OSError, RuntimeError) as exc:
                raise ModelNotFoundError(
                    f"could not load pretrained weights for timm model {source!r} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}). Offline? Save it once with timm's `save_for_hf` "
                    "and pass the folder, or use a `packaged:` model."
                ) from None
        _init_head(model)
        backbone = self._describe(model, name, options)
        if isinstance(source, str) and not Path(source).is_dir():  # the Hub repository the weights came from
            hub_id = source[len("hf-hub:"):] if source.startswith("hf-hub:") else model.pretrained_cfg.get("hf_hub_id")
            backbone.details["base_model"] = hub_id or None
        return backbone

    def _describe(self, model: nn.Module, name: str, options: dict[str, Any]) -> Backbone:
        from timm.data import resolve_data_config

        data_config = resolve_data_config({}, model=model)
        if options.get("image_size"):
            s = int(options["image_size"])
            data_config["input_size"] = (3, s, s)
        head = _head_names(model)
        return Backbone(
            family=self, model=model, groups=_groups(model, set(head)), head=head,
            num_features=int(model.num_features), source=name,
            preprocess=ImagePreprocess(data_config, augment=options.get("augment", True)),
            details={"architecture": model.pretrained_cfg.get("architecture", type(model).__name__)},
        )

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["pixel_values"])

    def save(self, backbone: Backbone, directory: Path, labels: list[str]) -> None:
        from timm.models._hub import save_for_hf

        cfg = backbone.preprocess.data_config
        data_config = {k: cfg[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in cfg}
        save_for_hf(backbone.model, str(directory), safe_serialization=True, data_config=data_config,
                    model_config={"label_names": list(labels), "num_classes": len(labels)})

    def load(self, directory: Path, options: dict[str, Any], task=None) -> Backbone:
        import timm

        model = timm.create_model(f"local-dir:{directory}", pretrained=True)
        return self._describe(model, str(options.get("source", directory)), options)
