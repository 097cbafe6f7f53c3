"""``adapt()``: resolve the backbone, put on a new head, apply the strategy, train, return ``Adapted``."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, storage
from .adapted import Adapted
from .processes import on_main_process
from .backbones import resolve_backbone
from .config import RunConfig, TrainingConfig
from .data import ExampleDataset, make_loader
from .errors import ConfigError, DataError, did_you_mean
from . import runner
from .strategies import Auto, Strategy, strategy_from
from .tasks import Task, get_task, read_for
from .training import check_precision

logger = logging.getLogger("transferkit")


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
          seed: int = 0, mixed_precision: str | None = None, label_column: str | None = None,
          input_column: str | None = None, output_dir: str | Path | None = None, tokenizer: Any = None,
          pretrained: bool = True, compare: Any = False, test_dataset: Any = None, overwrite: bool = False,
          auto_budget: str | float | None = None, trust_remote_code: bool = False, resume: bool = False,
          extend: Any = False, rehearsal: Any = None, keep_exemplars: int = 0, **training_options: Any) -> Adapted:
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
    ``test_dataset``, or on a held-out split carved per seed. Without ``compare``, ``test_dataset`` is
    scored once after training (``result.evaluations``, and the model card). ``pretrained=False`` trains the
    architecture from random weights.

    ``output_dir`` is checked before anything loads (see :mod:`transferkit.storage`): a folder
    transferkit did not write is never replaced, one it wrote only with ``overwrite=True``.

    ``extend=True`` (or a :class:`~transferkit.extension.Protection`) adds the classes of ``train``
    to ``model``, a classifier transferkit trained (an ``Adapted``, its folder or an ``hf-hub:`` id),
    keeping the old ones: old rows are kept bit for bit, and by default only new rows are solved on
    the frozen body (:mod:`transferkit.extension`). ``rehearsal=`` gives old examples to rehearse.
    ``keep_exemplars=N`` keeps N training examples per class with the model, for later extensions.
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
    from .extension import check_keep_exemplars

    keep_exemplars = check_keep_exemplars(keep_exemplars)
    if extend is not False or rehearsal is not None:
        from .extension import adapt_extension

        return adapt_extension(model, train, extend, rehearsal, keep_exemplars, output_dir, locals(), training_options)
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
    data = _read_data(train, eval_dataset, get_task(task) if task is not None else None, input_column, label_column)
    chosen.check(data.task, data.examples.modality)
    if keep_exemplars and data.task.name != "single_label":
        raise ConfigError(f"keep_exemplars= keeps examples for adding classes later, which only single-label "
                          f"classifiers support; this run is task {data.task.name!r}. Drop keep_exemplars.")
    if test_dataset is not None:  # its faults (a label the training set lacks) surface now, not after training
        _read_test(test_dataset, data)

    options = {"image_size": cfg.image_size, "max_length": cfg.max_length, "tokenizer": tokenizer,
               "augment": cfg.augment, "pretrained": pretrained, "trust_remote_code": trust_remote_code}
    set_seed(cfg.seed)  # the new head's initialisation depends on the seed alone
    backbone = resolve_backbone(model, data.labels, data.task, options)
    _check_modality(model, backbone, data)
    _split(data, backbone, cfg)
    loaders = _Loaders(data, backbone, data.task, cfg)
    checkpointing = _checkpointing(output_dir, resume, cfg, model, chosen, data)
    started = time.perf_counter()
    run = runner.train(chosen, backbone, data.task, loaders, data, cfg, checkpointing)
    run.strategy.finalize(backbone)
    memory = _remember(backbone, data, run, cfg, keep_exemplars)
    config = RunConfig(
        model=_describe_source(model), pretrained=pretrained, family=backbone.family.name, modality=backbone.modality,
        task=data.task.name, labels=data.labels, strategy=run.strategy.to_dict(), training=cfg,
        input_column=data.examples.input_column, label_column=data.examples.label_column,
        threshold=_threshold(data.task, run.result), transferkit_version=__version__,
        resolved=run.resolved(backbone, data) | _max_length(backbone)
        | _run_facts(data, cfg, time.perf_counter() - started, run.result.probe is not None)
        | ({"memory": memory.describe()} if memory is not None else {}))
    adapted = Adapted(backbone, config, run.result.history, base=_base_source(model))
    adapted.memory = memory
    if test_dataset is not None:  # scored once, after training; the card and result.evaluations report it
        scores = adapted.evaluate(test_dataset, name="the test set given to adapt()")
        logger.info("test_dataset: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
    if output_dir is not None:  # the main process writes; every rank returns once the folder is complete
        on_main_process(lambda: _save_and_discard(adapted, output_dir, overwrite, checkpointing))
        adapted.origin = str(output_dir.resolve())
    return adapted


def _remember(backbone, data: "_Data", run, cfg: TrainingConfig, keep: int):
    """Class means (and ``keep`` exemplars per class) of a single-label classifier, for a later extension."""
    if data.task.name != "single_label":
        return None
    from .extension.memory import remember

    features = getattr(run, "features", None)
    return remember(backbone, data.examples.inputs, data.y, data.labels, data.examples.modality, keep, cfg.seed,
                    features=features)


def _save_and_discard(adapted: Adapted, output_dir: Path, overwrite: bool, checkpointing) -> Path:
    """The saved model replaces the loop's checkpoint: the folder is whole, so the checkpoint has done its job."""
    folder = adapted._save(output_dir, overwrite=overwrite)
    if checkpointing is not None:
        checkpointing.discard()
    return folder


