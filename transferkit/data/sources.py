"""Read every dataset form people have into one ``Examples`` object.

Forms: ``datasets.Dataset``; an image folder with one sub-folder per class; a CSV / JSONL file
with a text or image-path column; a dict of columns; a list of ``(input, label)`` pairs (or of
bare inputs, for prediction). Columns are detected by type and name, with overrides.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, did_you_mean
from .checks import check_inputs, check_labels
from .images import IMAGE_SUFFIXES, looks_like_image_path

LABEL_NAMES = ("label", "labels", "target", "targets", "class", "category", "y", "sentiment", "tags")
TEXT_NAMES = ("text", "sentence", "content", "review", "tweet", "document", "comment", "body", "question")
IMAGE_NAMES = ("image", "img", "picture", "photo", "image_path", "path", "file", "filepath", "filename")


@dataclass
class Examples:
    """Inputs (PIL images, arrays, paths or strings) with raw labels, as read from the user's data."""

    inputs: Sequence[Any]
    raw_labels: list[Any] | None
    modality: str
    label_names: list[str] | None = None
    input_column: str | None = None
    label_column: str | None = None

    def __len__(self) -> int:
        return len(self.inputs)


class _Column(Sequence):
    """A lazy view of one column of a ``datasets.Dataset`` (images decode only when read)."""

    def __init__(self, ds, column: str):
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.ds[int(i)][self.column]


def _modality(value: Any) -> str:
    if isinstance(value, str) and not looks_like_image_path(value):
        return "text"
    return "image"


def _is_input_value(value: Any) -> bool:
    return isinstance(value, (str, np.ndarray, dict)) or type(value).__module__.startswith("PIL")


def _pick(columns: list[str], given: str | None, names: Sequence[str], what: str) -> str | None:
    if given is not None:
        if given not in columns:
            raise DataError(f"{what} column {given!r} not found; the columns are {columns}.{did_you_mean(given, columns)}")
        return given
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def from_table(columns: dict[str, Sequence[Any]] | Any, input_column: str | None, label_column: str | None,
               require_labels: bool, base: Path | None = None, features: Any = None) -> Examples:
    """Examples from a dict of columns or a ``datasets.Dataset`` (``features`` given)."""
    names = list(columns.column_names if features is not None else columns)
    n = len(columns) if features is not None else len(next(iter(columns.values()), []))
    if n == 0:
        raise DataError("the dataset is empty (0 rows): nothing to train or evaluate on.")
    if features is None:
        lengths = {c: len(v) for c, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"the columns have different lengths {lengths}: every column needs one value per example.")
    if label_column is not None and label_column not in names and not require_labels:
        label_column = None  # predicting on unlabelled data: the training label column may be absent
    label_col = _pick(names, label_column, LABEL_NAMES, "label")
    if label_col is None and features is not None:
        label_col = next((c for c in names if type(features[c]).__name__ == "ClassLabel"), None)
    if label_col is None and require_labels:
        raise DataError(
            f"no label column found; the columns are {names}.{did_you_mean('label', names) or did_you_mean('labels', names)} "
            "Name it with label_column=..."
        )
    rest = [c for c in names if c != label_col]
    sample = columns[0] if features is not None else {c: columns[c][0] for c in names}
    input_col = _pick(rest, input_column, (), "input")
    if input_col is None:
        image_typed = [c for c in rest if features is not None and type(features[c]).__name__ == "Image"]
        by_name = _pick(rest, None, TEXT_NAMES + IMAGE_NAMES, "input")
        usable = [c for c in rest if _is_input_value(sample[c])]
        input_col = image_typed[0] if image_typed else by_name or (usable[0] if len(usable) == 1 else None)
        if input_col is None:
            raise DataError(f"cannot tell which column holds the inputs among {rest}; name it with input_column=...")
    if features is not None:
        inputs: Sequence[Any] = _Column(columns, input_col) if _modality(sample[input_col]) == "image" else list(columns[input_col])
        label_feature = features[label_col] if label_col else None
        names_given = getattr(label_feature, "names", None) or getattr(getattr(label_feature, "feature", None), "names", None)
        raw = list(columns[label_col]) if label_col else None
        if raw is not None and names_given:
            raw = _class_names(raw, names_given, label_col)
    else:
        inputs, raw, names_given = list(columns[input_col]), (list(columns[label_col]) if label_col else None), None
    if base is not None and isinstance(inputs, list) and inputs and looks_like_image_path(inputs[0]):
        inputs = [str(p) if Path(p).is_absolute() else str(base / p) for p in inputs]
    return Examples(inputs, raw, _modality(sample[input_col]), names_given, input_col, label_col)


