"""The one training loop: Accelerate makes CPU, one GPU, many processes and mixed precision the same code.

AdamW with linear warmup then cosine decay, gradient accumulation, gradient clipping, evaluation
each epoch, early stopping on the task's validation metric, and the best weights restored at
the end. Frozen sub-modules stay in eval mode throughout (BatchNorm statistics untouched).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import TrainingConfig
from ..errors import ConfigError
from ..strategies import frozen_modules, set_train_mode
from .inference import collect
from .schedule import Schedule, plan

logger = logging.getLogger("transferkit")


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    val_outputs: Any = None  # the task's outputs on the validation split at the best epoch (threshold tuning)
    is_main_process: bool = True
    model: torch.nn.Module | None = None
    cached: bool = False  # trained on cached features (training.feature_cache)
    schedule: Schedule | None = None
    probe: Any = None  # the convex probe's ProbeFit, when the head was solved rather than trained


def precision(cfg: TrainingConfig) -> str:
    """The precision to train in: the one asked for, else the launch config's (``accelerate launch
    --config_file`` exports it as ACCELERATE_MIXED_PRECISION), else full precision."""
    return cfg.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")


def check_precision(cfg: TrainingConfig) -> None:
    """Fail before any loading when the machine cannot run the requested precision."""
    if precision(cfg) == "fp16" and not torch.cuda.is_available():
        raise ConfigError("mixed_precision='fp16' needs a CUDA GPU; on CPU use mixed_precision='bf16' or 'no' "
                          "(or a launch config without fp16).")


def make_accelerator(cfg: TrainingConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    check_precision(cfg)
    on_gpu = torch.cuda.is_available()
    state = AcceleratorState._shared_state
    wanted = precision(cfg)
    if state and state.get("_mixed_precision", wanted) != wanted:
        AcceleratorState._reset_state()  # a new run in the same process may ask for another precision
    # cpu=True when there is no GPU: without it, several launched CPU processes would not form a group.
    accelerator = Accelerator(mixed_precision=wanted, cpu=not on_gpu,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    check_sharding(accelerator)
    return accelerator


def check_sharding(accelerator) -> None:
    """Refuse launches that split the weights across processes (FSDP, DeepSpeed ZeRO-3).

    The loop reads whole weights on each process: the probe's head, the best epoch's snapshot and
    the saved folder all come from the unwrapped model, which holds only a shard under those
    launches. Rather than save a partial model, say so; DDP launches (one or several GPUs, several
    machines) and ZeRO-2 keep whole weights on every process.
    """
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    stage = getattr(plugin, "zero_stage", None) if kind == DistributedType.DEEPSPEED else None
    if kind == DistributedType.FSDP or stage == 3:
        name = "FSDP" if kind == DistributedType.FSDP else "DeepSpeed ZeRO-3"
        raise ConfigError(f"adapt() does not train under {name} yet: it reads whole weights on every process "
                          "(probe head, best epoch, save), which that launch splits across processes. Launch with "
                          "recipes/accelerate/multi_gpu.yaml (or multi_node.yaml, deepspeed_zero2.yaml) instead: "
                          "transfer learning's models fit on one GPU far more often than not.")


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
        epochs: int | None = None, validation_ok: bool = True, checkpointing=None,
        labels: list[str] | None = None) -> FitResult:
    """Train ``model`` (``forward(model, batch) -> logits``); ``result.model`` is the trained, unwrapped module.

    ``epochs`` overrides ``cfg.epochs``; ``validation_ok`` False means the validation split is too
    small to stop on or to pick a best epoch from (see :mod:`.schedule`): it is only reported.
    ``checkpointing`` (:class:`.checkpoint.Checkpointing`) saves the loop's state and resumes from it.
    ``labels`` are the label names the task's scores may need (token classification reads entity types there).
    """
    from .checkpoint import StopRequest

    accelerator = make_accelerator(cfg)
    optimizer = _optimizer(param_groups, cfg.weight_decay)
    frozen = frozen_modules(model)
    trainable = [p for g in param_groups for p in g["params"]]
    sampler = getattr(train_loader, "sampler", None)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    sched = plan(math.ceil(len(train_loader) / cfg.gradient_accumulation_steps), epochs or cfg.epochs, cfg.max_steps,
                 validation_ok and val_loader is not None, cfg.early_stopping_patience)
    logger.info("schedule: %s", sched.reason)
    run = _Loop(accelerator, model, optimizer, _schedule(optimizer, sched.steps, cfg.warmup_ratio), sched, cfg,
                FitResult(is_main_process=accelerator.is_main_process, schedule=sched), checkpointing)
    run.sampler = sampler if hasattr(sampler, "set_epoch") else None
    run.labels = labels
    run.resume()
    with StopRequest() as stop_request:
        for epoch in range(run.epoch, sched.epochs + 1):
            run.train_epoch(epoch, forward, task, train_loader, frozen, trainable, stop_request)
            if run.end_epoch(epoch, forward, task, val_loader, validation_ok):
                break
    return run.finish(task)


class _Loop:
    """The loop's state between steps: what a checkpoint holds and a resume restores."""

    def __init__(self, accelerator, model, optimizer, scheduler, sched: Schedule, cfg: TrainingConfig,
                 result: FitResult, checkpointing):
        from tqdm.auto import tqdm

        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.sched, self.cfg, self.result, self.checkpointing = sched, cfg, result, checkpointing
        self.unwrapped = accelerator.unwrap_model(model)
        self.best, self.best_state, self.stale, self.step = (-math.inf, -math.inf), None, 0, 0
        self.best_stop = (-math.inf, -math.inf)  # what early stopping watches (Task.stop_on_loss)
        self.epoch, self.batch, self.loss_sum, self.count, self.rng, self.started = 1, 0, 0.0, 0, None, 0.0
        self.sampler = None  # the (seed, epoch) shuffle of the training loader, set by fit
        self.labels = None  # the label names, for the task's scores
        self.bar = tqdm(total=sched.steps, desc="training",
                        disable=not (cfg.progress_bar and accelerator.is_local_main_process))

    def resume(self) -> None:
        state = self.checkpointing.restore() if self.checkpointing is not None else None
        if state is None:
            return
        _restore(self.unwrapped, self.checkpointing.tensors("weights.safetensors"))
        self.optimizer.load_state_dict(self.checkpointing.torch_file("optimizer.pt"))
        self.scheduler.load_state_dict(self.checkpointing.torch_file("scheduler.pt"))
        self.best_state = self.checkpointing.tensors("best.safetensors")
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.stale = state["stale"]
        self.best, self.result.best_epoch = tuple(state["best"]), state["best_epoch"]
        self.best_stop = tuple(state.get("best_stop", state["best"]))
        self.result.history = state["history"]
        mine = self.checkpointing.torch_file("rng.pt")[self.accelerator.process_index]
        self.loss_sum, self.count = mine.pop("loss_sum"), mine.pop("count")  # this process's share of the epoch
        self.rng = mine
        self.bar.update(self.step)

    def train_epoch(self, epoch, forward, task, loader, frozen, trainable, stop_request) -> None:
        from accelerate.utils import set_seed

        from .checkpoint import set_rng_state, stop

        acc, cfg = self.accelerator, self.cfg
        # Per-epoch seed for augmentation and dropout: evaluation and first-time lazy set-up in between
        # may draw from the global generator, and a run must not depend on what ran before it.
        set_seed(cfg.seed + epoch)
        set_train_mode(self.model, frozen)
        self.started = time.perf_counter()
        if self.rng is not None:  # resuming inside this epoch: skip what was done, continue the generators
            loader = acc.skip_first_batches(loader, self.batch)
            set_rng_state(self.rng)
            self.rng = None
        else:
            self.batch, self.loss_sum, self.count = 0, 0.0, 0
        # The order is a function of (seed, epoch) (data.loaders.EpochSampler); Accelerate's loaders pass
        # their own epoch counter to the sampler when iterated, so it is set here, on the loader in use.
        loader.set_epoch(epoch)
        if self.sampler is not None:  # Accelerate does not reach it through every wrapper (a sharded skip)
            self.sampler.set_epoch(epoch)
        for batch in loader:
            labels = batch.pop("labels")
            n = len(next(iter(batch.values())))  # examples in this batch (labels may be a dict of tensors)
            with acc.accumulate(self.model):
                loss = task.loss(forward(self.model, batch), labels)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(trainable, cfg.max_grad_norm)
                self.optimizer.step()
                stepped = acc.sync_gradients
                if stepped:
                    self.scheduler.step()
                    self.step += 1
                    self.bar.update(1)
                self.optimizer.zero_grad()
            self.batch += 1
            value = loss.item()  # summed per process; reduced once, at the end of the epoch
            self.loss_sum += value * n
            self.count += n
            self.bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
            stopping = stepped and stop_request.agreed(acc)  # every process takes part, every step
            if stepped and self.checkpointing is not None and (stopping or self._due()):
                self._checkpoint(epoch)
            if stopping:
                stop(self.checkpointing, self.step, acc)
            if self.step >= self.sched.steps:
                break

    def _due(self) -> bool:
        every = self.checkpointing.every
        return bool(every) and self.step % every == 0

    def _checkpoint(self, epoch: int) -> None:
        state = {"step": self.step, "epoch": epoch, "batch": self.batch, "stale": self.stale, "best": list(self.best),
                 "best_stop": list(self.best_stop),
                 "best_epoch": self.result.best_epoch, "history": self.result.history}
        self.checkpointing.save(self.accelerator, self.model, self.optimizer, self.scheduler, state, self.best_state,
                                {"loss_sum": self.loss_sum, "count": self.count})

    def end_epoch(self, epoch, forward, task, val_loader, validation_ok) -> bool:
        """Evaluate, keep the best, log; True when training should stop."""
        total = self.accelerator.reduce(torch.tensor([self.loss_sum, float(self.count)], dtype=torch.float64,
                                                     device=self.accelerator.device), "sum")
        row: dict[str, Any] = {"epoch": epoch, "step": self.step, "train_loss": float(total[0] / max(1.0, total[1]))}
        if val_loader is not None:
            outputs = _evaluate(forward, self.model, task, val_loader, self.accelerator, row, self.labels)
            sign = 1 if task.greater_is_better else -1
            score = (sign * row[f"eval_{task.metric}"], -row["eval_loss"])  # ties go to the lower eval loss
            if not validation_ok:
                self.result.val_outputs = outputs  # reported only: too few examples to choose by
            else:
                if score > self.best:
                    self.best, self.result.best_epoch = score, epoch
                    self.result.val_outputs = outputs
                    self.best_state = _snapshot(self.unwrapped)
                watched = (-row["eval_loss"], 0.0) if task.stop_on_loss else score
                self.best_stop, self.stale = (watched, 0) if watched > self.best_stop else (self.best_stop, self.stale + 1)
        row["seconds"] = round(time.perf_counter() - self.started, 3)
        self.result.history.append(row)
        _log_epoch(row, self.sched.epochs)
        if self.sched.early_stopping and self.stale >= self.cfg.early_stopping_patience:
            logger.info("early stopping: no %s gain for %d epochs", "validation loss" if task.stop_on_loss else task.metric,
                        self.stale)
            return True
        return self.step >= self.sched.steps

    def finish(self, task) -> FitResult:
        self.bar.close()
        result = self.result
        if self.best_state is not None and result.best_epoch != result.history[-1]["epoch"]:
            _restore(self.unwrapped, self.best_state)
            logger.info("restored the weights of epoch %d (best eval_%s=%.4f)", result.best_epoch, task.metric,
                        self.best[0] if task.greater_is_better else -self.best[0])
        result.model = self.unwrapped
        self.accelerator.wait_for_everyone()
        return result


