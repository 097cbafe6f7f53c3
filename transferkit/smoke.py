"""Smoke mode: a recipe's model and data swapped for tiny stand-ins of the same form, so it runs in seconds.

Why the same form: a recipe that reads a folder per class, a CSV or a JSONL file must have that very
path exercised (column names, test split, saving, pushing); only the size changes. The stand-in model
is one of :mod:`transferkit.testing`'s tiny models, saved to a folder and loaded by the path a real
one takes. A recipe can say what to swap in with a ``smoke`` setting: ``model`` (a builder of
``transferkit.testing``: tiny_timm, tiny_bert, tiny_gpt2, tiny_sentence_transformer), ``data`` (a form
below, needed when ``data`` is computed by a function) and any other setting to use in smoke mode.

The toy data fits the task the settings run (``task``, or the task whose form ``data`` is, such as a
CoNLL file): classification gets separable sentences or colour images; the other tasks, keyed by
their ``Task.head`` in ``TOYS``, get their own generated data and tiny model (token classification:
order messages tagged with entities on a tiny BERT; causal LM: shipping-support texts on a tiny GPT-2).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError, did_you_mean

FORMS = {  # form -> modality
    "image-folder": "image",  # a folder per class (and one such folder per split)
    "images": "image",        # a list of (PIL image, label) pairs in memory
    "csv": "text",            # text,label columns
    "jsonl": "text",          # {"text": ..., "label": ...} per line; a list of labels per line for multi-label
    "texts": "text",          # in memory: a dict of columns (a list of strings for a causal LM)
    "conll": "text",          # a word and its tag per line, a blank line between sentences (token classification)
    "text-file": "text",      # plain text (causal LM)
}
CLASSIFICATION_FORMS = ("image-folder", "images", "csv", "jsonl", "texts")  # the other tasks': TOYS[head].forms
MODELS = ("tiny_timm", "tiny_bert", "tiny_gpt2", "tiny_sentence_transformer")
DEFAULT_MODEL = {"image": "tiny_timm", "text": "tiny_bert"}
SPLITS = {"data": ("train", 8, 0), "eval_data": ("eval", 4, 2), "test_data": ("test", 4, 1)}  # name, per class, seed
SMOKE_TRAINING = {"epochs": 1, "max_steps": None, "mixed_precision": "no", "resume": False, "save_every": None,
                  "max_length": 32, "trust_remote_code": False, "progress_bar": False}


def infer_form(value: Any, head: str = "sequence") -> str | None:
    """The toy form that stands in for a dataset setting of a task with this ``head``, or None when it cannot be
    told without loading it."""
    if isinstance(value, (str, Path)):
        suffix = Path(str(value)).suffix.lower()
        files = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
        files |= TOYS[head].suffixes if head in TOYS else {}
        return files.get(suffix, "image-folder" if not suffix else None)
    if isinstance(value, Mapping) or isinstance(value, (list, tuple)) and head in TOYS:
        return "texts"
    return None


def smoke_task(settings: Mapping[str, Any]):
    """The task the settings run: the one ``task`` names, else the one whose form ``data`` is (a CoNLL file is
    token classification), else None (classification, told from the labels when the data is read)."""
    from .tasks import get_task, task_names

    if settings.get("task") is not None:
        return get_task(settings["task"])
    data = settings.get("data")
    if data is None or callable(data):  # a function is called in a real run only
        return None
    return next((task for task in map(get_task, task_names()) if task.recognises(data)), None)


def smoke_settings(settings: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``settings`` (normalized) with the model, the datasets and the output folder replaced by tiny ones in
    ``folder``; training cut to one epoch. The push, if any, is kept only when HF_ENDPOINT names a hub other than
    huggingface.co (a test or private hub): a tiny random model must never replace a real one on the public Hub."""
    hints = dict(settings.get("smoke") or {})
    task = smoke_task(settings)
    toy = TOYS.get(task.head) if task is not None else None
    forms = toy.forms if toy else CLASSIFICATION_FORMS
    form = hints.pop("data", None) or infer_form(settings.get("data"), task.head if task else "sequence")
    if form not in forms:
        shown = settings.get("data")
        what = f"task {task.name!r}" if toy else "classification"
        raise ConfigError(f"smoke mode cannot tell what toy data stands in for data={shown!r}"
                          + (f" (smoke data form {form!r} does not fit {what}.{did_you_mean(str(form), forms)})"
                             if form else "")
                          + f": add smoke={{'data': FORM}} to the settings, FORM one of {sorted(forms)}.")
    model = hints.pop("model", None) or (toy.model if toy else DEFAULT_MODEL[FORMS[form]])
    if model not in MODELS:
        raise ConfigError(f"smoke model {model!r} is not a tiny model of transferkit.testing."
                          f"{did_you_mean(model, MODELS)} Choose one of {list(MODELS)}.")
    multi = bool(task is not None and task.multi_label)
    out = {k: v for k, v in settings.items() if k != "smoke"}
    out["model"] = str(_build_model(model, folder / "model"))
    for key, (split, per_class, seed) in SPLITS.items():
        if key == "data" or settings.get(key) is not None:
            out[key] = (toy.write(form, folder / "data", split, toy.scale * per_class, seed, settings) if toy
                        else write_toy(form, folder / "data", split, per_class, seed, multi, settings))
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


