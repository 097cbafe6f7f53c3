"""What ``evaluate()`` adds for an extended model: accuracy on the old and on the new classes, and forgetting.

``forgetting`` is the previous model's accuracy on the old-class examples of the same set (choosing
among its own classes) minus the extended model's (choosing among all). It is computed when the
previous model's predictions can be had: from the extended model itself after a head-only extension
(the body and the old rows are unchanged, so the old columns of its logits *are* the previous
model's logits), else from the previous model held in memory or loaded again from where it was
saved. Some forgetting is inherent: with more classes to choose from, an old example has more
ways to be wrong; joint training on every class shows how much (``compare=True``).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger("transferkit")


def old_and_new(adapted, outputs, loader) -> dict[str, float]:
    record = adapted.config.resolved["extension"]
    logits, y = outputs
    n_old = len(record["old_labels"])
    y = np.asarray(y)
    pred = np.asarray(logits).argmax(1)
    old = y < n_old
    scores: dict[str, float] = {}
    if old.any():
        scores["accuracy_old_classes"] = float((pred[old] == y[old]).mean())
    if (~old).any():
        scores["accuracy_new_classes"] = float((pred[~old] == y[~old]).mean())
    if old.any():
        before = _previous_predictions(adapted, record, np.asarray(logits), loader, n_old)
        if before is not None:
            scores["forgetting"] = float((before[old] == y[old]).mean()) - scores["accuracy_old_classes"]
    return scores


def _previous_predictions(adapted, record: dict[str, Any], logits: np.ndarray, loader, n_old: int):
    if record.get("head_only"):
        return logits[:, :n_old].argmax(1)
    previous = adapted.previous or _load(record.get("previous"))
    if previous is None:
        logger.info("forgetting left out: the previous model is not in memory and was not loaded from a folder or the "
                    "Hub (extend a saved model to have it measured after a reload)")
        return None
    adapted.previous = previous
    from ..training import collect

    device = next(previous.model.parameters()).device
    before, _ = collect(previous.backbone.family.logits, previous.model, loader, previous._task, device=device)
    return np.asarray(before).argmax(1)


def _load(source: str | None):
    if not source:
        return None
    from ..adapted import load
    from ..errors import TransferkitError

    try:
        return load(source)
    except TransferkitError as exc:
        logger.warning("forgetting left out: the previous model %r cannot be loaded (%s)", source, str(exc)[:200])
        return None