def _threshold(task, result) -> float | None:
    """Multi-label: the decision threshold tuned on the validation split (0.5 without one)."""
    if not task.multi_label:
        return None
    tuned = result.val_outputs is not None
    threshold = task.tune_threshold(result.val_outputs) if tuned else 0.5
    logger.info("multi-label threshold: %.2f (%s)", threshold,
                "tuned on the validation split" if tuned else "default, no validation split")
    return threshold


def _max_length(backbone) -> dict[str, int]:
    """The token limit texts were actually cut to (the request, capped at the model's positions)."""
    length = getattr(backbone.preprocess, "max_length", None)
    return {"max_length": int(length)} if length else {}


def _run_facts(data: "_Data", cfg: TrainingConfig, seconds: float, probe: bool) -> dict[str, Any]:
    """What the model card reports beside the scores: class counts per split, time, device, versions.

    A head solved by the probe is refitted on every example, the carved validation split included.
    """
    from accelerate import PartialState

    from .evidence.compare import environment
    from .training.loop import precision

    carved = data.carved is not None
    everything = probe and carved  # the probe's head was refitted on every example
    train_idx = np.arange(data.n) if everything else data.train_idx
    train = None if data.y is None else data.y[train_idx]
    validation = None if everything else data.val_y
    state = PartialState()
    return {"data": {"train": data.task.counts(train, data.labels), "n_train": int(len(train_idx)),
                     "validation": data.task.counts(validation, data.labels),
                     "n_validation": 0 if everything else data.n_validation},
            "train_seconds": round(seconds, 2), "device": str(state.device), "num_processes": state.num_processes,
            "mixed_precision": precision(cfg),
            "environment": environment()}