def write_toy_sentences(form: str, root: Path, split: str, n: int, seed: int, settings: Mapping[str, Any]) -> Any:
    """``n`` order and shipping messages tagged with entities (:func:`transferkit.ner_data.order_messages`, BIO): a
    CoNLL file under ``root``, or the dict of word-list and tag-list columns a ``datasets.Dataset`` has."""
    from .ner_data import order_messages, to_conll

    data = order_messages(n, seed=seed)
    if form == "texts":
        return {settings.get("input_column") or "tokens": data["tokens"],
                settings.get("label_column") or "ner_tags": data["ner_tags"]}
    root.mkdir(parents=True, exist_ok=True)
    return str(to_conll(data, root / f"{split}.conll"))


def write_toy_texts(form: str, root: Path, split: str, n: int, seed: int, settings: Mapping[str, Any]) -> Any:
    """``n`` shipping-support messages (:func:`transferkit.testing.shipping_texts`): a list of strings, a text file,
    or a CSV / JSONL file with a text column."""
    from .testing import shipping_texts

    texts = shipping_texts(n, seed=seed)
    if form == "texts":
        return texts
    root.mkdir(parents=True, exist_ok=True)
    column = settings.get("input_column") or "text"
    path = root / f"{split}.{'txt' if form == 'text-file' else form}"
    with path.open("w", newline="", encoding="utf-8") as f:
        if form == "csv":
            csv.writer(f).writerows([[column]] + [[t] for t in texts])
        elif form == "jsonl":
            f.writelines(json.dumps({column: t}) + "\n" for t in texts)
        else:
            f.write("\n".join(texts) + "\n")
    return str(path)


@dataclass(frozen=True)
class Toy:
    """The stand-ins for a task other than classification: its tiny model, the data forms it writes, its writer."""

    model: str
    forms: tuple[str, ...]
    suffixes: dict[str, str]  # a data file's suffix -> the form written in its place
    write: Callable[..., Any]  # (form, root, split, n, seed, settings) -> the toy split
    scale: int  # examples written per SPLITS "per class" count (token classification: 8 -> 40 training messages)


# Keyed by Task.head. 40 training messages hold every BIO tag order_messages writes, so the eval and test
# splits (other seeds) never have a tag the training set lacks.
TOYS = {
    "token": Toy("tiny_bert", ("conll", "texts"),
                 {s: "conll" for s in (".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".txt", ".tsv")},
                 write_toy_sentences, 5),
    "causal_lm": Toy("tiny_gpt2", ("text-file", "texts", "csv", "jsonl"), {".txt": "text-file", ".text": "text-file"},
                     write_toy_texts, 2),
}
