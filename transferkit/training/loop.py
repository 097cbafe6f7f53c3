"""The one training loop: Accelerate makes CPU, one GPU, many processes and mixed precision the same code.

AdamW with linear warmup then cosine decay, gradient accumulation, gradient clipping, evaluation
each epoch, early stopping on the task's validation metric, and the best weights restored at
the end. Frozen sub-modules stay in eval mode throughout (BatchNorm statistics untouched).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import TrainingConfig
from ..errors import ConfigError
from ..strategies import frozen_modules, set_train_mode
from .inference import collect_logits
from .schedule import Schedule, plan

logger = logging.getLogger("transferkit")


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    val_probs: np.ndarray | None = None
    val_y: np.ndarray | None = None
    is_main_process: bool = True
    model: torch.nn.Module | None = None
    cached: bool = False  # trained on cached features (training.feature_cache)
    schedule: Schedule | None = None
    probe: Any = None  # the convex probe's ProbeFit, when the head was solved rather than trained


def check_precision(cfg: TrainingConfig) -> None:
    """Fail before any loading when the machine cannot run the requested precision."""
    if cfg.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("mixed_precision='fp16' needs a CUDA GPU; on CPU use mixed_precision='bf16' or 'no'.")


def make_accelerator(cfg: TrainingConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    check_precision(cfg)
    on_gpu = torch.cuda.is_available()
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", cfg.mixed_precision) != cfg.mixed_precision:
        AcceleratorState._reset_state()  # a new run in the same process may ask for another precision
    # cpu=True when there is no GPU: without it, several launched CPU processes would not form a group.
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=not on_gpu,
                       gradient_accumulation_steps=cfg.gradient_accumulation_steps)


def _optimizer(param_groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; biases and normalisation weights (1-d tensors) get no weight decay."""
    groups = []
    for g in param_groups:
        for decay, params in ((weight_decay, [p for p in g["params"] if p.ndim > 1]),
                              (0.0, [p for p in g["params"] if p.ndim <= 1])):
            if params:
                groups.append({"params": params, "lr": g["lr"], "weight_decay": decay, "name": g["name"]})
    return torch.optim.AdamW(groups)


def _schedule(optimizer, total_steps: int, warmup_ratio: float):
    warmup = int(round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(model: torch.nn.Module, forward, task, param_groups, train_loader, val_loader, cfg: TrainingConfig,
        epochs: int | None = None, validation_ok: bool = True) -> FitResult:
    """Train ``model`` (``forward(model, batch) -> logits``); ``result.model`` is the trained, unwrapped module.

    ``epochs`` overrides ``cfg.epochs``; ``validation_ok`` False means the validation split is too
    small to stop on or to pick a best epoch from (see :mod:`.schedule`): it is only reported.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    accelerator = make_accelerator(cfg)
    optimizer = _optimizer(param_groups, cfg.weight_decay)
    frozen = frozen_modules(model)
    trainable = [p for g in param_groups for p in g["params"]]
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    sched = plan(math.ceil(len(train_loader) / cfg.gradient_accumulation_steps), epochs or cfg.epochs, cfg.max_steps,
                 validation_ok and val_loader is not None, cfg.early_stopping_patience)
    logger.info("schedule: %s", sched.reason)
    scheduler = _schedule(optimizer, sched.steps, cfg.warmup_ratio)
    result = FitResult(is_main_process=accelerator.is_main_process, schedule=sched)
    best, best_state, stale, step = (-math.inf, -math.inf), None, 0, 0
    unwrapped = accelerator.unwrap_model(model)
    bar = tqdm(total=sched.steps, desc="training", disable=not (cfg.progress_bar and accelerator.is_local_main_process))
    for epoch in range(1, sched.epochs + 1):
        start = time.perf_counter()
        # Per-epoch seed for augmentation and dropout: evaluation and first-time lazy set-up in between
        # may draw from the global generator, and a run must not depend on what ran before it.
        set_seed(cfg.seed + epoch)
        set_train_mode(model, frozen)
        total, count = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
        for batch in train_loader:
            labels = batch.pop("labels")
            with accelerator.accumulate(model):
                loss = task.loss(forward(model, batch), labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                    step += 1
                    bar.update(1)
                optimizer.zero_grad()
            total += loss.detach() * len(labels)
            count += len(labels)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
            if step >= sched.steps:
                break
        total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum")
        row: dict[str, Any] = {"epoch": epoch, "step": step, "train_loss": float(total / count)}
        if val_loader is not None:
            probs, y = _evaluate(forward, model, task, val_loader, accelerator, row)
            score = (row[f"eval_{task.metric}"], -row["eval_loss"])  # ties go to the lower eval loss
            if not validation_ok:
                result.val_probs, result.val_y = probs, y  # reported only: too few examples to choose by
            elif score > best:
                best, stale, result.best_epoch = score, 0, epoch
                result.val_probs, result.val_y = probs, y
                best_state = _snapshot(unwrapped)
            else:
                stale += 1
        row["seconds"] = round(time.perf_counter() - start, 3)
        result.history.append(row)
        _log_epoch(row, sched.epochs)
        if sched.early_stopping and stale >= cfg.early_stopping_patience:
            logger.info("early stopping: no %s gain for %d epochs", task.metric, stale)
            break
        if step >= sched.steps:
            break
    bar.close()
    if best_state is not None and result.best_epoch != result.history[-1]["epoch"]:
        _restore(unwrapped, best_state)
        logger.info("restored the weights of epoch %d (best eval_%s=%.4f)", result.best_epoch, task.metric, best[0])
    result.model = unwrapped
    accelerator.wait_for_everyone()
    return result


def _evaluate(forward, model, task, val_loader, accelerator, row: dict[str, Any]):
    """Validation metrics into ``row``; returns (probabilities, targets)."""
    logits, y = collect_logits(forward, model, val_loader, accelerator)
    probs = task.probabilities(torch.from_numpy(logits)).numpy()
    row["eval_loss"] = float(task.loss(torch.from_numpy(logits), task.targets(y)))
    row.update({f"eval_{k}": v for k, v in task.metrics(probs, y, None).items()})
    return probs, y


def _log_epoch(row: dict[str, Any], epochs: int) -> None:
    """Every epoch of a short run; about ten lines of a long one (all of them at DEBUG)."""
    every = max(1, epochs // 10)
    shown = row["epoch"] % every == 0 or row["epoch"] in (1, epochs)
    logger.log(logging.INFO if shown else logging.DEBUG, "epoch %d/%d: %s", row["epoch"], epochs,
               ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "step")))


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of what training changes: trainable parameters and buffers (BatchNorm statistics)."""
    state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state.update({n: b.detach().clone() for n, b in model.named_buffers()})
    return state


@torch.no_grad()
def _restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    for name, value in state.items():
        tensors[name].copy_(value)
