"""Batched forward passes with no gradient: the one place logits are collected, in training and after."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


@torch.no_grad()
def collect_logits(forward: Callable, model: torch.nn.Module, loader, accelerator=None,
                   device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (float32) and targets for every example of ``loader``, in order.

    Under Accelerate each process sees a shard; ``gather_for_metrics`` reassembles the whole set
    and drops the padding examples added to even out the last batch.
    """
    was_training = model.training
    model.eval()
    outs, targets = [], []
    try:
        for batch in loader:
            labels = batch.pop("labels", None)
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward(model, batch).float()
            if accelerator is not None:
                logits, labels = accelerator.gather_for_metrics((logits, labels)) if labels is not None \
                    else (accelerator.gather_for_metrics(logits), None)
            outs.append(logits.cpu())
            if labels is not None:
                targets.append(labels.cpu())
    finally:
        model.train(was_training)
    y = torch.cat(targets).numpy() if targets else None
    return torch.cat(outs).numpy(), y
