"""Classification labels: build the label list, encode to ids / multi-hot rows, split stratified.

``multi`` says whether each example has a list of labels (multi-label) or one label; the
classification tasks (``tasks.classification``) call these with their own flag.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import DataError


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray))


def all_lists(raw_labels: Sequence[Any] | None) -> bool:
    """Every example has a list of labels: multi-label data (unless a task claimed it first)."""
    return bool(raw_labels) and all(_is_multi(v) for v in raw_labels)


def _is_multi_hot(raw_labels: Sequence[Any]) -> bool:
    """Rows of equal length holding only numeric 0/1 values. (Label *names* for multi-label data
    should be strings: integer ids in equal-length lists would read as multi-hot vectors.)"""
    if len({len(v) for v in raw_labels}) != 1:
        return False
    return all(isinstance(x, (int, float, bool, np.integer, np.floating)) and x in (0, 1)
               for v in raw_labels for x in v)


def check_shape(raw_labels: Sequence[Any], multi: bool) -> None:
    """One label per example (single-label) or a list per example (multi-label), never a mix."""
    for i, value in enumerate(raw_labels):
        if not multi and _is_multi(value):
            raise DataError(f"some labels are lists and some are not (example {i} has {value!r}): use one label per "
                            "example, or a list for every example (multi-label).")
        if multi and not _is_multi(value):
            raise DataError(f"multi-label data needs a list of labels per example; example {i} has {value!r}.")


def build_labels(raw_labels: Sequence[Any], multi: bool, names: list[str] | None = None) -> list[str]:
    """The label names in class-id order: given names (a ClassLabel's), else sorted distinct values."""
    check_shape(raw_labels, multi)
    if names:
        return [str(n) for n in names]
    if multi:
        if _is_multi_hot(raw_labels):
            return [str(i) for i in range(len(raw_labels[0]))]
        values = {v for row in raw_labels for v in row}
    else:
        values = set(raw_labels)
    try:
        ordered = sorted(values)
    except TypeError:
        ordered = sorted(values, key=str)
    return [str(v) for v in ordered]


def encode(raw_labels: Sequence[Any], labels: list[str], multi: bool, what: str = "dataset") -> np.ndarray:
    """Class ids (single-label) or multi-hot rows (multi-label); unknown labels raise a DataError."""
    check_shape(raw_labels, multi)
    index = {name: i for i, name in enumerate(labels)}

    def lookup(value: Any) -> int:
        if str(value) not in index:
            raise DataError(
                f"the {what} has label {value!r}, which the training set never had (its labels: {labels[:20]}). "
                "Remove those examples or add them to the training data."
            )
        return index[str(value)]

    if not multi:
        return np.array([lookup(v) for v in raw_labels], dtype=np.int64)
    out = np.zeros((len(raw_labels), len(labels)), dtype=np.float32)
    multi_hot = _is_multi_hot(raw_labels) and labels == [str(i) for i in range(len(labels))]
    for row, value in enumerate(raw_labels):
        if multi_hot:
            out[row] = np.asarray(value, dtype=np.float32)
        else:
            for v in value:
                out[row, lookup(v)] = 1.0
    return out


def check_classes(y: np.ndarray, labels: list[str]) -> None:
    present = np.unique(y) if y.ndim == 1 else np.flatnonzero(y.sum(0) > 0)
    if len(labels) < 2 or len(present) < 2:
        raise DataError(
            f"need at least 2 classes to train a classifier, found {len(present)} ({[labels[i] for i in present][:5]}). "
            "Check the label column, or add examples of the other classes."
        )


def stratified_split(y: np.ndarray, fraction: float, seed: int,
                     min_per_class: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """(train_idx, val_idx), stratified on the class (on the first label for multi-label data).

    Each class gives ``round(fraction * count)`` examples, at least one, to validation, so every
    class is seen on both sides. Returns None when a class has fewer than 2 examples, or would give
    fewer than ``min_per_class`` to validation: training then runs without a validation split
    (and without early stopping), which the caller logs.
    """
    strata = y if y.ndim == 1 else y.argmax(1)
    classes, counts = np.unique(strata, return_counts=True)
    if fraction <= 0 or counts.min() < 2 or int(round(fraction * counts.min())) < min_per_class:
        return None
    rng = np.random.default_rng(seed)
    val = []
    for c, n in zip(classes, counts):
        members = rng.permutation(np.flatnonzero(strata == c))
        val.extend(members[: min(n - 1, max(1, int(round(fraction * n))))])
    val_idx = np.sort(np.asarray(val))
    return np.setdiff1d(np.arange(len(y)), val_idx), val_idx
