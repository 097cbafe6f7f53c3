"""One row per kind of bad input or fault: what is given -> the TransferkitError raised and words its message holds.

Each row is a case a user met (the issue's audit) or one of its family. Every row also checks that no
library's exception leaks, neither as the type raised nor as its chained cause (``fails`` in
test_errors.py), and most fail before any model loads (the rows that need a model use the tiny ones).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from test_errors import fails
from transferkit import Auto, Contrastive, Freeze, Full, LinearProbe, LoRA, adapt, load, testing
from transferkit.errors import ConfigError, DataError, ModelNotFoundError, StrategyError, TransferkitError

FAST = dict(max_steps=2, progress_bar=False, strategy="linear-probe")


@dataclass
class Env:
    models: dict[str, str]
    tmp: Path
    saved: Callable[[], Path]  # a freshly saved tiny text model folder


def _texts(labels: list[Any], texts: list[Any] | None = None) -> dict:
    base = [t for t, _ in testing.toy_texts(len(labels))][: len(labels)]
    return {"text": texts if texts is not None else base, "label": labels}


def _balanced(bad_at: int, bad: Any, n: int = 12) -> list:
    labels = ["pos", "neg"] * (n // 2)
    labels[bad_at] = bad
    return labels


def _text_adapt(data, **kw):
    return lambda env: adapt(env.models["bert"], data, **{**FAST, **kw})


def _image_adapt(data, **kw):
    return lambda env: adapt(env.models["cnn"], data, **{**FAST, **kw})


def _images(n: int = 6, make=None):
    make = make or (lambda i: np.full((16, 16), 40 * (i % 2), dtype=np.uint8))
    return [(make(i), "a" if i % 2 else "b") for i in range(n)]


def _file(env: Env, name: str, content: bytes) -> Path:
    path = env.tmp / name
    path.write_bytes(content)
    return path


def _edited(env: Env, name: str, edit: Callable[[Path], None]) -> Path:
    folder = env.saved()
    edit(folder / name)
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _pickle_only(env: Env) -> Path:
    """A BERT folder whose weights are only a pickle (pytorch_model.bin)."""
    import shutil

    import torch

    folder = env.tmp / "pickled"
    shutil.copytree(env.models["bert"], folder)
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def _damaged_copy(env: Env, kind: str) -> Path:
    import shutil

    folder = env.tmp / f"damaged-{kind}"
    shutil.copytree(env.models[kind], folder)
    _truncate(folder / "model.safetensors")
    return folder


def _bomb(env: Env) -> Path:
    from PIL import Image

    path = env.tmp / "bomb.png"
    Image.new("L", (1, 1)).save(path)
    big = Image.new("1", (20000, 20000))  # 400 Mpx, 1 bit: tiny on disk, past PIL's safety limit
    big.save(path)
    return path


CASES: list[tuple[str, Callable[[Env], Any], type, tuple[str, ...]]] = [
    # --- labels -------------------------------------------------------------------------------------
    ("label None", lambda e: _text_adapt(_texts(_balanced(3, None)))(e), DataError, ("no label", "example 3", "None")),
    ("label NaN", lambda e: _text_adapt(_texts(_balanced(2, float("nan"))))(e), DataError, ("no label", "nan")),
    ("label empty string", lambda e: _text_adapt(_texts(_balanced(1, "")))(e), DataError, ("no label", "''")),
    ("label whitespace", lambda e: _text_adapt(_texts(_balanced(1, "  ")))(e), DataError, ("no label",)),
    ("labels 1 and '1'", lambda e: _text_adapt(_texts([1, "1", 0, "0"] * 3))(e), DataError, ("mix types", "'1'")),
    ("labels int and str", lambda e: _text_adapt(_texts(["pos", 0] * 6))(e), DataError, ("mix types", "string")),
    ("label 0.5", lambda e: _text_adapt(_texts([0.5, 1.0] * 6))(e), DataError, ("0.5", "regression")),
    ("label a dict", lambda e: _text_adapt(_texts([{"a": 1}, "x"] * 6))(e), DataError, ("dict", "strings or integers")),
    ("multi-hot row with a 2", lambda e: _text_adapt(_texts([[1, 0], [0, 1], [2, 0], [1, 1]] * 3))(e), DataError,
     ("[2, 0]", "0/1")),
    ("None inside a label list", lambda e: _text_adapt(_texts([["a"], ["b", None]] * 6))(e), DataError,
     ("missing value",)),
    ("numpy NaN labels", lambda e: _text_adapt(_texts(list(np.array([1.0, np.nan] * 6))))(e), DataError,
     ("no label",)),
    ("one class only", lambda e: _text_adapt(_texts(["a"] * 8))(e), DataError, ("at least 2 classes",)),
    ("eval label unseen", lambda e: _text_adapt(_texts(["a", "b"] * 6), eval_dataset=_texts(["a", "c"] * 2))(e),
     DataError, ("'c'", "never had")),
    # --- inputs -------------------------------------------------------------------------------------
    ("text None", lambda e: _text_adapt(_texts(["a", "b"] * 3, ["x", None, "y", "z", "w", "v"]))(e), DataError,
     ("example 1", "no input")),
    ("text NaN", lambda e: _text_adapt(_texts(["a", "b"] * 3, ["x", float("nan"), "y", "z", "w", "v"]))(e), DataError,
     ("no input",)),
    ("int among texts", lambda e: _text_adapt(_texts(["a", "b"] * 3, ["x", 5, "y", "z", "w", "v"]))(e), DataError,
     ("mix text and int", "example 1")),
    ("image among texts", lambda e: _text_adapt(
        [("good", "a"), (testing.toy_images(1)[0][0], "b")] * 3)(e), DataError, ("mix text and", "Image")),
    ("text among images", lambda e: _image_adapt([(np.zeros((8, 8), np.uint8), "a"), ("just words", "b")] * 3)(e),
     DataError, ("mix images and text", "just words")),
    ("float image out of range", lambda e: _image_adapt(_images(make=lambda i: np.full((8, 8), 300.0 + i)))(e),
     DataError, ("pixel range", "300")),
    ("negative int image", lambda e: _image_adapt(_images(make=lambda i: np.full((8, 8), -5 - i)))(e), DataError,
     ("pixel range", "-5")),
    ("NaN image", lambda e: _image_adapt(_images(make=lambda i: np.full((8, 8), np.nan)))(e), DataError,
     ("pixel range",)),
    ("4-d array image", lambda e: _image_adapt(_images(make=lambda i: np.zeros((2, 2, 2, 2), np.uint8)))(e),
     DataError, ("HxW", "(2, 2, 2, 2)")),
    ("decompression bomb", lambda e: _image_adapt([(str(_bomb(e)), "a"), (str(_bomb(e)), "b")] * 2)(e), DataError,
     ("too large", "MAX_IMAGE_PIXELS")),
    ("missing image file", lambda e: _image_adapt([(str(e.tmp / "no.png"), "a"), (str(e.tmp / "no.png"), "b")])(e),
     DataError, ("not found", "no.png")),
    ("not an image file", lambda e: _image_adapt([(str(_file(e, "x.png", b"text")), "a")] * 2 +
                                                  [(str(_file(e, "y.png", b"text")), "b")] * 2)(e),
     DataError, ("cannot decode", "x.png")),
    ("latin-1 CSV", lambda e: _text_adapt(str(_file(e, "l1.csv", "text,label\ncaf\xe9 ok,a\nbad,b\n".encode("latin-1"))))(e),
     DataError, ("not UTF-8", "latin-1")),
    ("broken JSONL", lambda e: _text_adapt(str(_file(e, "b.jsonl", b'{"text": "a", "label": "x"}\n{oops\n')))(e),
     DataError, ("not valid JSON Lines", "line 2")),
    ("empty CSV", lambda e: _text_adapt(str(_file(e, "e.csv", b"text,label\n")))(e), DataError, ("empty",)),
    ("empty list", lambda e: _text_adapt([])(e), DataError, ("empty",)),
    ("list of bare texts", lambda e: _text_adapt(["a", "b", "c"])(e), DataError, ("(input, label) pairs",)),
    ("unknown dataset type", lambda e: _text_adapt(42)(e), DataError, ("cannot read a int",)),
    ("dataset path missing", lambda e: _text_adapt(str(e.tmp / "nope.csv"))(e), DataError, ("does not exist",)),
    ("columns of different lengths", lambda e: _text_adapt({"text": ["a", "b"], "label": ["x"]})(e), DataError,
     ("different lengths",)),
    ("input column misspelt", lambda e: _text_adapt(_texts(["a", "b"] * 3), input_column="txt")(e), DataError,
     ("'txt'", "Did you mean")),
    # --- options ------------------------------------------------------------------------------------
    ("learning_rate inf", lambda e: _text_adapt(_texts(["a", "b"] * 3), learning_rate=float("inf"))(e), ConfigError,
     ("learning_rate", "inf")),
    ("learning_rate 0", lambda e: _text_adapt(_texts(["a", "b"] * 3), learning_rate=0)(e), ConfigError,
     ("learning_rate",)),
    ("seed -1", lambda e: _text_adapt(_texts(["a", "b"] * 3), seed=-1)(e), ConfigError, ("seed", "-1")),
    ("seed 2**40", lambda e: _text_adapt(_texts(["a", "b"] * 3), seed=2 ** 40)(e), ConfigError, ("seed", "2**32")),
    ("seed a string", lambda e: _text_adapt(_texts(["a", "b"] * 3), seed="1")(e), ConfigError, ("seed", "'1'")),
    ("batch_size 0", lambda e: _text_adapt(_texts(["a", "b"] * 3), batch_size=0)(e), ConfigError, ("batch_size",)),
    ("epochs 0", lambda e: _text_adapt(_texts(["a", "b"] * 3), epochs=0)(e), ConfigError, ("epochs",)),
    ("batch_size 1 with BatchNorm", lambda e: _image_adapt(_images(), batch_size=1, strategy="full")(e), ConfigError,
     ("batch_size=1", "BatchNorm")),
    ("unknown option", lambda e: _text_adapt(_texts(["a", "b"] * 3), epoch=3)(e), ConfigError, ("'epoch'", "epochs")),
    ("mixed_precision typo", lambda e: _text_adapt(_texts(["a", "b"] * 3), mixed_precision="fp32")(e), ConfigError,
     ("mixed_precision", "fp32")),
    ("fp16 on CPU", lambda e: _text_adapt(_texts(["a", "b"] * 3), mixed_precision="fp16")(e), ConfigError,
     ("fp16", "bf16")),
    ("task typo", lambda e: _text_adapt(_texts(["a", "b"] * 3), task="multilable")(e), ConfigError, ("multilable",)),
    ("LoRA dropout 1.5", lambda e: LoRA(dropout=1.5), StrategyError, ("dropout", "1.5")),
    ("LoRA alpha string", lambda e: LoRA(alpha="16"), StrategyError, ("alpha", "'16'")),
    ("LoRA rank 0", lambda e: LoRA(rank=0), StrategyError, ("rank", "0")),
    ("Freeze fraction 2", lambda e: Freeze(fraction=2.0), StrategyError, ("fraction",)),
    ("Full negative scale", lambda e: Full(top_lr_scale=-1), StrategyError, ("top_lr_scale",)),
    ("LinearProbe C 0", lambda e: LinearProbe(C=0), StrategyError, ("C", "0")),
    ("Contrastive loss typo", lambda e: Contrastive(loss="supkon"), StrategyError, ("supkon", "supcon")),
    ("Auto budget typo", lambda e: Auto(budget="quick"), StrategyError, ("budget", "'quick'")),
    ("LinearProbe folds 1", lambda e: LinearProbe(folds=1), StrategyError, ("folds", "1")),
    ("Contrastive steps 0", lambda e: Contrastive(steps=0), StrategyError, ("steps", "0")),
    ("LoRA target_modules a string", lambda e: LoRA(target_modules="query"), StrategyError, ("target_modules", "['query'")),
    ("Freeze groups negative", lambda e: Freeze(groups=-1), StrategyError, ("groups", "-1")),
    ("CompareConfig seeds a string", lambda e: _compare_config(seeds="3"), ConfigError, ("seeds", "'3'")),
    ("CompareConfig test_fraction 1.5", lambda e: _compare_config(test_fraction=1.5), ConfigError, ("test_fraction",)),
    ("strategy class not instance", lambda e: _text_adapt(_texts(["a", "b"] * 3), strategy=LoRA)(e), StrategyError,
     ("class", "LoRA()")),
    ("strategy dict misspelt field", lambda e: _text_adapt(_texts(["a", "b"] * 3),
                                                           strategy={"name": "lora", "rnak": 4})(e),
     StrategyError, ("'rnak'", "rank")),
    ("strategy name typo", lambda e: _text_adapt(_texts(["a", "b"] * 3), strategy="lorra")(e), StrategyError,
     ("'lorra'", "lora")),
    ("strategy a number", lambda e: _text_adapt(_texts(["a", "b"] * 3), strategy=3)(e), StrategyError, ("3",)),
    ("auto_budget with lora", lambda e: _text_adapt(_texts(["a", "b"] * 3), strategy="lora", auto_budget=5)(e),
     ConfigError, ("auto_budget", "only applies")),
    ("contrastive on images", lambda e: _image_adapt(_images(), strategy="contrastive")(e), StrategyError,
     ("text encoders",)),
    ("contrastive multi-label", lambda e: _text_adapt(_texts([["a"], ["b"]] * 4), strategy="contrastive")(e),
     StrategyError, ("single-label",)),
    # --- models -------------------------------------------------------------------------------------
    ("empty model name", lambda e: adapt("", _texts(["a", "b"] * 3)), ModelNotFoundError, ("''", "model")),
    ("model None", lambda e: adapt(None, _texts(["a", "b"] * 3)), ModelNotFoundError, ("None",)),
    ("model is a file", lambda e: adapt(str(_file(e, "w.bin", b"x")), _texts(["a", "b"] * 3)), ModelNotFoundError,
     ("w.bin", "file")),
    ("tokenizer a string", lambda e: _text_adapt(_texts(["a", "b"] * 3), tokenizer="bert")(e), ConfigError,
     ("tokenizer", "'bert'")),
    ("pickle-only folder", lambda e: adapt(str(_pickle_only(e)), _texts(["a", "b"] * 3), **FAST), ModelNotFoundError,
     ("safetensors", "pytorch_model.bin")),
    ("truncated weights in a BERT folder", lambda e: adapt(str(_damaged_copy(e, "bert")), _texts(["a", "b"] * 3),
                                                           **FAST), ModelNotFoundError, ("model.safetensors",)),
    ("truncated weights in a timm folder", lambda e: adapt(str(_damaged_copy(e, "cnn")), _images(), **FAST),
     ModelNotFoundError, ("model.safetensors",)),
    ("broken config.json", lambda e: adapt(str(_edited(e, "config.json", lambda p: p.write_text("{oops"))),
                                           _texts(["a", "b"] * 3), **FAST), TransferkitError, ("config.json",)),
    # --- load ---------------------------------------------------------------------------------------
    ("load None", lambda e: load(None), TransferkitError, ("None", "folder")),
    ("load a file", lambda e: load(_file(e, "m.txt", b"x")), TransferkitError, ("m.txt", "folder")),
    ("load labels more than outputs", lambda e: load(_edited(e, "transferkit.json",
                                                             _rewrite_json_labels(["a", "b", "c", "d", "e"]))),
     TransferkitError, ("5 labels", "2 outputs")),
    ("load labels a string", lambda e: load(_edited(e, "transferkit.json", _rewrite_json_labels("ab"))),
     TransferkitError, ("labels", "list")),
    ("load labels reordered", lambda e: load(_edited(e, "transferkit.json", _reorder_labels)), TransferkitError,
     ("labels", "config.json")),
    ("load truncated safetensors", lambda e: load(_edited(e, "model.safetensors", _truncate)), TransferkitError,
     ("model.safetensors", "complete")),
    ("load broken transferkit.json", lambda e: load(_edited(e, "transferkit.json", lambda p: p.write_text("{x"))),
     TransferkitError, ("transferkit.json", "cannot be read")),
    ("predict batch_size 0", lambda e: load(e.saved()).predict(["good"], batch_size=0), ConfigError,
     ("batch_size", "0")),
    ("demo output is a file", lambda e: _demo(_file(e, "report", b"x")), ConfigError, ("is a file",)),
    ("demo output unwritable", lambda e: _demo(_file(e, "blocker", b"x") / "sub"), ConfigError,
     ("cannot write", "--output-dir")),
    ("predict wrong modality", lambda e: load(e.saved()).predict([np.zeros((8, 8), np.uint8)]), DataError,
     ("text", "image")),
]


def _compare_config(**options):
    from transferkit.evidence import CompareConfig

    return CompareConfig(**options)


def _demo(folder: Path):
    from transferkit.demo import run_demo

    return run_demo(folder, quick=True)  # refused before any data or model loads


def _rewrite_json_labels(labels):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        data["labels"] = labels
        path.write_text(json.dumps(data))
    return edit


def _reorder_labels(path: Path) -> None:
    data = json.loads(path.read_text())
    data["labels"] = list(reversed(data["labels"]))
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def saved_text_model(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "m"
    adapt(tiny_models["bert"], testing.toy_texts(4), **FAST).save(folder)
    return folder


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,action,cls,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, action, cls, words, tiny_models, tmp_path, saved_text_model):
    import shutil

    counter = iter(range(1000))

    def saved() -> Path:
        copy = tmp_path / f"saved-{next(counter)}"
        shutil.copytree(saved_text_model, copy)
        return copy

    env = Env(tiny_models, tmp_path, saved)
    with fails(r"\S", cls, *words):  # a message, holding every one of the words
        action(env)


@pytest.mark.parametrize("trust", [False, True])
def test_no_remote_code_or_pickle_unless_asked(trust, tiny_models, monkeypatch, caplog):
    """Every transformers load asks for safetensors, and for remote code only when the user passed it (logged)."""
    import transformers

    seen = []
    real = transformers.AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    with caplog.at_level("WARNING", logger="transferkit"):
        adapt(tiny_models["bert"], testing.toy_texts(4), trust_remote_code=trust, **FAST)
    assert seen and all(k.get("use_safetensors") is True and k.get("trust_remote_code") is trust for k in seen)
    assert ("trust_remote_code=True" in caplog.text) is trust


def test_text_longer_than_the_models_positions_is_truncated(tiny_models, caplog):
    """max_length above the position table is cut to it (logged), in training and in predict: no torch error."""
    long = [("word " * 3000, "a"), ("other " * 3000, "b")] * 4
    with caplog.at_level("WARNING", logger="transferkit"):
        result = adapt(tiny_models["bert"], long, max_length=100_000, **FAST)
    assert "positions" in caplog.text
    assert len(result.predict(["x " * 5000])) == 1