def _checkpointing(output_dir: Path | None, resume: bool, cfg: TrainingConfig, model, strategy, data: "_Data"):
    """Where the loop's checkpoint goes, and what a resume must match (model, strategy, labels, data, options)."""
    if output_dir is None:
        return None
    from .training.checkpoint import Checkpointing, checkpoint_folder

    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress_bar", "num_workers", "save_every")}
    fingerprint = {"model": _describe_source(model), "strategy": strategy.to_dict(), "labels": data.labels,
                   "n_train": int(len(data.train_idx)), "targets": _digest(data.y),
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
    """The training examples, encoded by their task, with the validation set and whether it may steer training."""

    examples: Any
    task: Task
    labels: list[str]
    y: Any  # what the task encoded: class ids, multi-hot rows, tag-id lists, or None (causal LM)
    train_idx: np.ndarray | None = None
    val_inputs: list | None = None
    val_y: Any = None
    validation_ok: bool = False  # enough validation examples to early-stop on and to pick a best epoch from
    carved: np.ndarray | None = None  # the indices carved off as validation (they return for the probe)
    eval_examples: Any = None  # the user's eval_dataset, read

    @property
    def n(self) -> int:
        return len(self.examples.inputs)

    @property
    def n_validation(self) -> int:
        return 0 if self.val_inputs is None else len(self.val_inputs)


def _read_data(train, eval_dataset, task: Task | None, input_column, label_column) -> _Data:
    """Read and encode the training (and eval) examples: every data error surfaces before a model loads."""
    task, ex = read_for(train, task, input_column, label_column)
    labels = task.build_labels(ex)
    y = task.encode(ex, labels, what="training set")
    task.check(y, labels)
    data = _Data(ex, task, labels, y)
    if eval_dataset is not None:
        ev = task.read(eval_dataset, ex.input_column or input_column, ex.label_column or label_column,
                       require_labels=task.needs_labels)
        if ev.modality != ex.modality:
            raise DataError(f"the eval set holds {ev.modality} inputs but the training set holds {ex.modality} inputs.")
        data.eval_examples, data.val_y = ev, task.encode(ev, labels, what="eval set")
    return data


def _read_test(test_dataset, data: _Data) -> None:
    task, ex = data.task, data.examples
    test = task.read(test_dataset, ex.input_column, ex.label_column, require_labels=task.needs_labels)
    task.encode(test, data.labels, what="test set")


def _split(data: _Data, backbone, cfg: TrainingConfig) -> None:
    """The task's last step with the tokenizer known (causal LM: packing), then the validation split."""
    task = data.task
    inputs, data.y = task.prepare(data.examples.inputs, data.y, backbone.preprocess, "training set")
    data.examples.inputs, data.train_idx = inputs, np.arange(len(inputs))
    if data.eval_examples is not None:
        data.val_inputs, data.val_y = task.prepare(data.eval_examples.inputs, data.val_y, backbone.preprocess,
                                                   "eval set", training=False)
        data.validation_ok = task.validation_ok(data.val_y, len(data.val_inputs), len(data.labels))
        if not data.validation_ok:
            logger.info("eval set: too small to choose by (see the task's validation rule); reported each epoch, never "
                        "used to stop or to pick the best epoch")
        return
    split = task.split(data.y, len(inputs), cfg.validation_fraction, cfg.seed)
    if split is None:
        logger.info("no validation split carved: too few examples to hold some out (every example trains; no early "
                    "stopping)")
        return
    data.train_idx, data.carved = split
    data.val_inputs, data.validation_ok = [inputs[i] for i in split[1]], True
    data.val_y = None if data.y is None else data.y[split[1]]


def _digest(y: Any) -> int:
    """A fingerprint of the encoded targets, whatever their shape (ids, rows, ragged tag lists, none)."""
    import hashlib

    if y is None:
        return 0
    h = hashlib.sha1()
    for row in y:
        h.update(np.asarray(row).tobytes())
    return int.from_bytes(h.digest()[:4], "big")


def _base_source(model: Any):
    """What ``Adapted.base_model`` rebuilds from: the module given to adapt (training changed a copy), or None
    for a name or folder, which it loads again from ``config.model``."""
    return model if isinstance(model, torch.nn.Module) else None


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
        idx = np.arange(self.data.n) if everything else self.data.train_idx
        return self._make(self.data.examples.inputs, self.data.y, idx, training)

    def validation(self, including_carved: bool = True):
        if self.data.val_inputs is None or (self.data.carved is not None and not including_carved):
            return None
        return self._make(self.data.val_inputs, self.data.val_y, None, False)
