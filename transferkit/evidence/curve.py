"""``compare_on`` (what ``adapt(..., compare=True)`` runs) and ``learning_curve``: the comparison
over several labelled-set sizes, because "transfer helps most when data is scarce" is a claim to
show on the data, not to assert."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..data import stratified_split
from ..errors import ConfigError, DataError
from ..strategies import strategy_from
from ..tasks import get_task, read_for
from .arms import NeuralArm, Split, classic_arms
from .compare import CompareConfig, Comparison, run_arms, transfer_label

logger = logging.getLogger("transferkit")


def _read(data: Any, task: str | None, input_column, label_column, labels: list[str] | None = None):
    chosen, ex = read_for(data, get_task(task) if task else None, input_column, label_column)
    if not chosen.solves_head:
        raise ConfigError(f"compare=True and learning curves compare classifiers with classic baselines; task "
                          f"{chosen.name!r} has none here. Drop compare, or use a classification task.")
    what = "training set" if labels is None else "test set"
    labels = labels or chosen.build_labels(ex)
    y = chosen.encode(ex, labels, what=what)
    return Split(list(ex.inputs), y, labels, chosen.name, ex.modality)


def _subset(split: Split, idx) -> Split:
    return Split([split.inputs[i] for i in idx], split.y[idx], split.labels, split.task, split.modality)


def _arms(model, strategy, modality: str, per_class: float, cfg: CompareConfig, options: dict[str, Any]):
    chosen = strategy_from(strategy)  # auto stays auto: each run measures and decides on its own training draw
    arms = [NeuralArm(model, chosen, options)]
    if cfg.scratch:
        arms.append(NeuralArm(model, chosen, options, pretrained=False))
    if cfg.classic:
        arms += classic_arms(modality)
    return arms


def _config(compare: Any) -> CompareConfig:
    if compare is True:
        return CompareConfig()
    if isinstance(compare, CompareConfig):
        return compare
    raise ConfigError(f"compare must be True, False or a CompareConfig, got {compare!r}.")


def compare_on(model: Any, train: Any, compare: Any, *, test_dataset: Any = None, strategy: Any = "auto",
               task: str | None = None, seed: int = 0, label_column=None, input_column=None,
               output_dir=None, overwrite: bool = False, **options: Any):
    """Train every arm on the same splits and seeds; return the transfer arm's model with ``.comparison``."""
    cfg = _config(compare)
    pool = _read(train, task, input_column, label_column)
    test = _read(test_dataset, pool.task, input_column, label_column, pool.labels) if test_dataset is not None else None
    share = 1.0 if test is not None else 1 - cfg.test_fraction
    per_class = len(pool.y) * share / len(pool.labels)
    seeds = [seed + i for i in range(cfg.n_seeds(per_class))]
    draws = []
    for s in seeds:
        if test is not None:
            draws.append((s, pool, test))
            continue
        split = stratified_split(pool.y, cfg.test_fraction, s)
        if split is None:
            raise DataError("compare=True needs at least 2 examples of every class to hold some out for testing; "
                            "pass test_dataset=... or add examples.")
        draws.append((s, _subset(pool, split[0]), _subset(pool, split[1])))
    if options.pop("pretrained", True) is False:
        raise ConfigError("compare=True trains both a pretrained and a from-scratch arm; drop pretrained=False.")
    options = dict(options, label_column=label_column, input_column=input_column)
    arms = _arms(model, strategy, pool.modality, per_class, cfg, options)
    comparison = run_arms(arms, draws, pool.task, get_task(pool.task).metric, round(per_class, 1))
    result = next(r.result for r in comparison.runs if r.arm == arms[0].name and r.seed == seeds[0])
    result.comparison = comparison
    if output_dir is not None:
        result.save(output_dir, overwrite=overwrite)
        from pathlib import Path

        (Path(output_dir) / "comparison.md").write_text(comparison.table(markdown=True) + "\n\n**Verdict:** "
                                                        + comparison.verdict + "\n")
    logger.info("comparison:\n%s", comparison)
    return result


@dataclass
class LearningCurve:
    """One :class:`Comparison` per labelled-set size (examples per class)."""

    points: list[Comparison]

    def table(self, markdown: bool = False) -> str:
        kinds: dict[str, str] = {}
        for point in self.points:
            for arm in point.arms:
                key = "transfer" if arm["kind"] == "transfer" else arm["name"]
                kinds.setdefault(key, arm["name"] if arm["kind"] != "transfer" else "transfer")
        head = ["arm"] + [f"k={p.per_class:g}" for p in self.points]
        body = []
        for key in kinds:
            row = [key if key != "transfer" else transfer_label([{"arms": p.arms} for p in self.points])]
            for p in self.points:
                s = next((s for s in p.summary() if (s.kind == "transfer" and key == "transfer") or s.arm == key), None)
                row.append("—" if s is None else (f"{s.mean:.1f} ± {s.sd:.1f}" if s.n > 1 else f"{s.mean:.1f}"))
            body.append(row)
        if markdown:
            return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                             + ["| " + " | ".join(r) + " |" for r in body])
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in [head] + body)

    def __str__(self) -> str:
        verdicts = "\n".join(f"k={p.per_class:g}: {p.verdict}" for p in self.points)
        return self.table() + "\n\n" + verdicts


def draw_per_class(y: np.ndarray, pool_idx: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k examples per class from ``pool_idx``; nested across k for one seed (k=10 is inside k=50)."""
    rng = np.random.default_rng(seed)
    strata = y if y.ndim == 1 else y.argmax(1)
    chosen = []
    for c in np.unique(strata[pool_idx]):
        members = pool_idx[strata[pool_idx] == c]
        chosen.extend(rng.permutation(members)[:k])
    return np.sort(np.asarray(chosen))


def learning_curve(model: Any, dataset: Any, sizes: Sequence[int] = (10, 50, 200), *, test_dataset: Any = None,
                   test_fraction: float = 0.2, compare: CompareConfig | None = None, strategy: Any = "auto",
                   task: str | None = None, label_column=None, input_column=None, **options: Any) -> LearningCurve:
    """The comparison at several labelled-set sizes, on one fixed test set (given, or carved with seed 0)."""
    cfg = compare or CompareConfig()
    pool = _read(dataset, task, input_column, label_column)
    if test_dataset is not None:
        test, pool_idx = _read(test_dataset, pool.task, input_column, label_column, pool.labels), np.arange(len(pool.y))
    else:
        split = stratified_split(pool.y, test_fraction, 0)
        if split is None:
            raise DataError("learning_curve needs at least 2 examples of every class to carve a test set.")
        pool_idx, test = split[0], _subset(pool, split[1])
    strata = pool.y if pool.y.ndim == 1 else pool.y.argmax(1)
    smallest = int(np.bincount(strata[pool_idx]).min())
    options = dict(options, label_column=label_column, input_column=input_column)
    points = []
    for k in sizes:
        if k > smallest:
            logger.warning("learning curve: skipping k=%d, the smallest class has only %d examples", k, smallest)
            continue
        seeds = list(range(cfg.n_seeds(k)))
        draws = [(s, _subset(pool, draw_per_class(pool.y, pool_idx, k, s)), test) for s in seeds]
        arms = _arms(model, strategy, pool.modality, k, cfg, options)
        points.append(run_arms(arms, draws, pool.task, get_task(pool.task).metric, k))
    return LearningCurve(points)
