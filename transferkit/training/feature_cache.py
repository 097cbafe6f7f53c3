"""The frozen backbone's features, computed once, and the linear head solved on them.

A linear head on frozen features is a convex problem, so it is solved, not trained: run the
backbone once over un-augmented inputs (the usual linear-evaluation protocol), capture what
enters the head, and hand it to :func:`~transferkit.training.probe.fit_probe` (L-BFGS, the L2
strength chosen by k-fold CV). The same solved head is the start of LP-FT: ``freeze``, ``lora``
and ``full`` begin from it instead of from random weights (Kumar et al., 2022).

It applies when the head is one ``nn.Linear`` fed a (batch, features) tensor (timm classifiers,
the pooled text encoders); that is checked on the first batch by replaying the head on the
captured input. Otherwise (GPT-2 pools after its head) the head trains in the normal loop.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from .loop import FitResult

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


def linear_head(backbone) -> nn.Linear | None:
    head = head_module(backbone)
    return head if isinstance(head, nn.Linear) else None


@torch.no_grad()
def extract(backbone, head: nn.Module, loader, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor] | None:
    """Head inputs and targets for every example, or None if replaying the head does not give the logits."""
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


def cached_features(backbone, loader) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(features, targets) of ``loader``'s examples through the frozen backbone; None where the head is not linear."""
    head = linear_head(backbone)
    if head is None:
        return None
    from accelerate import PartialState

    # the whole model on the device training will use: extraction runs there, and the result is one piece
    device = PartialState(cpu=not torch.cuda.is_available()).device
    backbone.model.to(device)
    start = time.perf_counter()
    out = extract(backbone, head, loader, device)
    if out is not None:
        logger.info("features: %d x %d computed once in %.1f s", len(out[0]), out[0].shape[1], time.perf_counter() - start)
    return out


def solve_head(backbone, task, features: torch.Tensor, targets: torch.Tensor, *, seed: int, C: float | None = None,
               folds: int = 5):
    """Fit the linear head on ``features`` (convex, CV-chosen L2) and write it into the model; returns the ProbeFit."""
    from .probe import fit_probe

    head = linear_head(backbone)
    fit = fit_probe(features, targets, task.multi_label, C=C, folds=folds, seed=seed, n_outputs=head.out_features)
    with torch.no_grad():
        head.weight.copy_(fit.weight.to(head.weight))
        if head.bias is not None:
            head.bias.copy_(fit.bias.to(head.bias))
        else:  # a bias-free head keeps its logits' offsets in no parameter; the solver's are small but not zero
            logger.warning("the head has no bias: the probe's bias term is dropped")
    logger.info(fit.describe())
    return fit


@torch.no_grad()
def probe_result(backbone, task, fit, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor] | None) -> FitResult:
    """The one-row history of a solved head: train loss, CV score and C, and validation metrics if any."""
    head = linear_head(backbone)
    device = head.weight.device
    row = {"epoch": 1, "train_loss": float(task.loss(head(train[0].to(device)), train[1].to(device))),
           "probe_C": fit.C}
    if fit.cv_score is not None:
        row[f"cv_{task.metric}"] = fit.cv_score
    result = FitResult(model=backbone.model, cached=True, probe=fit)
    if val is not None:
        outputs = (head(val[0].to(device)).float().cpu().numpy(), val[1].numpy())
        row.update({f"eval_{k}": v for k, v in task.score(outputs, None).items()})
        result.val_outputs = outputs
    row["seconds"] = round(fit.seconds, 3)
    result.history.append(row)
    return result
