"""How one ``adapt()`` run trains, once its data and backbone are ready.

``train`` resolves ``auto`` by measuring the probe (``strategies.auto``), then either solves the
head on cached features (``linear-probe``, ``contrastive``) or runs the gradient loop from the
probe's head (LP-FT); an ``auto`` candidate is kept only if it beats the probe on a large enough
validation split. ``data`` and ``loaders`` are ``api``'s ``_Data`` and ``_Loaders``.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import TrainingConfig
from .data import DecodedInputs, ExampleDataset
from .errors import ConfigError, StrategyError
from .strategies import Auto, LinearProbe, Strategy, count_parameters, frozen_modules
from .training import fit
from .training.loop import FitResult

logger = logging.getLogger("transferkit")


@dataclass
class _Run:
    strategy: Strategy
    result: FitResult
    reason: str
    param_groups: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    features: Any = None  # (features, targets) of every example with the final body, where the head was solved

    def resolved(self, backbone, data) -> dict[str, Any]:
        trainable, total = self.details["counts"]
        r = self.result
        return {"strategy_reason": self.reason, "learning_rates": {g["name"]: g["lr"] for g in self.param_groups},
                "trainable_parameters": trainable, "total_parameters": total,
                "frozen_batchnorm_layers": self.details.get("frozen_batchnorm_layers", 0),
                "layer_groups": [g.name for g in backbone.groups],
                "n_train": int(data.n if r.probe is not None else len(data.train_idx)),
                "n_validation": 0 if r.probe is not None and data.carved is not None else data.n_validation,
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


def train(chosen: Strategy, backbone, task, loaders, data, cfg: TrainingConfig,
           checkpointing=None) -> _Run:
    """Resolve ``auto`` by measuring the probe, then solve the head or train with the strategy (LP-FT start)."""
    from .training.feature_cache import cached_features, linear_head

    reason, features, fit, decision = "chosen by the user", None, None, None
    solve = task.solves_head and cfg.feature_cache is not False and linear_head(backbone) is not None
    if isinstance(chosen, Auto) and task.default_strategy is not None:  # the task's own pick: no probe to measure
        decision = chosen.decide(backbone.modality, task, 0.0)
        chosen, reason = decision.strategy, decision.reason
        logger.info("strategy auto -> %s: %s", chosen.name, reason)
    elif isinstance(chosen, Auto):
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


def _decide(auto: Auto, backbone, task, loaders, data, cfg, solve: bool):
    """Measure the probe on every example (k-fold CV replaces the validation split), then let ``auto`` decide."""
    from .training.feature_cache import cached_features, solve_head

    start = time.perf_counter()
    features = cached_features(backbone, loaders.train(training=False, everything=True)) if solve else None
    rate = (time.perf_counter() - start) / len(data.y)  # seconds per example, forward only
    fit = solve_head(backbone, task, *features, seed=cfg.seed) if features is not None else None
    estimate = (lambda s: _estimate_seconds(s, rate, data, cfg)) if features is not None else None
    decision = auto.decide(backbone.modality, task, len(data.y) / len(data.labels), fit, estimate=estimate,
                           spent=time.perf_counter() - start, can_verify=data.validation_ok and fit is not None,
                           embeds=features is not None)
    return decision, features, fit


def _estimate_seconds(strategy: Strategy, rate: float, data, cfg: TrainingConfig) -> float:
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
    n_val = data.n_validation
    return rate * (schedule.steps * cfg.batch_size * BACKWARD_FACTOR + schedule.epochs * n_val)


def _lp_ft_head(chosen, backbone, task, loaders, data, cfg, features, fit):
    """LP-FT: the gradient strategies' head starts from the probe solved on the training part."""
    from .training.feature_cache import cached_features, linear_head, solve_head

    if not task.solves_head:
        return "random" if backbone.head else "the pretrained LM head (kept)", fit
    if cfg.head_init == "given":
        return "the head as given (an extension: old rows kept, new rows from mean features)", fit
    if cfg.head_init != "probe" or chosen.solves_head or linear_head(backbone) is None:
        return "random", fit
    if fit is None or data.carved is not None:  # the carved validation split must not shape the head
        feats = features if features is not None and data.carved is None else \
            cached_features(backbone, loaders.train(training=False))
        fit = solve_head(backbone, task, *feats, seed=cfg.seed) if feats is not None else None
    return (f"probe (C={fit.C:g})" if fit is not None else "random (the head does not replay on features)"), fit


def _probe_score(fit, backbone, task, loaders) -> float:
    """The validation score of the probe ``fit`` (solved on the training part), on the frozen model's features."""
    from .training.feature_cache import cached_features

    x, y = cached_features(backbone, loaders.validation())
    with torch.no_grad():
        logits = x.double() @ fit.weight.double().T + fit.bias.double()
    return task.score((logits.float().numpy(), y.numpy()))[task.metric]


def _verified(run: _Run, probed: float, pristine, fit_all, backbone, task, loaders, data, cfg,
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


def _solve(chosen, backbone, task, loaders, data, cfg, reason: str, features, fit) -> _Run:
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
    run = _Run(chosen, probe_result(backbone, task, fit, features, val_features), reason, groups, features=features)
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


def _train_with(chosen, backbone, task, loaders, data, cfg, reason: str, head_init: str,
                checkpointing=None) -> _Run:
    """The gradient path: apply the strategy, log what trains, run the loop."""
    param_groups = [g for g in chosen.apply(backbone, cfg.learning_rate) if g["params"]]  # a kept LM head adds none
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
                 validation_ok=data.validation_ok, checkpointing=checkpointing, labels=data.labels)
    backbone.model = result.model
    run = _Run(chosen, result, reason, param_groups)
    run.details = {"counts": (trainable, total), "frozen_batchnorm_layers": n_frozen_bn, "head_init": head_init}
    return run
