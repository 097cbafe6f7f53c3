"""Batched forward passes with no gradient: the one place model outputs are collected, in training and after.

What is kept of each batch is the task's choice (``Task.outputs``): logits for classification,
word-level predictions for token classification, summed log-likelihoods for a causal LM, so a
language model's batch x length x vocabulary logits are never held for a whole set.
"""
from __future__ import annotations

from typing import Any, Callable

import torch


@torch.no_grad()
def collect(forward: Callable, model: torch.nn.Module, loader, task, accelerator=None,
            device: torch.device | str | None = None) -> Any:
    """The task's joined outputs for every example of ``loader``, in order.

    Under Accelerate each process sees a shard; ``gather_for_metrics`` reassembles the whole set
    and drops the padding examples added to even out the last batch (tensors row by row, lists of
    Python objects item by item).
    """
    from accelerate.utils import send_to_device

    was_training = model.training
    model.eval()
    parts = []
    try:
        for batch in loader:
            labels = batch.pop("labels", None)
            if device is not None:
                batch, labels = send_to_device((batch, labels), device)
            kept = task.outputs(forward(model, batch), labels)
            if accelerator is not None:
                kept = accelerator.gather_for_metrics(kept, use_gather_object=isinstance(kept, list))
            parts.append(tuple(t.cpu() for t in kept) if isinstance(kept, tuple) else kept)
    finally:
        model.train(was_training)
    return task.join(parts)

