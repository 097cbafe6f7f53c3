"""``adapt()``: resolve the backbone, put on a new head, apply the strategy, train, return ``Adapted``."""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, storage
from .adapted import Adapted
from .backbones import resolve_backbone
from .config import TASKS, RunConfig, TrainingConfig
from .data import DecodedInputs, ExampleDataset, build_labels, check_classes, detect_task, encode, make_loader, read_dataset, stratified_split
from .errors import ConfigError, DataError, StrategyError, did_you_mean
from .strategies import Auto, LinearProbe, Strategy, count_parameters, frozen_modules, strategy_from
from .tasks import get_task
from .training import check_precision, fit
from .training.loop import FitResult
from .training.schedule import MIN_VALIDATION_PER_CLASS

logger = logging.getLogger("transferkit")
TASK_ALIASES = {"single-label": "single_label", "multi-label": "multi_label", "multilabel": "multi_label",
                "classification": "single_label"}


def _training_config(options: dict[str, Any]) -> TrainingConfig:
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise ConfigError(f"adapt() got unknown option {unknown[0]!r}.{did_you_mean(unknown[0], fields)} "
                          f"Options: {sorted(fields)}.")
    return TrainingConfig(**options)


def _describe_source(model: Any) -> str:
    return type(model).__name__ if isinstance(model, torch.nn.Module) else str(model)


