"""Contrastive tuning of the backbone body: same-class examples pulled together, other classes pushed apart.

The first phase of SetFit (Tunstall et al. 2022) and FastFit (Yehudai & Bendel 2024): with a
handful of labels per class, a linear probe on the pretrained embedding is limited by how well the
embedding separates *these* classes; SetFit reports that a short contrastive phase spends the same
labels better than a cross-entropy fine-tune (8 per class, 6 tasks: 65.7 vs 49.5 for RoBERTa-large).
What it measured here is in ``strategies/contrastive.py``. The head is not trained here; the caller
solves it afterwards (``training.probe``) on embeddings of the tuned body.

Why in-batch and not SetFit's pair list: SetFit embeds each sampled pair separately, so a batch of
16 pairs costs 32 forward passes for 16 comparisons. A class-balanced batch of 16 examples gives
120 comparisons for 16 passes. Both losses here read every pair of a batch:

- ``supcon``: supervised contrastive loss (Khosla et al. 2020, the "L_out" form; setfit's
  ``SupConLoss`` with one view), what FastFit's in-batch objective is built on.
- ``cosine``: SetFit's objective, ``CosineSimilarityLoss`` (MSE between the cosine of a pair and
  1 for same class / 0 otherwise), over all in-batch pairs, positives and negatives weighted
  equally as SetFit's balanced pair sampler does.

Both are written here on plain tensors (a dozen lines) rather than taken from sentence-transformers,
whose losses take a ``SentenceTransformer`` in their constructor and run it themselves, and which
has no SupCon (setfit's ``SupConLoss`` returns NaN when an anchor has no positive in the batch;
ours leaves that anchor out, and otherwise equals it to 1e-6). The tests check both against
hand-computed cases and the paper's formula written as loops.

An example's embedding is the input of the head module, captured by a forward hook exactly as
``feature_cache.extract`` captures the features the probe is fitted on, so the phase tunes the very
vectors the probe will read: pooled (and normalised) sentence embeddings, or a CNN's pre-logits.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import StrategyError

logger = logging.getLogger("transferkit")


# --- batches ---------------------------------------------------------------------------------------
class _Cycle:
    """Items of ``pool`` in one random order after another; a draw never holds an item twice.

    An item that would repeat inside a draw (the end of one order meeting the start of the next)
    stays first in line for the next draw, so over a run every item is drawn equally often, +-1.
    """

    def __init__(self, pool: np.ndarray, rng: np.random.Generator):
        self.pool, self.rng, self.queue = pool.tolist(), rng, []

    def take(self, k: int, avoid: Sequence = ()) -> list:
        k = min(k, len(set(self.pool) - set(avoid)))
        chosen, i = [], 0
        while len(chosen) < k:
            if i == len(self.queue):
                self.queue += self.rng.permutation(self.pool).tolist()
            if self.queue[i] in chosen or self.queue[i] in avoid:
                i += 1
            else:
                chosen.append(self.queue.pop(i))
        return chosen


def class_balanced_batches(y: np.ndarray, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """``steps`` batches of example indices, each spread over several classes with >= 2 of most of them.

    A batch takes ``P = min(classes, batch_size // 2)`` classes and splits ``batch_size`` among
    them as evenly as possible (3 classes, 16: 6+5+5; 50 classes, 16: 8 classes x 2), so every
    batch holds positives and negatives. Classes come round in turn (a new random order each pass),
    so each class appears every ``ceil(classes / P)`` batches; examples of a class also come round
    in turn. A class with one example takes part as a negative only, and each batch includes at
    least one class with two or more examples, so the loss always has a positive pair to pull.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise StrategyError(f"contrastive tuning needs one class id per example, got targets of shape {y.shape}.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    pairable = classes[counts >= 2]
    if len(pairable) == 0:
        raise StrategyError("contrastive tuning needs at least one class with 2 or more examples (every class has "
                            "one): add examples or use strategy='linear-probe'.")
    members = {c: _Cycle(np.flatnonzero(y == c), rng) for c in classes.tolist()}
    class_cycle, anchor_cycle = _Cycle(classes, rng), _Cycle(pairable, rng)
    n_per = min(len(classes), max(1, batch_size // 2))
    batches = []
    for _ in range(steps):
        chosen = class_cycle.take(n_per)
        if not any(c in pairable for c in chosen):
            chosen[0] = anchor_cycle.take(1, avoid=chosen[1:])[0]
        shares = [batch_size // n_per + (i < batch_size % n_per) for i in range(n_per)]
        batch = [i for c, share in zip(chosen, shares) for i in members[c].take(share)]
        batches.append(np.asarray(batch, dtype=np.int64))
    return batches


# --- losses ----------------------------------------------------------------------------------------
def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, eq. 2), one view per example.

    For anchor i with positives P(i) (same class, not i): mean over p in P(i) of
    ``-log( exp(s_ip / t) / sum_{a != i} exp(s_ia / t) )`` on cosine similarities s, averaged over
    the anchors that have a positive. Equal to setfit's ``SupConLoss`` at base_temperature = t.
    """
    z = F.normalize(embeddings.float(), dim=-1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(1)
    anchors = n_pos > 0
    per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / n_pos[anchors]
    return per_anchor.mean()


def cosine_pair_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SetFit's CosineSimilarityLoss over every in-batch pair: (cos - 1)^2 for same class, cos^2 otherwise.

    Positive and negative pairs are averaged separately and then together, as SetFit's sampler
    draws them in equal numbers.
    """
    z = F.normalize(embeddings.float(), dim=-1)
    cos = z @ z.T
    upper = torch.triu(torch.ones_like(cos, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    parts = [((cos - 1.0) ** 2)[same & upper], (cos ** 2)[~same & upper]]
    return torch.stack([p.mean() for p in parts if p.numel()]).mean()


LOSSES = {"supcon": lambda z, y, t: supcon_loss(z, y, t), "cosine": lambda z, y, t: cosine_pair_loss(z, y)}


# --- budget ----------------------------------------------------------------------------------------
def default_steps(n_examples: int, batch_size: int, passes: float, min_steps: int, max_steps: int) -> int:
    """Steps for ``passes`` passes over the examples, clipped to ``[min_steps, max_steps]``."""
    return int(min(max_steps, max(min_steps, math.ceil(passes * n_examples / batch_size))))


# --- the loop --------------------------------------------------------------------------------------
@dataclass
class ContrastiveResult:
    """What the phase did: steps run, wall time, and the loss at the start and end (10%-of-run means)."""

    steps: int
    batch_size: int
    seconds: float
    initial_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """For the run's ``resolved`` record: everything but the per-step losses."""
        return {"steps": self.steps, "batch_size": self.batch_size, "seconds": round(self.seconds, 3),
                "initial_loss": round(self.initial_loss, 6), "final_loss": round(self.final_loss, 6)}

    def describe(self) -> str:
        return (f"contrastive tuning: {self.steps} steps of {self.batch_size}, loss {self.initial_loss:.4f} -> "
                f"{self.final_loss:.4f}, {self.seconds:.1f} s")


def _check_embedding(captured: list, backbone) -> None:
    """The head must be called once per batch on a (batch, features) tensor: that tensor is the embedding."""
    if len(captured) != 1 or captured[0].ndim != 2:
        shape = tuple(captured[0].shape) if captured else None
        raise StrategyError(f"strategy 'contrastive' tunes the (batch, features) embedding fed to the head, but the "
                            f"head of {backbone.source!r} got {len(captured)} input(s) of shape {shape} (a decoder "
                            "classifies every token and pools after its head). Use strategy='lora' or 'freeze'.")


def _scheduler(optimizer, steps: int, warmup_ratio: float):
    """Linear warmup then linear decay to zero: SetFit's (transformers') default for its body phase."""
    warmup = int(round(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _head(backbone) -> torch.nn.Module:
    from .feature_cache import head_module

    head = head_module(backbone)
    if head is None:
        raise StrategyError(f"strategy 'contrastive' needs a backbone whose head is one module fed the embedding; "
                            f"{backbone.source!r} has a head of {len(backbone.head)} parameters spread over several "
                            "modules. Use strategy='lora' or 'freeze'.")
    return head


def _batch_loss(model, backbone, inputs, y, idx: np.ndarray, captured: list, device, options) -> torch.Tensor:
    """Embed one batch (augmented: ``training=True``) and score it; the head's input hook fills ``captured``."""
    batch = {k: v.to(device) for k, v in backbone.preprocess([inputs[i] for i in idx], training=True).items()}
    captured.clear()
    backbone.family.logits(model, batch)
    _check_embedding(captured, backbone)
    return LOSSES[options.loss](captured[0], torch.as_tensor(y[idx], device=device), options.temperature)


def contrastive_tune(backbone, inputs: Sequence[Any], y: np.ndarray, param_groups: list[dict[str, Any]], cfg,
                     options) -> ContrastiveResult:
    """Tune the body's ``param_groups`` (from ``options.apply``) with ``options.loss`` on ``inputs``/``y``.

    ``inputs`` are what ``backbone.preprocess`` takes (strings, PIL images), indexed lazily;
    ``y`` holds one int class id per input. ``cfg`` (a TrainingConfig) gives the seed, mixed
    precision and gradient clipping; ``options`` is the :class:`~transferkit.strategies.Contrastive`
    strategy. Each process draws its own batches (seeded by its rank) and gradients are averaged,
    as in any data-parallel run. No weight decay, as SetFit. The model is left in eval mode, on the
    accelerator's device; the head is untouched.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from ..strategies import frozen_modules, set_train_mode
    from .loop import make_accelerator

    from ..tasks import get_task

    y = np.asarray(y)
    options.check(get_task("single_label" if y.ndim == 1 else "multi_label"), backbone.modality)
    head = _head(backbone)
    batch_size = options.batch_size or cfg.batch_size
    steps = options.steps or default_steps(len(y), batch_size, options.passes, options.min_steps, options.max_steps)
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)  # dropout
    batches = class_balanced_batches(y, batch_size, steps, seed=cfg.seed + 7919 * accelerator.process_index)
    frozen = frozen_modules(backbone.model)
    trainable = [p for g in param_groups for p in g["params"]]
    optimizer = torch.optim.AdamW([{"params": g["params"], "lr": g["lr"]} for g in param_groups], weight_decay=0.0)
    model, optimizer = accelerator.prepare(backbone.model, optimizer)
    scheduler = _scheduler(optimizer, steps, options.warmup_ratio)
    captured, losses = [], []
    hook = head.register_forward_hook(lambda module, args, out: captured.append(args[0]))
    start = time.perf_counter()
    bar = tqdm(total=len(batches), desc="contrastive tuning",  # minutes on a CPU: show they pass
               disable=not (cfg.progress_bar and accelerator.is_local_main_process))
    try:
        set_train_mode(model, frozen)
        for idx in batches:
            loss = _batch_loss(model, backbone, inputs, y, idx, captured, accelerator.device, options)
            accelerator.backward(loss)
            if cfg.max_grad_norm:
                accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    finally:
        hook.remove()
        bar.close()
    backbone.model = accelerator.unwrap_model(model).eval()
    tail = max(1, len(losses) // 10)
    result = ContrastiveResult(steps=len(losses), batch_size=batch_size, seconds=time.perf_counter() - start,
                               initial_loss=float(np.mean(losses[:tail])), final_loss=float(np.mean(losses[-tail:])),
                               losses=losses)
    logger.info(result.describe())
    return result
