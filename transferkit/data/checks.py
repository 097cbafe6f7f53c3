"""Validate what was read, at the boundary, before anything slow: labels and inputs that would train wrong.

Each of these once trained silently on wrong data: a ``None`` label became a class named "None",
``1`` and ``"1"`` became two classes, a multi-hot row holding a 2 was re-read as label names, a
``None`` text trained as the string "None", and a PIL image among texts trained as its repr.
Here they are refused with the example's index, the value seen and the fix.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from .images import looks_like_image_path

_MULTI = (list, tuple, set, frozenset, np.ndarray)


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing markers


def _plain(value: Any, where: str) -> Any:
    """A label as a plain Python str / int / bool; integral floats (pandas' ints with a gap) become ints."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not value.is_integer():
            raise DataError(f"{where} has label {value!r}, which is not a class: classification needs class names or "
                            "integer class ids (continuous targets, i.e. regression, are not supported).")
        return int(value)
    if not isinstance(value, (str, int, bool)):
        raise DataError(f"{where} has a label of type {type(value).__name__} ({value!r}); labels must be strings or "
                        "integers (lists of them for multi-label).")
    return value


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"


def check_labels(raw: Sequence[Any]) -> list[Any]:
    """Raw labels made plain and checked: none missing, one type throughout, multi-hot rows of 0/1 only."""
    out: list[Any] = []
    first_of_kind: dict[str, tuple[int, Any]] = {}
    for i, value in enumerate(raw):
        where = f"example {i}"
        if isinstance(value, _MULTI):
            row = list(value.tolist() if isinstance(value, np.ndarray) else value)
            if any(_missing(v) for v in row):
                raise DataError(f"{where} has a missing value in its label list {row!r}: remove it, or drop the example.")
            value = [_plain(v, where) for v in row]
            kinds = [_kind(v) for v in value]
        elif _missing(value):
            n = sum(1 for v in raw if not isinstance(v, _MULTI) and _missing(v))
            raise DataError(f"{n} example(s) have no label ({where}: {value!r}). Drop unlabelled examples or label "
                            "them: a missing label is never trained as a class of its own.")
        else:
            value = _plain(value, where)
            kinds = [_kind(value)]
        for kind, v in zip(kinds, value if isinstance(value, list) else [value]):
            first_of_kind.setdefault(kind, (i, v))
        out.append(value)
    if len(first_of_kind) > 1:
        shown = "; ".join(f"example {i} has {v!r} ({k})" for k, (i, v) in first_of_kind.items())
        raise DataError(f"the labels mix types ({shown}): 1 and '1' would become two classes. Make every label a "
                        "string, or every label an integer.")
    _check_multi_hot(out)
    return out


def _check_multi_hot(labels: list[Any]) -> None:
    """Equal-length numeric rows are multi-hot vectors: every value must then be 0 or 1."""
    rows = [v for v in labels if isinstance(v, list)]
    if not rows or len(rows) != len(labels) or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return
    if not all(isinstance(x, int) and not isinstance(x, bool) for r in rows for x in r):
        return
    bad = next(((i, r) for i, r in enumerate(rows) if any(x not in (0, 1) for x in r)), None)
    if bad is not None:
        raise DataError(f"example {bad[0]} has the row {bad[1]!r}: rows of integers of one length are read as "
                        "multi-hot 0/1 vectors, and this one holds another value. Fix the row, or give label names "
                        "as strings (['cat', 'dog']).")


def check_inputs(inputs: Sequence[Any], modality: str) -> None:
    """Every input of the detected modality: no None, no image among texts, no plain text among images."""
    if not isinstance(inputs, (list, tuple)):
        return  # a lazy column (datasets Image feature): typed by its schema, decoded and checked per batch
    for i, value in enumerate(inputs):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise DataError(f"example {i} has no input ({value!r}): drop it, or fill it in.")
        if modality == "text" and not isinstance(value, str):
            raise DataError(f"the inputs mix text and {type(value).__name__} (example {i}); the first example is "
                            "text. Give one kind of input per dataset.")
        if modality == "image" and isinstance(value, str) and not looks_like_image_path(value):
            raise DataError(f"the inputs mix images and text (example {i} is the text {value[:60]!r}); the first "
                            "example is an image. Give one kind of input per dataset.")