def adapt(model: Any, train: Any, *, eval_dataset: Any = None, strategy: str | Strategy = "auto",
          task: str | None = None, epochs: int | None = None, batch_size: int = 16, learning_rate: float = 1e-3,
          seed: int = 0, mixed_precision: str = "no", label_column: str | None = None,
          input_column: str | None = None, output_dir: str | Path | None = None, tokenizer: Any = None,
          pretrained: bool = True, compare: Any = False, test_dataset: Any = None, overwrite: bool = False,
          auto_budget: str | float | None = None, trust_remote_code: bool = False, resume: bool = False,
          **training_options: Any) -> Adapted:
    """Transfer ``model`` (a timm / transformers name, a folder, or an ``nn.Module``) to the task in ``train``.

    ``strategy`` is "auto", "linear-probe", "contrastive", "freeze", "lora", "full", or a config object such as
    ``LoRA(rank=4, groups="upper")``. ``learning_rate`` is the new head's; the strategy derives the
    backbone's lower rates from it and every rate is logged and saved in ``result.config``. Other
    keyword options are :class:`TrainingConfig` fields (``image_size``, ``max_length``,
    ``gradient_accumulation_steps``, ``early_stopping_patience``, ``validation_fraction``, ...).

    ``trust_remote_code=True`` lets transformers run Python code shipped with a Hub model (never the
    default; the log says so when it is on). Weights are read from safetensors only.

    ``save_every=N`` (with ``output_dir``) checkpoints the training loop every N optimizer steps;
    ``resume=True`` continues an interrupted run from its checkpoint (:mod:`transferkit.training.checkpoint`).

    ``auto_budget`` bounds what ``strategy="auto"`` may try after measuring the probe: "best" (the
    default), "fast" (the probe only) or seconds of training time (see :mod:`transferkit.strategies.auto`).

    ``compare=True`` (or a :class:`~transferkit.evidence.CompareConfig`) also trains the same
    architecture from random initialisation and classic ML baselines on the same splits and seeds,
    and attaches the table and its verdict as ``result.comparison``; the arms are scored on
    ``test_dataset``, or on a held-out split carved per seed. ``pretrained=False`` trains the
    architecture from random weights.

    ``output_dir`` is checked before anything loads (see :mod:`transferkit.storage`): a folder
    transferkit did not write is never replaced, one it wrote only with ``overwrite=True``.
    """
    if output_dir is not None:  # refuse a destination now, not after an hour of training
        output_dir = storage.check_target(output_dir, overwrite, data=(train, eval_dataset, test_dataset),
                                          what="adapt(output_dir=...)")
    elif resume or training_options.get("save_every"):
        raise ConfigError("resume=True and save_every= need output_dir=...: the checkpoint is kept beside the model "
                          "folder it will become.")
    if compare and (resume or training_options.get("save_every")):
        raise ConfigError("compare=True trains many short arms; it does not checkpoint. Drop resume / save_every.")
    strategy = _with_budget(strategy, auto_budget)
    if compare:
        from .evidence import compare_on

        return compare_on(model, train, compare, eval_dataset=eval_dataset, test_dataset=test_dataset,
                          strategy=strategy, task=task, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed, mixed_precision=mixed_precision,
                          label_column=label_column, input_column=input_column, output_dir=output_dir,
                          tokenizer=tokenizer, pretrained=pretrained, overwrite=overwrite,
                          trust_remote_code=trust_remote_code, **training_options)
    from accelerate.utils import set_seed

    cfg = _training_config(dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                mixed_precision=mixed_precision, **training_options))
    if not pretrained:  # a probe on random features is no head worth starting from
        cfg = dataclasses.replace(cfg, head_init="random")
    chosen = strategy_from(strategy)  # validate before any slow loading
    _check_tokenizer(tokenizer)
    check_precision(cfg)
    data = _read_data(train, eval_dataset, task, input_column, label_column, cfg)
    chosen.check(data.task, data.examples.modality)

    options = {"image_size": cfg.image_size, "max_length": cfg.max_length, "tokenizer": tokenizer,
               "augment": cfg.augment, "pretrained": pretrained, "trust_remote_code": trust_remote_code}
    set_seed(cfg.seed)  # the new head's initialisation depends on the seed alone
    backbone = resolve_backbone(model, data.labels, data.task, options)
    _check_modality(model, backbone, data)
    task_obj = get_task(data.task)
    loaders = _Loaders(data, backbone, task_obj, cfg)
    checkpointing = _checkpointing(output_dir, resume, cfg, model, chosen, data)
    run = _train(chosen, backbone, task_obj, loaders, data, cfg, checkpointing)

    threshold = None
    if task_obj.multi_label:
        result = run.result
        threshold = task_obj.tune_threshold(result.val_probs, result.val_y) if result.val_probs is not None else 0.5
        logger.info("multi-label threshold: %.2f (%s)", threshold,
                    "tuned on the validation split" if result.val_probs is not None else "default, no validation split")
    run.strategy.finalize(backbone)
    config = RunConfig(
        model=_describe_source(model), pretrained=pretrained, family=backbone.family.name, modality=backbone.modality,
        task=data.task, labels=data.labels, strategy=run.strategy.to_dict(), training=cfg,
        input_column=data.examples.input_column, label_column=data.examples.label_column, threshold=threshold,
        transferkit_version=__version__, resolved=run.resolved(backbone, data))
    adapted = Adapted(backbone, config, run.result.history)
    if output_dir is not None:
        from accelerate import PartialState

        if run.result.is_main_process:
            adapted.save(output_dir, overwrite=overwrite)
            if checkpointing is not None:
                checkpointing.discard()
        PartialState().wait_for_everyone()  # no rank returns before the folder is complete
    return adapted


def _checkpointing(output_dir: Path | None, resume: bool, cfg: TrainingConfig, model, strategy, data: "_Data"):
    """Where the loop's checkpoint goes, and what a resume must match (model, strategy, labels, data, options)."""
    if output_dir is None:
        return None
    from .training.checkpoint import Checkpointing, checkpoint_folder

    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress_bar", "num_workers", "save_every")}
    fingerprint = {"model": _describe_source(model), "strategy": strategy.to_dict(), "labels": data.labels,
                   "n_train": int(len(data.train_idx)), "targets": int(np.asarray(data.y).sum() * 7919 % 2**31),
                   "training": json.loads(json.dumps(options, default=str))}
    return Checkpointing(checkpoint_folder(output_dir), cfg.save_every, bool(resume), fingerprint, output_dir)


def _check_tokenizer(tokenizer: Any) -> None:
    if tokenizer is not None and (isinstance(tokenizer, (str, Path)) or not callable(tokenizer)):
        raise ConfigError(f"tokenizer= takes a tokenizer object, got {tokenizer!r}: e.g. "
                          "tokenizer=AutoTokenizer.from_pretrained('bert-base-uncased'), or leave it out to use the "
                          "model's own.")


