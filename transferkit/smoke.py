"""Smoke mode: a recipe's model and data swapped for tiny stand-ins of the same form, so it runs in seconds.

Why the same form: a recipe that reads a folder per class, a CSV or a JSONL file must have that very
path exercised (column names, test split, saving, pushing); only the size changes. The stand-in model
is one of :mod:`transferkit.testing`'s tiny models, saved to a folder and loaded by the path a real
one takes. A recipe can say what to swap in with a ``smoke`` setting: ``model`` (a builder of
``transferkit.testing``: tiny_timm, tiny_bert, tiny_gpt2, tiny_sentence_transformer), ``data`` (a form
below, needed when ``data`` is computed by a function) and any other setting to use in smoke mode.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, did_you_mean

FORMS = {  # form -> modality
    "image-folder": "image",  # a folder per class (and one such folder per split)
    "images": "image",        # a list of (PIL image, label) pairs in memory
    "csv": "text",            # text,label columns
    "jsonl": "text",          # {"text": ..., "label": ...} per line; a list of labels per line for multi-label
    "texts": "text",          # a dict of columns in memory
}
MODELS = ("tiny_timm", "tiny_bert", "tiny_gpt2", "tiny_sentence_transformer")
DEFAULT_MODEL = {"image": "tiny_timm", "text": "tiny_bert"}
SPLITS = {"data": ("train", 8, 0), "eval_data": ("eval", 4, 2), "test_data": ("test", 4, 1)}  # name, per class, seed
SMOKE_TRAINING = {"epochs": 1, "max_steps": None, "mixed_precision": "no", "resume": False, "save_every": None,
                  "max_length": 32, "trust_remote_code": False, "progress_bar": False}


def infer_form(value: Any) -> str | None:
    """The toy form that stands in for a dataset setting, or None when it cannot be told without loading it."""
    if isinstance(value, (str, Path)):
        suffix = Path(str(value)).suffix.lower()
        return {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "image-folder" if not suffix else None)
    if isinstance(value, Mapping):
        return "texts"
    return None


def smoke_settings(settings: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``settings`` (normalized) with the model, the datasets and the output folder replaced by tiny ones in
    ``folder``; training cut to one epoch. The push, if any, is kept only when HF_ENDPOINT names a hub other than
    huggingface.co (a test or private hub): a tiny random model must never replace a real one on the public Hub."""
    hints = dict(settings.get("smoke") or {})
    form = hints.pop("data", None) or infer_form(settings.get("data"))
    if form not in FORMS:
        shown = settings.get("data")
        raise ConfigError(f"smoke mode cannot tell what toy data stands in for data={shown!r}"
                          + (f" (smoke data form {form!r} is unknown.{did_you_mean(str(form), FORMS)})" if form else "")
                          + f": add smoke={{'data': FORM}} to the settings, FORM one of {sorted(FORMS)}.")
    model = hints.pop("model", None) or DEFAULT_MODEL[FORMS[form]]
    if model not in MODELS:
        raise ConfigError(f"smoke model {model!r} is not a tiny model of transferkit.testing."
                          f"{did_you_mean(model, MODELS)} Choose one of {list(MODELS)}.")
    multi = str(settings.get("task", "")).replace("-", "_") in ("multi_label", "multilabel")
    out = {k: v for k, v in settings.items() if k != "smoke"}
    out["model"] = str(_build_model(model, folder / "model"))
    for key, (split, per_class, seed) in SPLITS.items():
        if key == "data" or settings.get(key) is not None:
            out[key] = write_toy(form, folder / "data", split, per_class, seed, multi, settings)
    out.update(SMOKE_TRAINING)
    if FORMS[form] == "image":
        out["image_size"] = 32  # the tiny models' own size: real recipes often ask for 224
    if settings.get("output_dir") is not None:
        out["output_dir"] = str(folder / "output")
    out.update(hints)
    if out.get("push_to_hub") and not _private_hub():
        import sys

        print(f"smoke: not pushing to {out['push_to_hub']!r}: set HF_ENDPOINT to a test hub to check the push too.",
              file=sys.stderr)
        for key in ("push_to_hub", "private", "revision", "commit_message", "license", "datasets"):
            out.pop(key, None)
    return out


def _private_hub() -> bool:
    import os

    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/")
    return bool(endpoint) and endpoint not in ("https://huggingface.co", "https://hf.co")


def _build_model(name: str, directory: Path) -> Path:
    from . import testing

    return getattr(testing, name)(directory)


def write_toy(form: str, root: Path, split: str, per_class: int, seed: int, multi: bool,
              settings: Mapping[str, Any]) -> Any:
    """One toy split in ``form``: written under ``root`` for the file forms, in memory for the others."""
    from . import testing

    modality = FORMS[form]
    if multi and form in ("image-folder", "csv"):
        raise ConfigError(f"a multi-label recipe cannot read its labels from the {form} form (one label per example); "
                          "use JSONL (a list of labels per line), a dict of columns or a datasets.Dataset.")
    pairs = (testing.toy_images(per_class, multi_label=multi, seed=seed) if modality == "image"
             else testing.toy_texts(per_class, multi_label=multi, seed=seed))
    if form == "images":
        return pairs
    if form == "image-folder":
        for i, (image, label) in enumerate(pairs):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            image.save(root / split / label / f"{i:03d}.png")
        return str(root / split)
    text_column = settings.get("input_column") or "text"
    label_column = settings.get("label_column") or ("labels" if multi else "label")
    if form == "texts":
        return {text_column: [t for t, _ in pairs], label_column: [y for _, y in pairs]}
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{split}.{form}"
    with path.open("w", newline="", encoding="utf-8") as f:
        if form == "csv":
            writer = csv.writer(f)
            writer.writerow([text_column, label_column])
            writer.writerows(pairs)
        else:
            f.writelines(json.dumps({text_column: t, label_column: y}) + "\n" for t, y in pairs)
    return str(path)
