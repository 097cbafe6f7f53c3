"""``adapt(previous, new_data, extend=True)``: grow the head, protect the old classes, train, return ``Adapted``.

Two paths, chosen by the strategy:

* **head-only** (``strategy="auto"`` or ``"linear-probe"``, the default): the body stays frozen and the
  old rows fixed, so old classes cannot be forgotten among themselves; new rows are solved with
  feature rehearsal (``extension.solve``). Cheap: one forward pass over the new data.
* **body training** (``"freeze"``, ``"lora"``, ``"full"``): the grown model trains in the usual loop,
  protected by distillation from the old model, rehearsal, and weight aligning after (``Protection``).
  These strategies can forget: what they change in the body, the old rows were not fitted to.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..data import Examples
from ..errors import DataError, StrategyError
from ..strategies import Freeze, Full, LinearProbe, LoRA, strategy_from
from ..tasks import get_task, read_for
from . import head as heads
from .config import Protection
from .memory import Memory, Spread, class_features, means_of, merged, remember
from .previous import check_task, merged_labels, resolve

logger = logging.getLogger("transferkit")
BODY_STRATEGIES = (Freeze, LoRA, Full)


@dataclasses.dataclass
class _Set:
    """The extension's training examples: new data, then rehearsal (given, then exemplars)."""

    inputs: list
    y: np.ndarray
    modality: str
    counts: dict[str, int]


def extend(model: Any, train: Any, extend: Any, *, strategy: Any, task: str | None, rehearsal: Any,
           keep_exemplars: int, cfg, input_column, label_column, test_dataset=None):
    """The extended ``Adapted`` (not saved: ``adapt`` saves it)."""
    previous, protection = resolve(model, extend)
    chosen = _strategy(strategy)
    check_task(previous, get_task(task) if task is not None else None)
    data, labels = _training_set(previous, train, task, rehearsal, protection, input_column, label_column)
    if test_dataset is not None:  # its faults surface before training
        _read_test(previous, test_dataset, labels)
    n_old = len(previous.labels)
    grown = heads.grow(previous.backbone, labels, n_old, get_task("single_label"))
    started = time.perf_counter()
    features = class_features(grown, data.inputs, data.y, data.modality, cfg.batch_size)
    old_memory = getattr(previous, "memory", None) or Memory()
    head = heads.classifier(grown)
    init = heads.init_new_rows(head, n_old, _new_means(features, data.y, n_old, labels),
                               _stacked(old_memory.means, previous.labels))
    body_trains = isinstance(chosen, BODY_STRATEGIES) or features is None
    if body_trains:
        chosen = chosen if isinstance(chosen, BODY_STRATEGIES) else LinearProbe()
        if isinstance(chosen, BODY_STRATEGIES) and not (data.y < n_old).any():
            logger.warning("strategy %r trains the body on the new classes alone, which moves the features the old "
                           "classes rely on: measured (benchmarks/extension.py, 100 per class) LoRA so forgot 84 "
                           "points of old-class accuracy on 8x8 digits and 73 on tweets; with 10 kept exemplars per "
                           "class 7 and 28; head only 6 and 16. Give old examples (rehearsal=, keep_exemplars=) "
                           "or keep the default strategy.", chosen.name)
        history, details, grown, final = _train_body(chosen, grown, previous, data, labels, n_old, protection, cfg,
                                                     old_memory, replays=features is not None)
    else:
        final = features  # the body is the previous one: these are its features
        details = _solve_rows(grown, previous, features, data, labels, n_old,
                              old_memory.means if protection.feature_rehearsal else {}, old_memory.spread, cfg)
        history = [{"epoch": 1, "train_loss": details.pop("train_loss"), "probe_C": details["C"],
                    "seconds": details["seconds"]}]
    head = heads.classifier(grown)
    if protection.aligns(solved=details.get("solved_against_old_classes", False)):
        details["aligned_by"] = heads.align(head, n_old)
    memory = _memory(grown, data, labels, n_old, body_trains, keep_exemplars, cfg.seed, old_memory, final)
    record = {"previous": getattr(previous, "origin", None), "old_labels": previous.labels,
              "new_labels": labels[n_old:], "head_only": not body_trains, "protection": protection.to_dict(),
              "examples": data.counts, "new_rows_init": init, "round": _round(previous) + 1, **details,
              "class_counts": {labels[c]: int(n) for c, n in zip(*np.unique(data.y, return_counts=True))}}
    return _adapted(previous, grown, chosen, cfg, labels, history, record, memory, time.perf_counter() - started)