def _evaluate(forward, model, task, val_loader, accelerator, row: dict[str, Any], labels=None):
    """Validation metrics (``loss`` included) into ``row``; returns the task's outputs."""
    outputs = collect(forward, model, val_loader, task, accelerator)
    row.update({f"eval_{k}": v for k, v in task.score(outputs, None, labels).items()})
    return outputs


def _log_epoch(row: dict[str, Any], epochs: int) -> None:
    """Every epoch of a short run; about ten lines of a long one (all of them at DEBUG)."""
    every = max(1, epochs // 10)
    shown = row["epoch"] % every == 0 or row["epoch"] in (1, epochs)
    logger.log(logging.INFO if shown else logging.DEBUG, "epoch %d/%d: %s", row["epoch"], epochs,
               ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "step")))


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of what training changes: trainable parameters and saved buffers (BatchNorm statistics).

    Never the whole model: under LoRA or freeze the frozen weights are not copied, and the copies
    live on the CPU, so tracking the best epoch costs no accelerator memory. Buffers a model does
    not save (causal masks, rotary tables) are constants and are not copied either.
    """
    state = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
    saved = set(model.state_dict(keep_vars=True))
    state.update({n: b.detach().to("cpu", copy=True) for n, b in model.named_buffers() if n in saved})
    return state


@torch.no_grad()
def _restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    for name, value in state.items():
        tensors[name].copy_(value)