def _with_budget(strategy: Any, auto_budget: Any) -> Any:
    """``strategy`` with ``auto_budget`` applied: only "auto" takes a budget, and only one way of setting it."""
    if auto_budget is None:
        return strategy
    if strategy == "auto":
        return Auto(budget=auto_budget)
    if isinstance(strategy, Auto):
        raise ConfigError(f"auto_budget={auto_budget!r} given beside strategy={strategy!r}: set the budget in one "
                          f"place, e.g. strategy=Auto(budget={auto_budget!r}) or strategy='auto', auto_budget=...")
    raise ConfigError(f"auto_budget={auto_budget!r} only applies to strategy='auto', but strategy={strategy!r}. "
                      "Drop auto_budget, or use strategy='auto'.")


@dataclass
class _Data:
    """The training examples, encoded, with the validation set and whether it may steer training."""

    examples: Any
    task: str
    labels: list[str]
    y: np.ndarray
    train_idx: np.ndarray
    val_inputs: list | None
    val_y: np.ndarray | None
    validation_ok: bool  # enough examples of every class to early-stop on and to pick a best epoch from
    carved: np.ndarray | None = None  # the indices carved off as validation (they return for the probe)


def _read_data(train, eval_dataset, task, input_column, label_column, cfg: TrainingConfig) -> _Data:
    ex = read_dataset(train, input_column, label_column)
    task = TASK_ALIASES.get(task, task) if task else detect_task(ex.raw_labels)
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}.{did_you_mean(str(task), TASKS)}")
    labels = build_labels(ex.raw_labels, task, ex.label_names)
    y = encode(ex.raw_labels, labels, task, what="training set")
    check_classes(y, labels, task)
    data = _Data(ex, task, labels, y, np.arange(len(y)), None, None, False)
    if eval_dataset is not None:
        ev = read_dataset(eval_dataset, ex.input_column or input_column, ex.label_column or label_column)
        if ev.modality != ex.modality:
            raise DataError(f"the eval set holds {ev.modality} inputs but the training set holds {ex.modality} inputs.")
        data.val_inputs, data.val_y = ev.inputs, encode(ev.raw_labels, labels, task, what="eval set")
        data.validation_ok = _per_class_min(data.val_y, len(labels)) >= MIN_VALIDATION_PER_CLASS
        if not data.validation_ok:
            logger.info("eval set: fewer than %d examples of some class; reported each epoch, never used to stop "
                        "or to pick the best epoch", MIN_VALIDATION_PER_CLASS)
        return data
    split = stratified_split(y, cfg.validation_fraction, cfg.seed, min_per_class=MIN_VALIDATION_PER_CLASS)
    if split is None:
        logger.info("no validation split carved: fewer than %d validation examples of some class would be left "
                    "(every example trains; no early stopping)", MIN_VALIDATION_PER_CLASS)
    else:
        data.train_idx, data.carved = split
        data.val_inputs, data.val_y, data.validation_ok = [ex.inputs[i] for i in split[1]], y[split[1]], True
    return data


def _per_class_min(y: np.ndarray, n_labels: int) -> int:
    counts = y.sum(0) if y.ndim == 2 else np.bincount(y, minlength=n_labels)
    return int(counts.min())


def _check_modality(model, backbone, data: _Data) -> None:
    modality, column = data.examples.modality, data.examples.input_column
    if backbone.modality != modality:
        where = f" (column {column!r}; or choose another input_column)" if column else ""
        article = "an" if modality == "image" else "a"
        raise DataError(f"{_describe_source(model)!r} is a{'n' if backbone.modality == 'image' else ''} "
                        f"{backbone.modality} model but the data holds {modality} inputs{where}. "
                        f"Pick {article} {modality} backbone.")


