"""Bad inputs fail early with a TransferkitError whose message names the problem, the value seen and the fix.

Every case also checks that no raw exception from a library underneath (torch, transformers, PIL, ...)
escapes, neither as the type raised nor as its chained cause.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

import datasets  # noqa: E402

from transferkit import LoRA, adapt, load, testing  # noqa: E402
from transferkit.errors import ConfigError, DataError, ModelNotFoundError, StrategyError, TransferkitError  # noqa: E402

FAST = dict(epochs=1, progress_bar=False)
FOREIGN = {"torch", "transformers", "timm", "peft", "PIL", "datasets", "accelerate", "sklearn", "safetensors",
           "huggingface_hub", "tokenizers", "numpy"}


@contextlib.contextmanager
def fails(match: str, cls: type[TransferkitError] = TransferkitError, *also: str):
    """``pytest.raises(cls, match=match)`` plus: every string in ``also`` is in the message, and nothing foreign leaks."""
    with pytest.raises(cls, match=match) as info:
        yield info
    err = info.value
    assert type(err).__module__ == "transferkit.errors", type(err)
    assert not any(c.__module__.split(".")[0] in FOREIGN for c in type(err).__mro__), type(err).__mro__
    assert err.__cause__ is None or isinstance(err.__cause__, TransferkitError), repr(err.__cause__)
    message = str(err)
    for part in also:
        assert part in message, f"{part!r} not in {message!r}"


def texts(n_per_class: int = 4):
    return testing.toy_texts(n_per_class)


def columns(rows, text="text", label="label"):
    return {text: [t for t, _ in rows], label: [y for _, y in rows]}


@pytest.fixture(scope="module")
def adapted_bert(tiny_models):
    return adapt(tiny_models["bert"], texts(), **FAST)


# --- the model --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [("resnet5", "resnet50"), ("resnt18", "resnet18")])
def test_unknown_model_name_lists_close_matches(name, expected):
    # offline: the transformers Hub lookup fails, so the name is unknown everywhere
    with fails(rf"unknown model '{name}'.*Close matches: [^.]*\b{expected}\b", ModelNotFoundError,
               "not a timm architecture", "Offline?", "pass its folder"):
        adapt(name, testing.toy_images(2), **FAST)


def test_model_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with fails(r"has no config\.json", ModelNotFoundError, str(tmp_path.resolve()), "save_pretrained"):
        adapt(str(tmp_path), texts(), **FAST)


def test_local_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope"
    with fails(r"no such folder", ModelNotFoundError, str(missing)):
        adapt(f"local-dir:{missing}", texts(), **FAST)


def test_text_data_on_an_image_backbone(tiny_models):
    with fails(r"is an image model but the data holds text inputs", DataError, tiny_models["cnn"], "Pick a text backbone"):
        adapt(tiny_models["cnn"], texts(), **FAST)


def test_image_data_on_a_text_backbone(tiny_models):
    with fails(r"is a text model but the data holds image inputs", DataError, "image backbone"):
        adapt(tiny_models["bert"], testing.toy_images(2), **FAST)


def test_predict_with_the_wrong_modality(adapted_bert):
    image = testing.toy_images(1)[0][0]
    with fails(r"this model takes text inputs, got image", DataError):
        adapted_bert.predict(image)


# --- the dataset -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["dict", "dataset"])
def test_no_label_column_lists_columns_and_suggests(tiny_models, form):
    table = columns(texts(), label="lable")
    data = table if form == "dict" else datasets.Dataset.from_dict(table)
    with fails(r"no label column found; the columns are \['text', 'lable'\]\. Did you mean 'lable'\?", DataError,
               "label_column="):
        adapt(tiny_models["bert"], data, **FAST)


def test_label_and_input_column_overrides_that_do_not_exist(tiny_models):
    data = columns(texts())
    with fails(r"label column 'lables' not found; the columns are \['text', 'label'\]\. Did you mean 'label'\?", DataError):
        adapt(tiny_models["bert"], data, label_column="lables", **FAST)
    with fails(r"input column 'txt' not found; the columns are \['text'\]\. Did you mean 'text'\?", DataError):
        adapt(tiny_models["bert"], data, input_column="txt", **FAST)


def test_dict_columns_of_different_lengths(tiny_models):
    data = {"text": ["good great", "bad awful", "good love"], "label": ["positive", "negative"]}
    # must not silently drop the unlabelled third text: name the columns and their lengths
    with fails(r"(?s)(?=.*'text')(?=.*'label')(?=.*\b3\b)(?=.*\b2\b)", DataError):
        adapt(tiny_models["bert"], data, **FAST)


@pytest.mark.parametrize("as_eval", [False, True], ids=["train", "eval_dataset"])
def test_dataset_dict_where_a_split_is_expected(tiny_models, as_eval):
    split = datasets.Dataset.from_dict(columns(texts()))
    whole = datasets.DatasetDict({"train": split, "test": split})
    with fails(r"got a DatasetDict with splits \['train', 'test'\]; pass one split\. Did you mean dataset\['train'\]\?",
               DataError):
        if as_eval:
            adapt(tiny_models["bert"], split, eval_dataset=whole, **FAST)
        else:
            adapt(tiny_models["bert"], whole, **FAST)


@pytest.mark.parametrize("task", ["single_label", "multi_label"])
def test_fewer_than_two_classes(tiny_models, task):
    rows = [(t, ["positive"] if task == "multi_label" else "positive") for t, _ in texts()]
    with fails(r"need at least 2 classes to train a classifier, found 1 \(\['positive'\]\)", DataError,
               "add examples of the other classes"):
        adapt(tiny_models["bert"], rows, **FAST)


def _empty_csv(tmp_path: Path) -> str:
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    return str(path)


def _empty_jsonl(tmp_path: Path) -> str:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    return str(path)


@pytest.mark.parametrize("make", [
    lambda tmp: [],
    lambda tmp: datasets.Dataset.from_dict({"text": [], "label": []}),
    lambda tmp: {"text": [], "label": []},
    _empty_csv,
    _empty_jsonl,
], ids=["list", "Dataset", "dict", "csv-header-only", "jsonl"])
def test_empty_dataset(tiny_models, tmp_path, make):
    data = make(tmp_path)
    with fails(r"the dataset is empty", DataError, *([data] if isinstance(data, str) else [])):
        adapt(tiny_models["bert"], data, **FAST)


def test_nonexistent_dataset_path(tiny_models, tmp_path):
    missing = tmp_path / "no" / "train.csv"
    with fails(rf"dataset path {re.escape(repr(str(missing)))} does not exist", DataError):
        adapt(tiny_models["bert"], str(missing), **FAST)


def test_unsupported_dataset_file(tiny_models, tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("good great,positive\n")
    with fails(r"cannot read .*train\.txt.*a \.csv or a \.jsonl file", DataError):
        adapt(tiny_models["bert"], str(path), **FAST)


def test_list_that_is_not_pairs(tiny_models):
    with fails(r"a list dataset must hold \(input, label\) pairs; the first item is a str", DataError,
               "[(input, label), ...]"):
        adapt(tiny_models["bert"], ["good great", "bad awful"], **FAST)


@pytest.mark.parametrize("task", [None, "single_label"])
def test_labels_mixing_lists_and_single_values(tiny_models, task):
    rows = [("good great", "positive"), ("bad awful", ["negative"]), ("good love", "positive"), ("bad sad", "negative")]
    with fails(r"some labels are lists and some are not", DataError, "multi-label"):
        adapt(tiny_models["bert"], rows, task=task, **FAST)


@pytest.mark.parametrize("labels", [("positive", "negative"), (1, 0)], ids=["str", "int"])
def test_multi_label_task_on_single_labels(tiny_models, labels):
    rows = [(t, labels[0] if y == "positive" else labels[1]) for t, y in texts()]
    with fails(r"multi-label data needs a list of labels per example; example 0 has", DataError):
        adapt(tiny_models["bert"], rows, task="multi_label", **FAST)


def test_eval_label_the_training_set_never_had(tiny_models):
    held_out = [("good great", "positive"), ("purple prose", "purple")]
    with fails(r"the eval set has label 'purple', which the training set never had", DataError,
               "['negative', 'positive']", "Remove those examples"):
        adapt(tiny_models["bert"], texts(), eval_dataset=held_out, **FAST)


# --- images that cannot be read --------------------------------------------------------------------
def _image_folder_with_broken_file(root: Path) -> Path:
    for i, (img, colour) in enumerate(testing.toy_images(3, size=16)):
        (root / colour).mkdir(parents=True, exist_ok=True)
        img.save(root / colour / f"{i}.png")
    broken = root / "red" / "broken.png"
    broken.write_bytes(b"this is not a png")
    return broken


def test_undecodable_image_in_a_folder(tiny_models, tmp_path):
    broken = _image_folder_with_broken_file(tmp_path / "imgs")
    with fails(r"cannot decode image file", DataError, str(broken), "re-save it as PNG/JPEG"):
        adapt(tiny_models["cnn"], str(tmp_path / "imgs"), **FAST)


def test_undecodable_image_path_in_a_list(tiny_models, tmp_path):
    broken = _image_folder_with_broken_file(tmp_path / "imgs")
    rows = [(str(p), p.parent.name) for p in sorted((tmp_path / "imgs").rglob("*.png"))]
    assert (str(broken), "red") in rows
    with fails(r"cannot decode image file", DataError, str(broken)):
        adapt(tiny_models["cnn"], rows, **FAST)


def test_missing_image_file(tiny_models, tmp_path):
    rows = [(str(tmp_path / f"gone{i}.png"), "red" if i % 2 else "blue") for i in range(6)]
    with fails(rf"image file not found: '{re.escape(str(tmp_path))}/gone\d\.png'\. Check the path", DataError):
        adapt(tiny_models["cnn"], rows, **FAST)


# --- strategy and options --------------------------------------------------------------------------
def test_unknown_strategy_name_suggests():
    with fails(r"unknown strategy 'lorra'; choose one of \[.*'lora'.*\]\. Did you mean 'lora'\?", StrategyError):
        adapt("never-loaded", texts(), strategy="lorra", **FAST)  # checked before anything is read or loaded


def test_unknown_adapt_option_suggests():
    with fails(r"adapt\(\) got unknown option 'epoch'\. Did you mean 'epochs'\?", ConfigError, "'early_stopping_patience'"):
        adapt("never-loaded", texts(), epoch=3)


def test_unknown_task_suggests(tiny_models):
    with fails(r"task must be one of .*got 'multi-lable'.*Did you mean 'multi_label'\?", ConfigError):
        adapt(tiny_models["bert"], texts(), task="multi-lable", **FAST)


def test_out_of_range_training_option():
    with fails(r"epochs must be None or an integer >= 1, got 0", ConfigError):
        adapt("never-loaded", texts(), epochs=0)


def test_lora_target_modules_that_match_nothing(tiny_models):
    with fails(r"LoRA found no target layers .*target_modules=\['nonexistent'\]", StrategyError,
               "Linear", "other target_modules"):
        adapt(tiny_models["bert"], texts(), strategy=LoRA(target_modules=["nonexistent"]), **FAST)


def test_lora_on_groups_without_linear_or_conv_layers(tiny_models):
    # GPT-2's top group is its final LayerNorm (ln_f): nothing LoRA can adapt
    with fails(r"LoRA found no target layers in groups \['final'\].*LayerNorm", StrategyError,
               "groups='all'", "strategy='freeze'"):
        adapt(tiny_models["gpt2"], texts(), strategy=LoRA(groups=1), **FAST)


def test_lora_bad_options():
    with fails(r"LoRA rank must be an integer >= 1, got 0", StrategyError):
        LoRA(rank=0)
    with fails(r"LoRA groups must be one of \('all', 'upper', 'lower'\) or an int, got 'middle'", StrategyError):
        LoRA(groups="middle")


# --- save and load ---------------------------------------------------------------------------------
def test_load_a_folder_that_is_not_a_transferkit_folder(tiny_models, tmp_path):
    with fails(r"is not a transferkit model folder \(no transferkit\.json\)\. It looks like a plain model folder: "
               r"adapt\(\) it instead", TransferkitError, tiny_models["bert"]):
        load(tiny_models["bert"])
    with fails(r"is not a transferkit model folder \(no transferkit\.json\)\.$", TransferkitError, str(tmp_path)):
        load(tmp_path)


# Destinations (user folders, files, the working directory, ...) are tested in test_safety.py.


@pytest.mark.parametrize("option, value", [("learning_rate", "1e-3"), ("epochs", True), ("num_workers", -1),
                                           ("max_length", 1.5), ("feature_cache", "yes")])
def test_training_options_are_type_checked(option, value, tiny_models):
    with pytest.raises(ConfigError, match=option):
        adapt(tiny_models["bert"], testing.toy_texts(4), **{option: value})


def test_load_of_a_corrupted_config_is_a_clear_error(tiny_models, tmp_path):
    result = adapt(tiny_models["bert"], testing.toy_texts(4), epochs=1, progress_bar=False)
    result.save(tmp_path / "m")
    (tmp_path / "m" / "transferkit.json").write_text("{not json")
    with pytest.raises(TransferkitError, match="cannot be read"):
        load(tmp_path / "m")
    result.save(tmp_path / "n")
    (tmp_path / "n" / "model.safetensors").unlink()
    with pytest.raises(TransferkitError, match="Is the folder complete"):
        load(tmp_path / "n")


def test_compare_with_pretrained_false_is_refused(tiny_models):
    with pytest.raises(ConfigError, match="drop pretrained=False"):
        adapt(tiny_models["bert"], testing.toy_texts(6), compare=True, pretrained=False, epochs=1)