def _train_body(chosen, grown, previous, data: _Set, labels, n_old: int, protection, cfg, old: Memory, replays: bool):
    """The loop (distillation, rehearsal); then, where the head replays on features, the old means moved with the
    body (semantic drift compensation) and every row solved again against pseudo-features drawn from them. Returns the history, the
    details, the trained backbone and its features (None where not taken)."""
    from .solve import drifted_means
    from .train import train_body

    history, details, grown = train_body(chosen, grown, previous, data, labels, n_old, protection, cfg)
    if not (replays and old.means and protection.feature_rehearsal):
        return history, details, grown, None
    after = class_features(grown, data.inputs, data.y, data.modality, cfg.batch_size)
    before = class_features(previous.backbone, data.inputs, data.y, data.modality, cfg.batch_size)
    means, spread = drifted_means(old.means, before[0], after[0]), Spread.of(after[0], data.y)
    # every row again: the old rows were fitted to features the training has moved (measured on 8x8 digits, LoRA:
    # 64.8% against 56.2% re-solving the new rows only)
    details.update(_solve_rows(grown, previous, after, data, labels, 0, means, spread, cfg, n_pseudo=n_old))
    return history, details, grown, after


def _solve_rows(grown, previous, features, data: _Set, labels, n_old: int, means, spread, cfg,
                n_pseudo: int | None = None) -> dict[str, Any]:
    """New rows solved on the body's features, old rows fixed, with pseudo-features of the old classes."""
    from .solve import choose_C, pseudo_features, solve_new_rows

    x, y = features[0], data.y
    n_pseudo = n_old if n_pseudo is None else n_pseudo
    pseudo = pseudo_features(x, y, n_pseudo, means, labels, cfg.seed, spread) if means else (x[:0], y[:0])
    data.counts["pseudo_features"] = int(len(pseudo[1]))
    xs, ys = _cat(x, pseudo[0]), np.concatenate([y, pseudo[1]])
    C, how = choose_C(previous.config.to_dict(), xs, ys, cfg.seed)
    solved = solve_new_rows(heads.classifier(grown), n_old, xs, ys, C)
    return {"C": C, "C_from": how, "train_loss": solved["train_loss"], "seconds": solved["seconds"],
            "solved_against_old_classes": bool((ys < n_pseudo).any())}


def _strategy(strategy: Any):
    chosen = strategy_from(strategy)
    if chosen.name in ("auto", "linear-probe") or isinstance(chosen, BODY_STRATEGIES):
        return chosen
    raise StrategyError(f"extend=True supports strategy 'auto' / 'linear-probe' (head only: nothing old can be "
                        f"forgotten), 'freeze', 'lora' or 'full' (the body trains, protected); got {chosen.name!r}.")


def _training_set(previous, train, task, rehearsal, protection: Protection, input_column, label_column):
    """New data, rehearsal given by the user and kept exemplars, encoded with the merged labels."""
    cfg = previous.config
    columns = (input_column or cfg.input_column, label_column or cfg.label_column)
    found, ex = read_for(train, get_task(task) if task is not None else None, *columns)
    check_task(previous, found)
    if ex.modality != previous.backbone.modality:
        raise DataError(f"the previous model takes {previous.backbone.modality} inputs but the new data holds "
                        f"{ex.modality} inputs.")
    labels = merged_labels(previous.labels, ex.raw_labels)
    inputs, raw = list(ex.inputs), list(ex.raw_labels)
    counts = {"new_data": len(inputs), "rehearsal": 0, "exemplars": 0}
    if rehearsal is not None:
        given = found.read(rehearsal, *columns, require_labels=True)
        unknown = sorted({str(v) for v in given.raw_labels} - set(labels))
        if unknown:
            raise DataError(f"rehearsal= holds labels {unknown[:6]} that neither the previous model "
                            f"{previous.labels[:8]} nor the new data has. Rehearsal examples must be of known classes.")
        inputs += list(given.inputs)
        raw += list(given.raw_labels)
        counts["rehearsal"] = len(given.inputs)
    memory = getattr(previous, "memory", None)
    if protection.use_exemplars and memory is not None and memory.exemplars:
        inputs += [x for x, _ in memory.exemplars]
        raw += [label for _, label in memory.exemplars]
        counts["exemplars"] = len(memory.exemplars)
    y = found.encode(Examples(inputs, raw, ex.modality), labels, what="extension data")
    return _Set(inputs, y, ex.modality, counts), labels


