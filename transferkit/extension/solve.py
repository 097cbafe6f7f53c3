"""The head-only extension: the body stays frozen, the old rows stay exactly as they were, new rows are solved.

With a frozen body nothing the old classes rely on can change: their features and their rows are
the same bit for bit, so among old classes the model decides exactly as before. What remains is
to fit the new rows so that old and new scores are comparable. Trained on new examples alone, new
rows would win everywhere (nothing tells them where old classes lie); so the solve also sees
old-class examples: real ones where given (``rehearsal=``, exemplars, old classes in the new
data) and, by default, pseudo-features drawn from the stored class statistics: Gaussian around each
old class's mean with the stored within-class covariance (low rank plus an isotropic rest). Where a
model stored means only, each new example's offset from its class mean is moved onto an old
class's mean instead (FeTrIL, Petit et al. 2023). Measured on frozen features, old classes 0-4 then
5-9 (MNIST, EfficientNet-Lite0) and negative/neutral then positive (tweets, MiniLM), 3 seeds: at
100 per class the Gaussian draws came within 1.4 (MNIST) and 1.9 (tweets) points of joint training,
FeTrIL within 2.6 and 3.5; with the old classes' real offsets (an oracle) within 1.2 and 1.6.

The solve is the probe's convex problem restricted to the new rows: softmax cross-entropy over
every class with the old logits held fixed, plus ``||W_new||^2 / (2 C n)``, L-BFGS in float64,
started from the mean-feature rows. ``C`` is the previous probe's (so new rows are regularised as
the old ones were), else chosen by the probe's own cross-validation on the same examples.
Measured in ``benchmarks/extension.py`` (MNIST digits on EfficientNet-Lite0, tweets on MiniLM).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger("transferkit")


def pseudo_features(x: torch.Tensor, y: np.ndarray, n_old: int, means: dict[str, np.ndarray], labels: list[str],
                    seed: int, spread=None) -> tuple[torch.Tensor, np.ndarray]:
    """Old-class pseudo-features around each stored mean: Gaussian with ``spread`` (a ``memory.Spread``), or
    without one the new examples' offsets from their class mean (FeTrIL).

    As many per old class as the new classes have examples on average. Old classes without a stored
    mean get none.
    """
    new = np.flatnonzero(y >= n_old)
    centres = {c: x[new[y[new] == c]].double().mean(0) for c in np.unique(y[new])}
    offsets = torch.stack([x[i].double() - centres[y[i]] for i in new])
    per_class = max(1, round(len(new) / len(centres)))
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    rows, ids = [], []
    for c in range(n_old):
        if labels[c] not in means:
            continue
        if spread is not None:
            factor = torch.from_numpy(spread.factor).double()
            drawn = torch.randn(per_class, factor.shape[1], generator=generator, dtype=torch.float64) @ factor.T
            drawn += torch.randn(per_class, factor.shape[0], generator=generator, dtype=torch.float64) \
                * float(np.sqrt(spread.residual))
        else:
            drawn = offsets[rng.choice(len(offsets), size=per_class, replace=per_class > len(offsets))]
        rows.append(drawn + torch.from_numpy(np.asarray(means[labels[c]])).double())
        ids += [c] * per_class
    if not rows:
        return x[:0], np.zeros(0, dtype=np.int64)
    return torch.cat(rows).to(x.dtype), np.asarray(ids, dtype=np.int64)


def choose_C(previous_record: dict[str, Any], x: torch.Tensor, y: np.ndarray, seed: int) -> tuple[float, str]:
    """The previous probe's C; without one, the probe's CV on these examples."""
    probe = (previous_record.get("resolved") or {}).get("probe") or {}
    if probe.get("C"):
        return float(probe["C"]), "the previous probe's"
    from ..training.probe import fit_probe

    fit = fit_probe(x, torch.from_numpy(y), False, seed=seed)
    return fit.C, f"chosen by {fit.chosen_by}"


def solve_new_rows(head: nn.Linear, n_old: int, x: torch.Tensor, y: np.ndarray, C: float,
                   max_iter: int = 500) -> dict[str, Any]:
    """Fit ``head``'s rows ``[n_old:]`` (and biases) with rows ``[:n_old]`` fixed; write them into ``head``."""
    start = time.perf_counter()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny kernels: extra threads only wait (see training.probe)
    try:
        xd = x.detach().double().cpu()
        targets = torch.from_numpy(np.asarray(y)).long()
        w0, b0 = head.weight.detach().double().cpu(), (head.bias.detach().double().cpu() if head.bias is not None
                                                         else torch.zeros(head.out_features, dtype=torch.float64))
        old_logits = xd @ w0[:n_old].T + b0[:n_old]
        w = w0[n_old:].clone().requires_grad_(True)
        b = b0[n_old:].clone().requires_grad_(head.bias is not None)
        l2 = 1.0 / (2.0 * C * len(xd))
        opt = torch.optim.LBFGS([w, b] if head.bias is not None else [w], lr=1, max_iter=max_iter, history_size=20,
                                tolerance_grad=1e-7, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = torch.cat([old_logits, torch.addmm(b, xd, w.T)], 1)
            objective = F.cross_entropy(logits, targets) + l2 * (w ** 2).sum()
            objective.backward()
            return objective

        with torch.enable_grad():
            loss = float(opt.step(closure).detach())
    finally:
        torch.set_num_threads(previous)
    with torch.no_grad():
        head.weight[n_old:] = w.detach().to(head.weight)
        if head.bias is not None:
            head.bias[n_old:] = b.detach().to(head.bias)
    seconds = time.perf_counter() - start
    logger.info("new rows solved: %d rows on %d examples, C=%g, %.2f s", head.out_features - n_old, len(xd), C, seconds)
    return {"train_loss": loss, "C": C, "seconds": round(seconds, 3)}


def drifted_means(means: dict[str, np.ndarray], before: torch.Tensor, after: torch.Tensor) -> dict[str, np.ndarray]:
    """Old class means moved by how the body's training moved nearby features (semantic drift compensation,
    Yu et al. 2020): each mean shifts by the average change of the training examples' features, weighted by
    ``exp(-d^2 / 2 s^2)`` with ``d`` the example's distance to the mean before training and ``s^2`` the median ``d^2``.
    """
    b, a = before.double(), after.double()
    change = a - b
    moved = {}
    for label, mean in means.items():
        d2 = ((b - torch.from_numpy(np.asarray(mean)).double()) ** 2).sum(1)
        weight = torch.exp(-d2 / (2 * d2.median().clamp_min(1e-12)))
        shift = (weight[:, None] * change).sum(0) / weight.sum().clamp_min(1e-12)
        moved[label] = (torch.from_numpy(np.asarray(mean)).double() + shift).float().numpy()
    return moved