def _class_names(raw: list[Any], names: list[str], column: str) -> list[Any]:
    """ClassLabel ids -> their names, so labels compare by name across splits whatever the id order."""

    def name(v: Any) -> str:
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < len(names):
            raise DataError(f"column {column!r} holds {v!r}, not a class id of its ClassLabel {names[:10]} (-1 marks "
                            "an unlabelled example). Drop those rows first, e.g. dataset.filter(lambda r: r[...] >= 0).")
        return names[int(v)]

    return [[name(x) for x in v] if isinstance(v, (list, tuple)) else name(v) for v in raw]


def _read_rows(path: Path) -> dict[str, list[Any]]:
    if path.suffix.lower() == ".csv":
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        except UnicodeDecodeError as exc:
            raise DataError(f"{str(path)!r} is not UTF-8 (byte {exc.object[exc.start]:#x} at offset {exc.start}); "
                            "it may be latin-1 / cp1252. Re-save it as UTF-8, or read it yourself, e.g. "
                            "pandas.read_csv(path, encoding='latin-1'), and pass the DataFrame.") from None
    else:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{str(path)!r} is not UTF-8 (offset {exc.start}): re-save it as UTF-8.") from None
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as exc:
                raise DataError(f"{str(path)!r} is not valid JSON Lines (line {number}: {exc.msg}); one JSON object "
                                "per line.") from None
        if any(not isinstance(r, dict) for r in rows):
            raise DataError(f"{str(path)!r}: every line must be a JSON object such as {{\"text\": ..., \"label\": ...}}.")
    if not rows:
        raise DataError(f"the dataset is empty: {str(path)!r} has no rows.")
    return {k: [r.get(k) for r in rows] for k in rows[0]}


def from_image_folder(root: Path) -> Examples:
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    splits = {"train", "val", "valid", "validation", "test"} & {d.name.lower() for d in classes}
    if splits and all(any(c.is_dir() for c in d.iterdir()) for d in classes if d.name.lower() in splits):
        raise DataError(f"folder {str(root)!r} holds splits {sorted(splits)}, not classes. Did you mean {str(root / sorted(splits)[0])!r}?")
    inputs, labels = [], []
    for d in classes:
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                inputs.append(str(f))
                labels.append(d.name)
    if not inputs:
        raise DataError(f"folder {str(root)!r} has no images in class sub-folders (expected {root}/<class>/<image>.png).")
    return Examples(inputs, labels, "image")


def read_dataset(data: Any, input_column: str | None = None, label_column: str | None = None,
                 require_labels: bool = True) -> Examples:
    """Any supported dataset form -> ``Examples``, validated (``data.checks``); a DataError naming the fix otherwise."""
    ex = _read(data, input_column, label_column, require_labels)
    check_inputs(ex.inputs, ex.modality)
    if ex.raw_labels is not None:
        ex.raw_labels = check_labels(ex.raw_labels)
    return ex


def _read(data: Any, input_column: str | None, label_column: str | None, require_labels: bool) -> Examples:
    kind = type(data).__name__
    if kind in ("DatasetDict", "IterableDatasetDict"):
        splits = list(data.keys())
        first = "train" if "train" in splits else splits[0] if splits else "train"
        raise DataError(f"got a DatasetDict with splits {splits}; pass one split. Did you mean dataset[{first!r}]?")
    if kind == "Dataset" and hasattr(data, "features"):
        return from_table(data, input_column, label_column, require_labels, features=data.features)
    if kind == "DataFrame":
        return from_table({c: list(data[c]) for c in data.columns}, input_column, label_column, require_labels)
    if isinstance(data, Examples):
        return data
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if path.is_dir():
            return from_image_folder(path)
        if path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".json"):
            return from_table(_read_rows(path), input_column, label_column, require_labels, base=path.parent)
        if not path.exists():
            raise DataError(f"dataset path {str(path)!r} does not exist (resolved from {Path.cwd()}).")
        raise DataError(f"cannot read {str(path)!r}: use a folder of class sub-folders, a .csv or a .jsonl file.")
    if isinstance(data, dict):
        return from_table(data, input_column, label_column, require_labels)
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise DataError("the dataset is empty (an empty list): nothing to train or evaluate on.")
        pairs = all(isinstance(x, tuple) and len(x) == 2 for x in data)
        if not pairs:
            if require_labels:
                raise DataError(
                    f"a list dataset must hold (input, label) pairs; the first item is a {type(data[0]).__name__}. "
                    "Use [(input, label), ...] or a dict {'text': [...], 'label': [...]}."
                )
            return Examples(list(data), None, _modality(data[0]))
        inputs, labels = [x[0] for x in data], [x[1] for x in data]
        return Examples(inputs, labels, _modality(inputs[0]))
    if isinstance(data, np.ndarray) and not require_labels:
        return Examples(list(data), None, "image")
    raise DataError(f"cannot read a {kind} as a dataset: pass a datasets.Dataset, a folder, a CSV/JSONL path, "
                    "a dict of columns or a list of (input, label) pairs.")
