"""Learning without forgetting (Li & Hoiem 2016): the old model's outputs kept as soft targets while the body trains.

As in the paper, the old model's responses are recorded once, before training, on every training
example (un-augmented); each training target row then holds the class id followed by those old
logits, and the loss adds ``weight * T^2 * KL(softmax(old / T) || softmax(new[:, :n_old] / T))``
to the cross-entropy over every class. Validation rows hold the class id alone (plain
cross-entropy), so early stopping and the best epoch read the usual metrics.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..tasks.classification import SingleLabel


class Distilling(SingleLabel):
    """Single-label classification whose training targets also carry the old model's logits."""

    def __init__(self, n_old: int, temperature: float, weight: float):
        self.n_old, self.temperature, self.weight = n_old, float(temperature), float(weight)

    def targets(self, y):
        y = np.asarray(y)
        return torch.as_tensor(y, dtype=torch.float32 if y.ndim == 2 else torch.long)

    def loss(self, logits, targets):
        if targets.ndim == 1:
            return super().loss(logits, targets)
        ids, teacher = targets[:, 0].long(), targets[:, 1:].float()
        t = self.temperature
        student = F.log_softmax(logits[:, :self.n_old].float() / t, -1)
        kd = F.kl_div(student, F.softmax(teacher / t, -1), reduction="batchmean") * t * t
        return F.cross_entropy(logits.float(), ids) + self.weight * kd

    def outputs(self, logits, labels):
        if labels is not None and labels.ndim == 2:
            labels = labels[:, 0].long()
        return super().outputs(logits, labels)


def teacher_logits(previous, inputs, modality: str, batch_size: int) -> np.ndarray:
    """The previous model's logits on ``inputs`` (un-augmented), one row per input."""
    (logits, _), _ = previous._outputs(list(inputs), None, modality, batch_size)
    return np.asarray(logits, dtype=np.float32)


def with_teacher(y: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Training targets for :class:`Distilling`: the class id, then the old logits."""
    return np.concatenate([np.asarray(y, dtype=np.float32)[:, None], logits], axis=1)
