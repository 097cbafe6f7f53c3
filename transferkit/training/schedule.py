"""How long to train, and whether a validation split may stop training or pick "the best epoch".

Rules (README "Schedules"), chosen for small data, where the old fixed recipe failed:

* **Early stopping and best-epoch restore need at least** ``MIN_VALIDATION_PER_CLASS`` **validation
  examples of every class.** With 2 per class a validation score moves in steps of 25-50 points
  and its ties are broken by a loss that rises as the head fits: "best epoch" then picked an
  untrained head. Below the threshold no split is carved (every example trains), and a split the
  user gives is only reported, never used to stop or to restore.
* **What the user sets is obeyed.** ``epochs=`` and ``max_steps=`` are never replaced.
* **Otherwise a step budget from the data size.** At least ``DEFAULT_EPOCHS`` epochs and
  ``MIN_STEPS`` optimizer steps, at most ``MAX_EPOCHS`` epochs. Five epochs of six steps (50
  examples per class, 3 classes) ended fine-tuning at a train loss of 0.65: a step count, not an
  epoch count, is what small data is short of.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_VALIDATION_PER_CLASS = 10
DEFAULT_EPOCHS = 5
MIN_STEPS = 200
MAX_EPOCHS = 50


@dataclass
class Schedule:
    epochs: int
    steps: int  # optimizer steps in all (the last epoch may stop early at max_steps)
    early_stopping: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def plan(steps_per_epoch: int, epochs: int | None, max_steps: int | None, validation_ok: bool,
         patience: int | None) -> Schedule:
    """The schedule for ``steps_per_epoch`` optimizer steps per epoch; ``epochs``/``max_steps`` as the user set them."""
    steps_per_epoch = max(1, steps_per_epoch)
    if max_steps is not None:
        n_epochs = epochs or math.ceil(max_steps / steps_per_epoch)
        steps = min(max_steps, n_epochs * steps_per_epoch)
        reason = f"max_steps={max_steps} as set"
    elif epochs is not None:
        n_epochs, steps = epochs, epochs * steps_per_epoch
        reason = f"epochs={epochs} as set"
    else:
        n_epochs = min(MAX_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch)))
        steps = n_epochs * steps_per_epoch
        reason = (f"{n_epochs} epochs of {steps_per_epoch} steps: at least {DEFAULT_EPOCHS} epochs and {MIN_STEPS} "
                  f"steps, at most {MAX_EPOCHS} epochs (set epochs= or max_steps= to choose)")
    stopping = bool(validation_ok and patience)
    if not validation_ok:
        reason += (f"; no early stopping or best-epoch restore (fewer than {MIN_VALIDATION_PER_CLASS} validation "
                   "examples of some class): the last step's weights are kept")
    elif not patience:
        reason += "; early stopping off (early_stopping_patience=None), best epoch restored"
    return Schedule(n_epochs, steps, stopping, reason)
