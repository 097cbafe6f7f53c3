"""``adapt()``: resolve the backbone, put on a new head, apply the strategy, train, return ``Adapted``."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, storage
from .adapted import Adapted
from .backbones import resolve_backbone
from .config import TASKS, RunConfig, TrainingConfig
from .data import ExampleDataset, build_labels, check_classes, detect_task, encode, make_loader, read_dataset, stratified_split
from .errors import ConfigError, DataError, did_you_mean
from .strategies import Auto, LinearProbe, Strategy, count_parameters, frozen_modules, strategy_from
from .tasks import get_task
from .training import check_precision, fit
from .training.feature_cache import fit_cached

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
          task: str | None = None, epochs: int = 5, batch_size: int = 16, learning_rate: float = 1e-3,
          seed: int = 0, mixed_precision: str = "no", label_column: str | None = None,
          input_column: str | None = None, output_dir: str | Path | None = None, tokenizer: Any = None,
          pretrained: bool = True, compare: Any = False, test_dataset: Any = None, overwrite: bool = False,
          **training_options: Any) -> Adapted:
    """Transfer ``model`` (a timm / transformers name, a folder, or an ``nn.Module``) to the task in ``train``.

    ``strategy`` is "auto", "linear-probe", "freeze", "lora", "full", or a config object such as
    ``LoRA(rank=4, groups="upper")``. ``learning_rate`` is the new head's; the strategy derives the
    backbone's lower rates from it and every rate is logged and saved in ``result.config``. Other
    keyword options are :class:`TrainingConfig` fields (``image_size``, ``max_length``,
    ``gradient_accumulation_steps``, ``early_stopping_patience``, ``validation_fraction``, ...).

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
    if compare:
        from .evidence import compare_on

        return compare_on(model, train, compare, eval_dataset=eval_dataset, test_dataset=test_dataset,
                          strategy=strategy, task=task, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed, mixed_precision=mixed_precision,
                          label_column=label_column, input_column=input_column, output_dir=output_dir,
                          tokenizer=tokenizer, pretrained=pretrained, overwrite=overwrite, **training_options)
    from accelerate.utils import set_seed

    cfg = _training_config(dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                mixed_precision=mixed_precision, **training_options))
    chosen = strategy_from(strategy)  # validate before any slow loading
    check_precision(cfg)

    train_ex = read_dataset(train, input_column, label_column)
    task = TASK_ALIASES.get(task, task) if task else detect_task(train_ex.raw_labels)
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}.{did_you_mean(str(task), TASKS)}")
    labels = build_labels(train_ex.raw_labels, task, train_ex.label_names)
    y = encode(train_ex.raw_labels, labels, task, what="training set")
    check_classes(y, labels, task)

    train_idx, val_inputs, val_y, val_modality = np.arange(len(y)), None, None, train_ex.modality
    if eval_dataset is not None:
        ev = read_dataset(eval_dataset, train_ex.input_column or input_column, train_ex.label_column or label_column)
        val_inputs, val_modality = ev.inputs, ev.modality
        val_y = encode(ev.raw_labels, labels, task, what="eval set")
    else:
        split = stratified_split(y, cfg.validation_fraction, cfg.seed)
        if split is None:
            logger.info("no validation split carved (too few examples per class): no early stopping, last epoch kept")
        else:
            train_idx, val_idx = split
            val_inputs, val_y = [train_ex.inputs[i] for i in val_idx], y[val_idx]
    if val_modality != train_ex.modality:
        raise DataError(f"the eval set holds {val_modality} inputs but the training set holds {train_ex.modality} inputs.")

    options = {"image_size": cfg.image_size, "max_length": cfg.max_length, "tokenizer": tokenizer,
               "augment": cfg.augment, "pretrained": pretrained}
    set_seed(cfg.seed)  # the new head's initialisation depends on the seed alone
    backbone = resolve_backbone(model, labels, task, options)
    if backbone.modality != train_ex.modality:
        column = f" (column {train_ex.input_column!r}; or choose another input_column)" if train_ex.input_column else ""
        article = "an" if train_ex.modality == "image" else "a"
        raise DataError(f"{_describe_source(model)!r} is a{'n' if backbone.modality == 'image' else ''} "
                        f"{backbone.modality} model but the data holds {train_ex.modality} inputs{column}. "
                        f"Pick {article} {train_ex.modality} backbone.")

    per_class = len(train_idx) / len(labels)
    reason = "chosen by the user"
    if isinstance(chosen, Auto):
        chosen, reason = chosen.choose(backbone.modality, per_class)
        logger.info("strategy auto -> %s: %s", chosen.name, reason)
    param_groups = chosen.apply(backbone, cfg.learning_rate)
    trainable, total = count_parameters(backbone.model)
    frozen = frozen_modules(backbone.model)
    n_frozen_bn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for f in frozen for m in f.modules())
    rates = {g["name"]: g["lr"] for g in param_groups}
    logger.info("strategy %s: %s of %s parameters trainable (%.2f%%); %d frozen BatchNorm layers kept in eval mode",
                chosen.name, f"{trainable:,}", f"{total:,}", 100 * trainable / total, n_frozen_bn)
    logger.info("learning rates: %s", ", ".join(f"{k}={v:.2e}" for k, v in rates.items()) if len(rates) <= 6
                else f"{len(rates)} groups from {min(rates.values()):.2e} (input side) to {max(rates.values()):.2e} (head)")

    task_obj = get_task(task)
    train_ds = ExampleDataset(train_ex.inputs, y, train_ex.modality, train_idx)
    train_loader = make_loader(train_ds, backbone.preprocess, task_obj, cfg.batch_size, training=True, seed=cfg.seed,
                               num_workers=cfg.num_workers)
    val_loader = None if val_inputs is None else make_loader(
        ExampleDataset(val_inputs, val_y, val_modality), backbone.preprocess, task_obj, cfg.batch_size, training=False,
        num_workers=cfg.num_workers)
    result = None
    if isinstance(chosen, LinearProbe) and cfg.feature_cache is not False:
        train_eval = make_loader(train_ds, backbone.preprocess, task_obj, cfg.batch_size, training=False,
                                 num_workers=cfg.num_workers)  # un-augmented inputs for the cached features
        result = fit_cached(backbone, task_obj, param_groups, train_eval, val_loader, cfg, chosen.min_steps)
        if result is None:
            log = logger.warning if cfg.feature_cache else logger.info
            log("feature cache: not used (this head cannot be replayed on cached features); training the usual way")
    if result is None:
        result = fit(backbone.model, backbone.family.logits, task_obj, param_groups, train_loader, val_loader, cfg)
    backbone.model = result.model

    threshold = None
    if task == "multi_label":
        threshold = task_obj.tune_threshold(result.val_probs, result.val_y) if result.val_probs is not None else 0.5
        logger.info("multi-label threshold: %.2f (%s)", threshold,
                    "tuned on the validation split" if result.val_probs is not None else "default, no validation split")
    chosen.finalize(backbone)
    config = RunConfig(
        model=_describe_source(model), pretrained=pretrained, family=backbone.family.name, modality=backbone.modality, task=task,
        labels=labels, strategy=chosen.to_dict(), training=cfg, input_column=train_ex.input_column,
        label_column=train_ex.label_column, threshold=threshold, transferkit_version=__version__,
        resolved={"strategy_reason": reason, "learning_rates": rates, "trainable_parameters": trainable,
                  "total_parameters": total, "frozen_batchnorm_layers": n_frozen_bn,
                  "layer_groups": [g.name for g in backbone.groups], "n_train": int(len(train_idx)),
                  "n_validation": 0 if val_y is None else int(len(val_y)), "best_epoch": result.best_epoch,
                  "epochs_run": len(result.history), "feature_cache": result.cached,
                  **backbone.details},
    )
    adapted = Adapted(backbone, config, result.history)
    if output_dir is not None:
        from accelerate import PartialState

        if result.is_main_process:
            adapted.save(output_dir, overwrite=overwrite)
        PartialState().wait_for_everyone()  # no rank returns before the folder is complete
    return adapted
