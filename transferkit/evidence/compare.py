"""Side-by-side evidence on the user's own data: transfer vs the same network from scratch vs classic ML.

Each arm runs on the same splits and seeds; at small sizes several seeds give mean +- spread,
because which examples are drawn moves accuracy by several points. Because the draws are shared,
arms are compared seed by seed (paired differences, see ``verdict.py``), not by their unpaired
means. The table ends with a plain verdict that names what to use, by score and by training time,
and says so when transfer does not win.
"""
from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .arms import Arm, ArmRun

if TYPE_CHECKING:
    from .verdict import Paired

logger = logging.getLogger("transferkit")
METRIC_NAMES = {"accuracy": "accuracy", "f1_micro": "micro-F1", "f1_macro": "macro-F1"}


@dataclass
class CompareConfig:
    """Options for ``adapt(..., compare=CompareConfig(...))``.

    ``seeds``: how many seeds (splits and initialisations) each arm runs; None means 3 when
    there are fewer than 100 training examples per class, else 1. ``test_fraction``: the
    held-out share per seed when no test set is given. ``scratch`` / ``classic``: which baselines.
    ``joint_data`` (with ``extend=True`` only): old examples that the joint-training reference arm
    alone trains on, beside the new data; the extension itself never sees them.
    """

    seeds: int | None = None
    test_fraction: float = 0.25
    scratch: bool = True
    classic: bool = True
    joint_data: Any = None

    def __post_init__(self) -> None:
        if self.seeds is not None and (isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1):
            raise ConfigError(f"CompareConfig seeds must be None (3 below 100 examples per class, else 1) or an integer "
                              f">= 1, got {self.seeds!r}.")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}.")

    def n_seeds(self, per_class: float) -> int:
        return self.seeds if self.seeds is not None else (3 if per_class < 100 else 1)


@dataclass
class ArmSummary:
    """One arm over its seeds; ``scores`` (seed -> score in %) is what the paired verdict compares."""

    arm: str
    kind: str
    mean: float
    sd: float
    f1_macro: float
    f1_sd: float
    seconds: float
    parameters: int
    n: int
    scores: dict[int, float] = field(default_factory=dict)


def environment() -> dict[str, Any]:
    """Versions and machine, recorded beside every number."""
    import importlib.metadata as md
    import os
    from datetime import datetime, timezone

    import torch

    versions = {}
    for pkg in ("transferkit", "torch", "timm", "transformers", "peft", "accelerate", "scikit-learn", "scikit-image"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "versions": versions,
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {device}",
            "python": platform.python_version()}


@dataclass
class Comparison:
    """Every arm's runs on one labelled-set size; ``print(comparison)`` gives the table then the verdict."""

    task: str
    metric: str
    arms: list[dict[str, str]]
    runs: list[ArmRun]
    per_class: float
    n_test: int
    seeds: list[int]
    env: dict[str, Any] = field(default_factory=environment)

    def summary(self) -> list[ArmSummary]:
        rows = []
        for arm in self.arms:
            runs = [r for r in self.runs if r.arm == arm["name"]]
            scores = np.array([r.metrics[self.metric] for r in runs]) * 100
            f1 = np.array([r.metrics["f1_macro"] for r in runs]) * 100
            rows.append(ArmSummary(arm["name"], arm["kind"], float(scores.mean()), float(scores.std(ddof=1)) if len(runs) > 1 else 0.0,
                                   float(f1.mean()), float(f1.std(ddof=1)) if len(runs) > 1 else 0.0,
                                   float(np.mean([r.train_seconds for r in runs])),
                                   int(np.mean([r.trainable_parameters for r in runs])), len(runs),
                                   {r.seed: float(v) for r, v in zip(runs, scores)}))
        return rows

    def paired(self) -> list[Paired]:
        """Per-seed differences of every arm against the leader, and of transfer against scratch."""
        from .verdict import paired_differences

        return paired_differences(self.summary())

    @property
    def verdict(self) -> str:
        from .verdict import verdict

        return verdict(self.summary(), METRIC_NAMES.get(self.metric, self.metric))

    def table(self, markdown: bool = False) -> str:
        name = METRIC_NAMES.get(self.metric, self.metric)
        spread = " (mean ± sd)" if len(self.seeds) > 1 else ""
        head = ["arm", f"{name} %{spread}", "vs best, paired (points)", "macro-F1 %", "train time (s)",
                "trainable params"]
        body = [[s.arm, _pm(s.mean, s.sd, s.n), vs_best, _pm(s.f1_macro, s.f1_sd, s.n), f"{s.seconds:.1f}",
                 f"{s.parameters:,}"] for s, vs_best in _vs_best(self.summary())]
        paired = ("mean ± sd of the per-seed differences, seeds won" if len(self.seeds) > 1
                  else "one seed, no spread")
        caption = (f"{self.per_class:g} labelled examples per class, {self.n_test} test examples, "
                   f"seeds {self.seeds}; vs best, paired: {paired}")
        if markdown:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(row) + " |" for row in body]
            return caption + "\n\n" + "\n".join(lines)
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "\n".join([caption, fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])

    def __str__(self) -> str:
        return self.table() + "\n\nVerdict: " + self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "per_class": self.per_class, "n_test": self.n_test,
                "seeds": self.seeds, "arms": self.arms, "verdict": self.verdict, "env": self.env,
                "summary": [vars(s) for s in self.summary()],
                "paired": [p.to_dict() for p in self.paired()],
                "runs": [{"arm": r.arm, "seed": r.seed, "n_train": r.n_train, "metrics": r.metrics,
                          "train_seconds": r.train_seconds, "trainable_parameters": r.trainable_parameters,
                          "history": r.history} for r in self.runs]}


def transfer_label(points) -> str:
    """'transfer (linear-probe/freeze)': the strategies the transfer arm used across sizes."""
    names = dict.fromkeys(a["strategy"] for p in points for a in p["arms"] if a["kind"] == "transfer")
    return "transfer (" + "/".join(names) + ")"


def _vs_best(rows: list[ArmSummary]) -> list[tuple[ArmSummary, str]]:
    """Each row with its paired difference to the best mean ('best' for the leader itself)."""
    from .verdict import leader_and_pick, paired

    leader, _ = leader_and_pick(rows)
    return [(r, "best" if r is leader else paired(r, leader).cell()) for r in rows]


def _pm(mean: float, sd: float, n: int) -> str:
    return f"{mean:.1f} ± {sd:.1f}" if n > 1 else f"{mean:.1f}"


def run_arms(arms: list[Arm], draws: list[tuple[int, Any, Any]], task: str, metric: str, per_class: float) -> Comparison:
    """Run every arm on every (seed, train split, test split) draw."""
    runs = []
    for seed, train, test in draws:
        for arm in arms:
            logger.info("compare: %s, seed %d, %d training examples", arm.name, seed, len(train.y))
            run = arm.run(train, test, seed)
            if seed != draws[0][0]:
                run.result = None  # keep one model per arm, not one per seed
            runs.append(run)
    meta = [{"name": a.name, "kind": a.kind, "description": a.description, "strategy": a.strategy} for a in arms]
    return Comparison(task, metric, meta, runs, per_class, len(draws[0][2].y), [d[0] for d in draws])
