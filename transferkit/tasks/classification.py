"""Single-label and multi-label classification heads: loss, probabilities, metrics, predictions.

Targets are numpy arrays: class ids of shape (n,) for single-label, multi-hot rows of shape
(n, n_labels) for multi-label. Metrics use scikit-learn (no metric code fetched from a hub).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class Task:
    name: str
    metric: str  # the validation metric early stopping watches (higher is better)
    multi_label: bool  # independent sigmoid outputs (True) or one softmax over the labels (False)

    def targets(self, y: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, probs: np.ndarray, y: np.ndarray, threshold: float | None) -> dict[str, float]:
        raise NotImplementedError

    def decode(self, probs: np.ndarray, labels: list[str], threshold: float | None) -> list[Any]:
        raise NotImplementedError

    def tune_threshold(self, probs: np.ndarray, y: np.ndarray) -> float | None:
        return None

    def predictions(self, probs: np.ndarray, threshold: float | None) -> np.ndarray:
        """Class ids (single-label) or 0/1 rows (multi-label): what the metrics compare with ``y``."""
        raise NotImplementedError

    def per_class(self, probs: np.ndarray, y: np.ndarray, labels: list[str],
                  threshold: float | None = None) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of every label: what an overall score averages away."""
        from sklearn.metrics import precision_recall_fscore_support

        kwargs = {} if self.multi_label else {"labels": np.arange(len(labels))}
        p, r, f, n = precision_recall_fscore_support(np.asarray(y).astype(int), self.predictions(probs, threshold),
                                                     average=None, zero_division=0, **kwargs)
        return {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
                for i, name in enumerate(labels)}


class SingleLabel(Task):
    name = "single_label"
    metric = "accuracy"
    multi_label = False

    def targets(self, y):
        return torch.as_tensor(np.asarray(y), dtype=torch.long)

    def loss(self, logits, targets):
        return F.cross_entropy(logits.float(), targets)

    def probabilities(self, logits):
        return logits.float().softmax(-1)

    def predictions(self, probs, threshold=None):
        return probs.argmax(-1)

    def metrics(self, probs, y, threshold=None):
        from sklearn.metrics import accuracy_score, f1_score

        pred = self.predictions(probs)
        return {"accuracy": float(accuracy_score(y, pred)),
                "f1_macro": float(f1_score(y, pred, average="macro", labels=np.arange(probs.shape[1]), zero_division=0))}

    def decode(self, probs, labels, threshold=None):
        best = probs.argmax(-1)
        return [{"label": labels[i], "score": float(p[i])} for i, p in zip(best, probs)]


class MultiLabel(Task):
    name = "multi_label"
    metric = "f1_micro"
    multi_label = True
    default_threshold = 0.5

    def targets(self, y):
        return torch.as_tensor(np.asarray(y), dtype=torch.float32)

    def loss(self, logits, targets):
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def probabilities(self, logits):
        return logits.float().sigmoid()

    def predictions(self, probs, threshold=None):
        return (probs >= (threshold or self.default_threshold)).astype(int)

    def metrics(self, probs, y, threshold=None):
        from sklearn.metrics import accuracy_score, f1_score

        pred = self.predictions(probs, threshold)
        y = np.asarray(y).astype(int)
        return {"f1_micro": float(f1_score(y, pred, average="micro", zero_division=0)),
                "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
                "exact_match": float(accuracy_score(y, pred))}

    def decode(self, probs, labels, threshold=None):
        t = threshold or self.default_threshold
        return [[{"label": labels[j], "score": float(row[j])} for j in np.argsort(-row) if row[j] >= t] for row in probs]

    def tune_threshold(self, probs, y):
        """The threshold in 0.05..0.95 with the best micro-F1 on the validation split (ties: nearest 0.5)."""
        grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
        scores = [(self.metrics(probs, y, t)["f1_micro"], -abs(t - 0.5), t) for t in grid]
        return float(max(scores)[2])
