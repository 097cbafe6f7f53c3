"""The arms of a comparison: the transfer strategy, the same network from scratch, classic ML.

Every arm trains on the same examples with the same seed and is scored on the same test split,
by the same metric code, with its training time and trainable-parameter count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..tasks import get_task


@dataclass
class Split:
    """Encoded examples for one arm run: inputs, targets (ids or multi-hot), label names, task."""

    inputs: Sequence[Any]
    y: np.ndarray
    labels: list[str]
    task: str
    modality: str

    def raw_labels(self) -> list[Any]:
        if not get_task(self.task).multi_label:
            return [self.labels[i] for i in self.y]
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in self.y]

    def pairs(self) -> list[tuple[Any, Any]]:
        return list(zip(self.inputs, self.raw_labels()))


@dataclass
class ArmRun:
    arm: str
    seed: int
    n_train: int
    metrics: dict[str, float]
    train_seconds: float
    trainable_parameters: int
    history: list[dict[str, Any]] = field(default_factory=list)
    result: Any = field(default=None, repr=False)  # the Adapted model, for neural arms


class Arm:
    name: str
    kind: str  # "transfer" | "scratch" | "classic"
    description: str
    strategy: str | None = None  # the transfer strategy's name, for tables that merge sizes

    def run(self, train: Split, test: Split, seed: int) -> ArmRun:
        raise NotImplementedError


class NeuralArm(Arm):
    """``adapt()`` with the user's model and options; ``pretrained=False`` makes it the scratch arm."""

    def __init__(self, model: Any, strategy: Any, options: dict[str, Any], pretrained: bool = True):
        self.model, self.chosen, self.options, self.pretrained = model, strategy, options, pretrained
        self.kind = "transfer" if pretrained else "scratch"
        self.ran: list[str] = []  # the strategies the runs used (auto decides per run, by measurement)

    @property
    def name(self) -> str:
        return f"transfer ({self.chosen.name})" if self.pretrained else "same network from scratch"

    @property
    def strategy(self) -> str | None:
        """'auto: linear-probe' once auto has run: what was measured and chosen, for tables and reports."""
        if not self.pretrained:
            return None
        used = "/".join(dict.fromkeys(self.ran))
        return f"{self.chosen.name}: {used}" if used and used != self.chosen.name else self.chosen.name

    @property
    def description(self) -> str:
        if self.pretrained:
            return "the pretrained backbone adapted by the chosen strategy"
        return "the same architecture from random initialisation, every layer trained, same epochs and batch size"

    def run(self, train: Split, test: Split, seed: int) -> ArmRun:
        from ..api import adapt
        from ..strategies import Full

        strategy = self.chosen if self.pretrained else Full(top_lr_scale=1.0, lowest_lr_scale=1.0)
        start = time.perf_counter()
        result = adapt(self.model, train.pairs(), strategy=strategy, task=train.task, seed=seed,
                       pretrained=self.pretrained, **self.options)
        seconds = time.perf_counter() - start  # the whole call: loading, feature extraction, training
        self.ran.append(result.config.strategy["name"])
        probs = result.predict_proba(list(test.inputs))
        metrics = get_task(test.task).metrics(probs, test.y, result.threshold)
        return ArmRun(self.name, seed, len(train.y), metrics, seconds, result.config.resolved["trainable_parameters"],
                      result.history, result)


class ClassicArm(Arm):
    """Hand-made features + logistic regression (scikit-learn defaults, C=1)."""

    kind = "classic"

    def __init__(self, name: str, description: str, features):
        self.name, self.description, self.features = name, description, features

    def run(self, train: Split, test: Split, seed: int) -> ArmRun:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        start = time.perf_counter()
        encoder, x_train = self.features(train.inputs, None)
        clf = LogisticRegression(max_iter=2000, random_state=seed)
        multi = get_task(train.task).multi_label
        if multi:
            clf = OneVsRestClassifier(clf)
        clf.fit(x_train, train.y)
        seconds = time.perf_counter() - start
        _, x_test = self.features(test.inputs, encoder)
        probs = _full_proba(clf, x_test, len(train.labels), multi)
        estimators = clf.estimators_ if multi else [clf]
        params = sum(e.coef_.size + e.intercept_.size for e in estimators if hasattr(e, "coef_"))
        return ArmRun(self.name, seed, len(train.y), get_task(test.task).metrics(probs, test.y, None), seconds, params)


def _full_proba(clf, x, n_labels: int, multi: bool) -> np.ndarray:
    """predict_proba with a column for every label, even those absent from this training draw."""
    probs = clf.predict_proba(x)
    if multi or probs.shape[1] == n_labels:
        return probs
    out = np.zeros((probs.shape[0], n_labels))
    out[:, clf.classes_] = probs
    return out


def _pil_batch(inputs, size: int, gray: bool) -> np.ndarray:
    from ..data.images import to_pil

    mode = "L" if gray else "RGB"
    return np.stack([np.asarray(to_pil(x).convert(mode).resize((size, size)), dtype=np.float32) / 255.0 for x in inputs])


def pixel_features(inputs, encoder):
    """Raw pixels, RGB at 28x28, scaled to [0, 1]."""
    return None, _pil_batch(inputs, 28, gray=False).reshape(len(inputs), -1)


def hog_features(inputs, encoder):
    """Histograms of oriented gradients (9 orientations, 4x4-pixel cells, 2x2 blocks) on 32x32 grayscale."""
    from skimage.feature import hog

    images = _pil_batch(inputs, 32, gray=True)
    return None, np.stack([hog(im, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for im in images])


def tfidf_features(inputs, encoder):
    """TF-IDF of word 1- and 2-grams (sublinear term frequency), fitted on the training texts only."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [str(t) for t in inputs]
    if encoder is None:
        encoder = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        return encoder, encoder.fit_transform(texts)
    return encoder, encoder.transform(texts)


def classic_arms(modality: str) -> list[Arm]:
    if modality == "image":
        return [ClassicArm("raw pixels + logistic regression", pixel_features.__doc__, pixel_features),
                ClassicArm("HOG features + logistic regression", hog_features.__doc__, hog_features)]
    return [ClassicArm("TF-IDF + logistic regression", tfidf_features.__doc__, tfidf_features)]