class _Loaders:
    """The data loaders a run may need, built on first use (the probe never needs the augmented one)."""

    def __init__(self, data: _Data, backbone, task, cfg: TrainingConfig):
        self.data, self.backbone, self.task, self.cfg = data, backbone, task, cfg

    def _make(self, inputs, y, idx, training: bool):
        ds = ExampleDataset(inputs, y, self.data.examples.modality, idx)
        return make_loader(ds, self.backbone.preprocess, self.task, self.cfg.batch_size, training=training,
                           seed=self.cfg.seed, num_workers=self.cfg.num_workers)

    def train(self, training: bool = True, everything: bool = False):
        """The training examples; ``everything`` adds back the carved validation split (for the probe's CV)."""
        idx = np.arange(len(self.data.y)) if everything else self.data.train_idx
        return self._make(self.data.examples.inputs, self.data.y, idx, training)

    def validation(self, including_carved: bool = True):
        if self.data.val_inputs is None or (self.data.carved is not None and not including_carved):
            return None
        return self._make(self.data.val_inputs, self.data.val_y, None, False)


@dataclass
class _Run:
    strategy: Strategy
    result: FitResult
    reason: str
    param_groups: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)

    def resolved(self, backbone, data: _Data) -> dict[str, Any]:
        trainable, total = self.details["counts"]
        r = self.result
        return {"strategy_reason": self.reason, "learning_rates": {g["name"]: g["lr"] for g in self.param_groups},
                "trainable_parameters": trainable, "total_parameters": total,
                "frozen_batchnorm_layers": self.details.get("frozen_batchnorm_layers", 0),
                "layer_groups": [g.name for g in backbone.groups],
                "n_train": int(len(data.y) if r.probe is not None else len(data.train_idx)),
                "n_validation": 0 if data.val_y is None or (r.probe is not None and data.carved is not None)
                else int(len(data.val_y)),
                "best_epoch": r.best_epoch, "epochs_run": len(r.history), "feature_cache": r.cached,
                "schedule": r.schedule.to_dict() if r.schedule else {"reason": "the head solved on cached features"},
                "probe": _probe_summary(r.probe), "head_init": self.details.get("head_init"),
                "body_tuning": self.details.get("tuned"),
                **backbone.details}


def _probe_summary(fit) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {"C": fit.C, "chosen_by": fit.chosen_by, "cv_score": fit.cv_score, "folds": fit.folds,
            "cv_scores": {str(c): s for c, s in fit.cv_scores.items()}, "seconds": round(fit.seconds, 3)}


def _train(chosen: Strategy, backbone, task, loaders: _Loaders, data: _Data, cfg: TrainingConfig,
           checkpointing=None) -> _Run:
    """Resolve ``auto`` by measuring the probe, then solve the head or train with the strategy (LP-FT start)."""
    from .training.feature_cache import cached_features, linear_head

    reason, features, fit, decision = "chosen by the user", None, None, None
    solve = cfg.feature_cache is not False and linear_head(backbone) is not None
    if isinstance(chosen, Auto):
        decision, features, fit = _decide(chosen, backbone, task, loaders, data, cfg, solve)
        chosen, reason, solve = decision.strategy, decision.reason, features is not None
        logger.info("strategy auto -> %s: %s", chosen.name, reason)
    elif isinstance(chosen, LinearProbe) and solve:  # a Linear head may still not replay (GPT-2 pools after it)
        features = cached_features(backbone, loaders.train(training=False, everything=True))
        solve = features is not None
    if chosen.solves_head and (solve or not isinstance(chosen, LinearProbe)):
        return _solve(chosen, backbone, task, loaders, data, cfg, reason, features, fit)
    verify = decision is not None and decision.verify
    pristine = copy.deepcopy(backbone.model) if verify else None  # the frozen model with the all-example probe
    probed_all = fit
    head_init, fit = _lp_ft_head(chosen, backbone, task, loaders, data, cfg, features, fit)
    baseline = _probe_score(fit, backbone, task, loaders) if verify else None
    run = _train_with(chosen, backbone, task, loaders, data, cfg, reason, head_init, checkpointing)
    if not verify:
        return run
    return _verified(run, baseline, pristine, probed_all, backbone, task, loaders, data, cfg, features)


