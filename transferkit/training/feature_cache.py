"""Linear probe on cached features: run the frozen backbone once, then train only the head.

With the backbone frozen, every epoch recomputes the same features; caching them makes an epoch
of head training cost almost nothing, so the head can train to convergence (``min_steps``
optimizer steps) for the price of one forward pass over the data. This is the usual linear
evaluation protocol: features of un-augmented inputs, no dropout in front of the head.

It applies when the head is one module whose output is the logits and whose input is a
(batch, features) tensor (timm classifiers, BERT's ``classifier``); that is checked on the first
batch by replaying the head on the captured input. Otherwise (GPT-2 pools after its head,
DistilBERT's head is two modules) training falls back to the normal loop.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .loop import FitResult, fit

logger = logging.getLogger("transferkit")


def head_module(backbone) -> nn.Module | None:
    """The single module holding every head parameter, if there is one."""
    head = set(backbone.head)
    prefix = min((n.rsplit(".", 1)[0] for n in head), key=len, default=None)
    if prefix is None:
        return None
    module = backbone.model.get_submodule(prefix)
    names = {f"{prefix}.{n}" for n, _ in module.named_parameters()}
    return module if names == head else None


@torch.no_grad()
def extract(backbone, head: nn.Module, loader, device: torch.device | str = "cpu") -> tuple[torch.Tensor, np.ndarray] | None:
    """Head inputs for every example, or None if replaying the head does not give the logits."""
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, args, out: captured.append(args[0].detach()))
    model = backbone.model
    was_training = model.training
    model.eval()
    feats, targets = [], []
    try:
        for batch in loader:
            labels = batch.pop("labels")
            batch = {k: v.to(device) for k, v in batch.items()}
            captured.clear()
            logits = backbone.family.logits(model, batch)
            if len(captured) != 1 or captured[0].ndim != 2:
                return None
            if not feats and not torch.allclose(head(captured[0]), logits, atol=1e-5, rtol=1e-4):
                return None
            feats.append(captured[0].float().cpu())
            targets.append(labels)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(feats), torch.cat(targets)


def _loader(features: torch.Tensor, targets: torch.Tensor, batch_size: int, training: bool, seed: int):
    def collate(items):
        x, y = zip(*items)
        return {"features": torch.stack(x), "labels": torch.stack(y)}

    generator = torch.Generator().manual_seed(seed) if training else None
    return DataLoader(TensorDataset(features, targets), batch_size=batch_size, shuffle=training,
                      generator=generator, collate_fn=collate)


def fit_cached(backbone, task, param_groups, train_eval_loader, val_loader, cfg, min_steps: int) -> FitResult | None:
    """Train the head on cached features; None when this backbone's head cannot be replayed."""
    head = head_module(backbone)
    if head is None:
        return None
    from accelerate import PartialState

    # the whole model on the device the head will train on: extraction runs there, and the result is one piece
    device = PartialState(cpu=not torch.cuda.is_available()).device
    backbone.model.to(device)
    train = extract(backbone, head, train_eval_loader, device)
    if train is None:
        return None
    val = extract(backbone, head, val_loader, device) if val_loader is not None else None
    steps_per_epoch = math.ceil(len(train[0]) / cfg.batch_size / cfg.gradient_accumulation_steps)
    epochs = max(cfg.epochs, math.ceil(min_steps / steps_per_epoch))
    logger.info("feature cache: %d x %d features computed once; head trained for %d epochs (%d steps)",
                len(train[0]), train[0].shape[1], epochs, epochs * steps_per_epoch)
    result = fit(head, lambda m, b: m(b["features"]), task, param_groups,
                 _loader(*train, cfg.batch_size, True, cfg.seed),
                 None if val is None else _loader(*val, cfg.batch_size, False, cfg.seed), cfg, epochs=epochs)
    result.model, result.cached = backbone.model, True  # the head was trained in place
    return result
