"""Single-label and multi-label classification: one row of targets per example, one head on one feature vector.

Targets are numpy arrays: class ids of shape (n,) for single-label, multi-hot rows of shape
(n, n_labels) for multi-label. Evaluation keeps (logits, targets) per example: a row of
n_labels numbers is small. Metrics use scikit-learn (no metric code fetched from a hub).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import labels as label_data
from .base import Task, register_task


class Classification(Task):
    """What single- and multi-label classification share: labels read by ``data.labels``, a stratified split."""

    head = "sequence"
    solves_head = True

    def model_config(self, labels):
        problem = "multi_label_classification" if self.multi_label else "single_label_classification"
        return super().model_config(labels) | {"problem_type": problem}

    def build_labels(self, examples):
        return label_data.build_labels(examples.raw_labels, self.multi_label, examples.label_names)

    def encode(self, examples, labels, what):
        return label_data.encode(examples.raw_labels, labels, self.multi_label, what=what)

    def check(self, y, labels):
        label_data.check_classes(y, labels)

    def split(self, y, n, fraction, seed):
        from ..training.schedule import MIN_VALIDATION_PER_CLASS

        return label_data.stratified_split(y, fraction, seed, min_per_class=MIN_VALIDATION_PER_CLASS)

    def validation_ok(self, y, n, n_labels):
        from ..training.schedule import MIN_VALIDATION_PER_CLASS

        counts = y.sum(0) if y.ndim == 2 else np.bincount(y, minlength=n_labels)
        return int(counts.min()) >= MIN_VALIDATION_PER_CLASS

    def counts(self, y, labels):
        if y is None or len(y) == 0:
            return {}
        per = y.sum(0) if y.ndim == 2 else np.bincount(y, minlength=len(labels))
        return {label: int(n) for label, n in zip(labels, per)}

    percent_metrics = ("accuracy", "f1_macro", "f1_micro", "exact_match", "accuracy_old_classes",
                       "accuracy_new_classes", "forgetting")

    def pipeline_tag(self, modality):
        return f"{modality}-classification"

    def card_summary(self, record):
        labels = record["labels"]
        kind = "multi-label" if self.multi_label else "single-label"
        shown = ", ".join(f"`{l}`" for l in labels[:12]) + (f" and {len(labels) - 12} more" if len(labels) > 12 else "")
        article = "An" if record["modality"][0] in "aeiou" else "A"
        return f"{article} {record['modality']} classifier ({kind}, {len(labels)} classes: {shown})"

    def card_example(self, record):
        example = "Image.open('photo.jpg')" if record["modality"] == "image" else "'an example text'"
        return f"print(model.predict([{example}]))"

    def card_limits(self, record):
        n = len(record["labels"])
        points = [f"It knows only the {n} classes it was trained on"
                  + ("; an input may get none of them." if self.multi_label
                     else "; every input gets one of them, even one that belongs to none.")]
        if record["modality"] == "text":
            length = record["resolved"].get("max_length", record["training"].get("max_length"))
            points.append(f"Texts are cut to {length} tokens.")
        kept = sum(((record["resolved"].get("memory") or {}).get("exemplars") or {}).values())
        if kept:
            points.append(f"The folder holds {kept} of the training examples (`exemplars/`), kept to be rehearsed when "
                          "classes are added later: they are part of the training data.")
        extension = record["resolved"].get("extension")
        if extension:
            new = ", ".join(f"`{x}`" for x in extension["new_labels"][:8])
            old_seen = extension["examples"].get("rehearsal", 0) + extension["examples"].get("exemplars", 0)
            points.append(f"The classes {new} were added to a trained model by extension; "
                          + (f"{old_seen} old examples were rehearsed." if old_seen else
                             "no old example was seen, so old classes near the new ones may be taken for them: "
                             "see the old / new class accuracies and the forgetting above."))
        return points

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, probs: np.ndarray, y: np.ndarray, threshold: float | None) -> dict[str, float]:
        raise NotImplementedError

    def predictions(self, probs: np.ndarray, threshold: float | None) -> np.ndarray:
        """Class ids (single-label) or 0/1 rows (multi-label): what the metrics compare with ``y``."""
        raise NotImplementedError

    def score(self, outputs, threshold=None, labels=None):
        logits, y = outputs
        probs = self.probabilities(torch.from_numpy(logits)).numpy()
        return self.metrics(probs, y, threshold) | {"loss": float(self.loss(torch.from_numpy(logits), self.targets(y)))}

    def decode(self, outputs, labels, threshold=None, inputs=()):
        return self.decode_probs(self.probabilities(torch.from_numpy(outputs[0])).numpy(), labels, threshold)

    def decode_probs(self, probs: np.ndarray, labels: list[str], threshold: float | None) -> list[Any]:
        raise NotImplementedError

    def per_class(self, outputs, labels, threshold=None):
        """Precision, recall, F1 and support of every label: what an overall score averages away."""
        from sklearn.metrics import precision_recall_fscore_support

        logits, y = outputs
        probs = self.probabilities(torch.from_numpy(logits)).numpy()
        kwargs = {} if self.multi_label else {"labels": np.arange(len(labels))}
        p, r, f, n = precision_recall_fscore_support(np.asarray(y).astype(int), self.predictions(probs, threshold),
                                                     average=None, zero_division=0, **kwargs)
        return {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
                for i, name in enumerate(labels)}


@register_task
class SingleLabel(Classification):
    name = "single_label"
    aliases = ("single-label", "classification", "text_classification", "image_classification")
    metric = "accuracy"
    one_label_per_example = True

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

    def decode_probs(self, probs, labels, threshold=None):
        best = probs.argmax(-1)
        return [{"label": labels[i], "score": float(p[i])} for i, p in zip(best, probs)]


@register_task
class MultiLabel(Classification):
    name = "multi_label"
    aliases = ("multi-label", "multilabel")
    metric = "f1_micro"
    multi_label = True
    default_threshold = 0.5

    def claims(self, examples):
        return label_data.all_lists(examples.raw_labels)

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

    def decode_probs(self, probs, labels, threshold=None):
        t = threshold or self.default_threshold
        return [[{"label": labels[j], "score": float(row[j])} for j in np.argsort(-row) if row[j] >= t] for row in probs]

    def tune_threshold(self, outputs):
        """The threshold in 0.05..0.95 with the best micro-F1 on the validation split (ties: nearest 0.5)."""
        logits, y = outputs
        probs = self.probabilities(torch.from_numpy(logits)).numpy()
        grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
        scores = [(self.metrics(probs, y, t)["f1_micro"], -abs(t - 0.5), t) for t in grid]
        return float(max(scores)[2])