def _decide(auto: Auto, backbone, task, loaders: _Loaders, data: _Data, cfg, solve: bool):
    """Measure the probe on every example (k-fold CV replaces the validation split), then let ``auto`` decide."""
    from .training.feature_cache import cached_features, solve_head

    start = time.perf_counter()
    features = cached_features(backbone, loaders.train(training=False, everything=True)) if solve else None
    rate = (time.perf_counter() - start) / len(data.y)  # seconds per example, forward only
    fit = solve_head(backbone, task, *features, seed=cfg.seed) if features is not None else None
    estimate = (lambda s: _estimate_seconds(s, rate, data, cfg)) if features is not None else None
    decision = auto.decide(backbone.modality, data.task, len(data.y) / len(data.labels), fit, estimate=estimate,
                           spent=time.perf_counter() - start, can_verify=data.validation_ok and fit is not None,
                           embeds=features is not None)
    return decision, features, fit


def _estimate_seconds(strategy: Strategy, rate: float, data: _Data, cfg: TrainingConfig) -> float:
    """Training seconds of ``strategy``: example passes x the measured forward rate x BACKWARD_FACTOR."""
    from .strategies.auto import BACKWARD_FACTOR
    from .training.contrastive import default_steps
    from .training.schedule import plan

    n_train = len(data.train_idx)
    if strategy.solves_head:  # contrastive: its steps over every example, then the features once more
        batch = strategy.batch_size or cfg.batch_size
        steps = strategy.steps or default_steps(len(data.y), batch, strategy.passes, strategy.min_steps, strategy.max_steps)
        return rate * (steps * batch * BACKWARD_FACTOR + len(data.y))
    schedule = plan(-(-n_train // cfg.batch_size), cfg.epochs, cfg.max_steps, data.validation_ok, None)
    n_val = 0 if data.val_y is None else len(data.val_y)
    return rate * (schedule.steps * cfg.batch_size * BACKWARD_FACTOR + schedule.epochs * n_val)


def _lp_ft_head(chosen, backbone, task, loaders: _Loaders, data: _Data, cfg, features, fit):
    """LP-FT: the gradient strategies' head starts from the probe solved on the training part."""
    from .training.feature_cache import cached_features, linear_head, solve_head

    if cfg.head_init != "probe" or chosen.solves_head or linear_head(backbone) is None:
        return "random", fit
    if fit is None or data.carved is not None:  # the carved validation split must not shape the head
        feats = features if features is not None and data.carved is None else \
            cached_features(backbone, loaders.train(training=False))
        fit = solve_head(backbone, task, *feats, seed=cfg.seed) if feats is not None else None
    return (f"probe (C={fit.C:g})" if fit is not None else "random (the head does not replay on features)"), fit


def _probe_score(fit, backbone, task, loaders: _Loaders) -> float:
    """The validation score of the probe ``fit`` (solved on the training part), on the frozen model's features."""
    from .training.feature_cache import cached_features

    x, y = cached_features(backbone, loaders.validation())
    with torch.no_grad():
        logits = x.double() @ fit.weight.double().T + fit.bias.double()
    return task.metrics(task.probabilities(logits.float()).numpy(), y.numpy(), None)[task.metric]


def _verified(run: _Run, probed: float, pristine, fit_all, backbone, task, loaders: _Loaders, data: _Data, cfg,
              features) -> _Run:
    """Keep auto's candidate only if its best validation score beats the probe fitted on the same training part."""
    metric = f"eval_{task.metric}"
    rows = [r for r in run.result.history if metric in r]
    best = next((r for r in rows if r["epoch"] == run.result.best_epoch), rows[-1] if rows else None)
    trained = None if best is None else best[metric]
    scores = (f"validation {task.metric}: {run.strategy.name} "
              f"{'n/a' if trained is None else format(trained, '.3f')}, probe {probed:.3f}")
    if trained is not None and trained > probed:
        run.reason += f"; {scores}: {run.strategy.name} kept"
        logger.info("auto keeps %s (%s)", run.strategy.name, scores)
        return run
    logger.info("auto falls back to the linear probe (%s)", scores)
    backbone.model = pristine  # the frozen model whose head is the probe solved on every example
    return _solve(LinearProbe(), backbone, task, loaders, data, cfg, f"{run.reason}; {scores}: the probe is kept",
                  features, fit_all)


def _solve(chosen, backbone, task, loaders: _Loaders, data: _Data, cfg, reason: str, features, fit) -> _Run:
    """The head solved on the features of every example, after the strategy's body phase (if any)."""
    from .training.feature_cache import cached_features, probe_result, solve_head

    if cfg.epochs is not None or cfg.max_steps is not None:
        logger.warning("epochs=/max_steps= do not apply to %s: its head is solved, not trained (use "
                       "strategy=%s(C=...) to fix its regularisation)", chosen.name, type(chosen).__name__)
    groups = chosen.apply(backbone, cfg.learning_rate)
    counts = count_parameters(backbone.model)
    inputs = DecodedInputs(ExampleDataset(data.examples.inputs, data.y, data.examples.modality))
    tuned = chosen.tune(backbone, inputs, data.y, groups, cfg)
    if tuned is not None or features is None:  # features of the body as it now is
        features = cached_features(backbone, loaders.train(training=False, everything=True))
    if features is None:
        raise StrategyError(f"strategy {chosen.name!r} solves a linear head on a feature vector, but this model's "
                            "head is not one Linear fed a (batch, features) tensor (GPT-2 pools after its head). "
                            "Use strategy='lora', 'freeze' or 'full'.")
    if fit is None or tuned is not None or (chosen.C, chosen.folds) != (None, 5):
        fit = solve_head(backbone, task, *features, seed=cfg.seed, C=chosen.C, folds=chosen.folds)
    val = loaders.validation(including_carved=False)
    val_features = cached_features(backbone, val) if val is not None else None
    run = _Run(chosen, probe_result(backbone, task, fit, features, val_features), reason, groups)
    run.details = {"counts": counts, "frozen_batchnorm_layers": _frozen_bn(backbone.model), "head_init": "solved",
                   "tuned": tuned}
    return run


def _check_batch_norm(model, batch_size: int, strategy: str) -> None:
    """A training BatchNorm needs two examples per batch; say so now rather than fail inside torch."""
    trains_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in m.parameters())
                    for m in model.modules())
    if batch_size < 2 and trains_bn:
        raise ConfigError(f"batch_size=1 cannot train this model's BatchNorm layers (strategy {strategy!r}): each "
                          "needs at least 2 examples per batch. Use batch_size >= 2 (with "
                          "gradient_accumulation_steps to save memory), or strategy='linear-probe'.")