def _read_test(previous, test_dataset, labels: list[str]) -> None:
    task, cfg = get_task("single_label"), previous.config
    test = task.read(test_dataset, cfg.input_column, cfg.label_column, require_labels=True)
    task.encode(test, labels, what="test set")


def _new_means(features, y: np.ndarray, n_old: int, labels: list[str]):
    if features is None:
        return None
    means = means_of(features[0], y, labels)
    return np.stack([means[label] for label in labels[n_old:]])


def _stacked(means: dict[str, np.ndarray], labels: list[str]):
    rows = [means[label] for label in labels if label in means]
    return np.stack(rows) if rows else None


def _cat(a, b):
    return torch.cat([a, b.to(a.dtype)]) if len(b) else a


def _memory(grown, data: _Set, labels, n_old: int, body_trains: bool, keep: int, seed: int, old: Memory,
            features) -> Memory:
    """The extended model's memory: class statistics taken with its body, and exemplars of the new classes."""
    keep = keep or old.per_class
    new = remember(grown, data.inputs, data.y, labels, data.modality, keep, seed, features=features)
    if not body_trains and features is not None:  # the old statistics came from more data, with this same body
        new.means = {k: v for k, v in new.means.items() if k not in old.means}
        fresh = torch.from_numpy(data.y >= n_old)
        new.spread = Spread.of(features[0][fresh], data.y[fresh.numpy()]) if old.spread is not None else new.spread
    return merged(old, new, body_trains)


def _facts(data: dict[str, Any], cfg) -> dict[str, Any]:
    """What the model card reports beside the scores, as for any adapt() run (api._run_facts)."""
    from accelerate import PartialState

    from ..evidence.compare import environment
    from ..training.loop import precision

    state = PartialState()
    return {"data": data, "device": str(state.device), "num_processes": state.num_processes,
            "mixed_precision": precision(cfg), "environment": environment()}


def _round(previous) -> int:
    return int((previous.config.resolved.get("extension") or {}).get("round", 0))


def _adapted(previous, grown, chosen, cfg, labels, history, record, memory, seconds: float):
    from .. import __version__
    from ..adapted import Adapted
    from ..strategies import count_parameters

    grown.model.eval()
    old = previous.config
    trainable, total = count_parameters(grown.model)
    resolved = {k: v for k, v in old.resolved.items() if k in ("max_length", "layer_groups", "architecture",
                                                                "model_type", "pooling", "base_model")}
    if record["head_only"]:  # what was fitted: the new rows, in closed form
        strategy = {"name": "linear-probe", "C": record.get("C")}
        trainable = (len(labels) - len(old.labels)) * heads.classifier(grown).in_features
        resolved["schedule"] = {"reason": "the new rows solved in closed form (head-only extension)"}
        reason = "head only, old rows fixed"
    else:
        strategy, reason = chosen.to_dict(), "body trained, protected"
    data = {"train": record.pop("class_counts"), "n_train": int(sum(record["examples"].values())), "validation": {},
            "n_validation": int(record.get("n_validation", 0))}
    resolved |= _facts(data, cfg)
    resolved |= {"extension": record, "train_seconds": round(seconds, 2), "memory": memory.describe(),
                 "strategy_reason": f"extension of a trained classifier: {reason}",
                 "trainable_parameters": trainable, "total_parameters": total}
    config = RunConfig(model=old.model, pretrained=old.pretrained, family=old.family, modality=old.modality,
                       task="single_label", labels=labels, strategy=strategy, training=cfg,
                       input_column=old.input_column, label_column=old.label_column, resolved=resolved,
                       transferkit_version=__version__)
    adapted = Adapted(grown, config, history, base=previous._base_source)
    adapted.memory = memory
    # forgetting needs the previous model's predictions; after a head-only extension its own old columns are those
    adapted.previous = previous if not record["head_only"] else None
    logger.info("extended %d -> %d classes (%s): %s", len(old.labels), len(labels), ", ".join(labels[len(old.labels):][:6]),
                "head only" if record["head_only"] else f"body trained with {chosen.name}")
    return adapted