def _frozen_bn(model) -> int:
    """BatchNorm layers inside frozen sub-modules: they run in eval mode, statistics untouched."""
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for f in frozen_modules(model) for m in f.modules())


def _train_with(chosen, backbone, task, loaders: _Loaders, data: _Data, cfg, reason: str, head_init: str,
                checkpointing=None) -> _Run:
    """The gradient path: apply the strategy, log what trains, run the loop."""
    param_groups = chosen.apply(backbone, cfg.learning_rate)
    trainable, total = count_parameters(backbone.model)
    n_frozen_bn = _frozen_bn(backbone.model)
    _check_batch_norm(backbone.model, cfg.batch_size, chosen.name)
    rates = {g["name"]: g["lr"] for g in param_groups}
    logger.info("strategy %s: %s of %s parameters trainable (%.2f%%); %d frozen BatchNorm layers kept in eval mode; "
                "head starts from %s", chosen.name, f"{trainable:,}", f"{total:,}", 100 * trainable / total, n_frozen_bn,
                head_init)
    logger.info("learning rates: %s", ", ".join(f"{k}={v:.2e}" for k, v in rates.items()) if len(rates) <= 6
                else f"{len(rates)} groups from {min(rates.values()):.2e} (input side) to {max(rates.values()):.2e} (head)")
    result = fit(backbone.model, backbone.family.logits, task, param_groups, loaders.train(), loaders.validation(), cfg,
                 validation_ok=data.validation_ok, checkpointing=checkpointing)
    backbone.model = result.model
    run = _Run(chosen, result, reason, param_groups)
    run.details = {"counts": (trainable, total), "frozen_batchnorm_layers": n_frozen_bn, "head_init": head_init}
    return run
