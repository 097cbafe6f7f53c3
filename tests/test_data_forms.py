"""Every data form ``adapt()`` accepts: what it detects (task, labels, columns) and that ``predict`` works after.

Each case trains a tiny model for one epoch; the checks are on what the data layer read, not on accuracy.
A recording ``ExampleDataset`` (the ``seen`` fixture) shows exactly which inputs and encoded targets
reached training and validation.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import datasets  # noqa: E402  (a hard dependency: a broken install must fail, not skip)

import transferkit.api as api  # noqa: E402
from transferkit import adapt, testing  # noqa: E402
from transferkit.data import ExampleDataset  # noqa: E402

FAST = dict(epochs=1, progress_bar=False)
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
TOPIC_ORDER = ["sports", "food", "music"]  # deliberately not sorted: sorted() would give food, music, sports


# --- helpers --------------------------------------------------------------------------------------
def topic_texts(n_per_class: int = 6, seed: int = 0) -> list[tuple[str, str]]:
    """Three separable single-label topics as ``[(text, topic), ...]``."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_per_class * len(TOPIC_ORDER)):
        topic = TOPIC_ORDER[k % len(TOPIC_ORDER)]
        words = list(rng.choice(testing.TOPICS[topic].split(), 3)) + list(rng.choice(testing.FILLER, 2))
        out.append((" ".join(map(str, words)), topic))
    return out


def colour_image(name: str, size: int = 16, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(rng.integers(-20, 20, size=(size, size, 3)) + np.array(COLOURS[name]), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def write_pngs(folder: Path, n_per_class: int = 4) -> list[tuple[Path, str]]:
    """``n_per_class`` PNGs per colour under ``folder/<colour>/``; returns ``[(path, colour), ...]``."""
    out = []
    for name in COLOURS:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            path = folder / name / f"{i}.png"
            colour_image(name, seed=i).save(path)
            out.append((path, name))
    return out


def check_predict(result, inputs, n: int | None = None) -> list:
    """``predict`` gives one well-formed prediction per input (``n`` of them), in the result's label space."""
    preds = result.predict(inputs)
    assert len(preds) == (len(inputs) if n is None else n)
    for p in preds:
        if result.task == "single_label":
            assert p["label"] in result.labels and 0.0 <= p["score"] <= 1.0
        else:
            assert isinstance(p, list) and all(q["label"] in result.labels for q in p)
    return preds


@pytest.fixture
def seen(monkeypatch):
    """Every ExampleDataset adapt() builds, in order: [train, validation (when there is one)]."""
    made: list[ExampleDataset] = []

    class Recording(ExampleDataset):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(api, "ExampleDataset", Recording)
    return made


def targets(ds: ExampleDataset) -> np.ndarray:
    return ds.y[ds.indices]


def classlabel_texts(names=TOPIC_ORDER, n_per_class: int = 6):
    rows = topic_texts(n_per_class)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict(
        {"text": [t for t, _ in rows], "label": [list(names).index(y) for _, y in rows]}, features=features)


# --- datasets.Dataset -----------------------------------------------------------------------------
def test_dataset_classlabel_names_kept_in_their_order(tiny_models, seen):
    ds = classlabel_texts()
    result = adapt(tiny_models["bert"], ds, validation_fraction=0.0, **FAST)

    assert result.task == "single_label"
    assert result.labels == TOPIC_ORDER  # ClassLabel order, not sorted()
    assert (result.config.input_column, result.config.label_column) == ("text", "label")
    np.testing.assert_array_equal(targets(seen[0]), np.asarray(ds["label"]))  # id i still means names[i]
    assert result.model.config.id2label == dict(enumerate(TOPIC_ORDER))
    check_predict(result, ["goal match team", "pizza pasta salad"])


def test_dataset_with_image_feature_column(tiny_models):
    rows = [(colour_image(name, seed=i), name) for i in range(4) for name in COLOURS]
    names = list(COLOURS)
    features = datasets.Features({"pixels": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"pixels": [im for im, _ in rows], "label": [names.index(y) for _, y in rows]},
                                    features=features)
    result = adapt(tiny_models["cnn"], ds, **FAST)

    assert result.task == "single_label"
    assert result.labels == names
    assert result.config.modality == "image"
    assert result.config.input_column == "pixels"  # found by its Image() type, not its name
    check_predict(result, [im for im, _ in rows[:3]])
    check_predict(result, ds)


@pytest.mark.parametrize("typed", [False, True], ids=["string-lists", "classlabel-lists"])
def test_dataset_with_multi_label_list_column(tiny_models, typed):
    rows = testing.toy_texts(6, multi_label=True)
    names = ["sports", "music", "food"]  # unsorted on purpose
    if typed:
        features = datasets.Features({"text": datasets.Value("string"),
                                      "labels": datasets.Sequence(datasets.ClassLabel(names=names))})
        ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "labels": [[names.index(v) for v in y] for _, y in rows]},
                                        features=features)
    else:
        ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "labels": [list(y) for _, y in rows]})
    result = adapt(tiny_models["bert"], ds, **FAST)

    assert result.task == "multi_label"
    assert result.labels == (names if typed else sorted(names))
    assert result.threshold is not None and 0 < result.threshold < 1
    check_predict(result, ["goal match pizza", "guitar song"])


def test_dataframe_of_columns(tiny_models):
    pd = pytest.importorskip("pandas")
    rows = topic_texts()
    frame = pd.DataFrame({"comment": [t for t, _ in rows], "category": [y for _, y in rows]})
    result = adapt(tiny_models["bert"], frame, **FAST)

    assert (result.config.input_column, result.config.label_column) == ("comment", "category")
    assert result.labels == sorted(TOPIC_ORDER)
    check_predict(result, ["goal match"])


# --- files ----------------------------------------------------------------------------------------
def test_image_folder_one_subfolder_per_class(tiny_models, tmp_path, seen):
    root = tmp_path / "flowers"
    files = write_pngs(root)
    result = adapt(tiny_models["cnn"], str(root), **FAST)

    assert result.task == "single_label"
    assert result.labels == sorted(COLOURS)
    assert result.config.modality == "image"
    assert sorted(seen[0].inputs) == sorted(str(p) for p, _ in files)
    check_predict(result, str(root), n=len(files))  # a folder to predict on
    check_predict(result, [str(files[0][0])])
    assert len(result.predict(str(files[0][0]))) == 1  # one path: one image, not a dataset


def test_csv_with_text_column(tiny_models, tmp_path):
    rows = topic_texts()
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "category"])
        writer.writerows([(i, t, y) for i, (t, y) in enumerate(rows)])
    result = adapt(tiny_models["bert"], str(path), **FAST)

    assert result.task == "single_label"
    assert (result.config.input_column, result.config.label_column) == ("review", "category")
    assert result.labels == sorted(TOPIC_ORDER)
    check_predict(result, ["goal match", "bread cheese"])
    check_predict(result, path, n=len(rows))  # the labelled file itself, as a Path


def test_jsonl_with_text_column(tiny_models, tmp_path):
    rows = testing.toy_texts(6)
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"n": i, "sentence": t, "sentiment": y}) for i, (t, y) in enumerate(rows)) + "\n")
    result = adapt(tiny_models["gpt2"], path, **FAST)

    assert result.task == "single_label"
    assert (result.config.input_column, result.config.label_column) == ("sentence", "sentiment")
    assert result.labels == ["negative", "positive"]
    check_predict(result, ["good great", "bad awful"])


def test_csv_with_relative_image_paths_resolved_from_its_folder(tiny_models, tmp_path, monkeypatch, seen):
    data = tmp_path / "data"
    files = write_pngs(data / "imgs")
    path = data / "train.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows([(p.relative_to(data).as_posix(), y) for p, y in files])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the paths must resolve from the CSV's folder, not from the working directory
    result = adapt(tiny_models["cnn"], str(path), **FAST)

    assert result.config.modality == "image"
    assert result.config.input_column == "filename"
    assert result.labels == sorted(COLOURS)
    assert all(Path(p).is_file() and Path(p).is_relative_to(data) for p in seen[0].inputs)
    check_predict(result, [str(files[0][0])])


# --- in-memory lists ------------------------------------------------------------------------------
def test_list_of_pil_images(tiny_models):
    rows = testing.toy_images(5)
    result = adapt(tiny_models["vit"], rows, **FAST)

    assert result.task == "single_label"
    assert result.labels == sorted(COLOURS)
    check_predict(result, [im for im, _ in rows[:4]])
    assert len(result.predict(rows[0][0])) == 1  # a single PIL image


def test_list_of_grayscale_uint8_arrays(tiny_models):
    rng = np.random.default_rng(0)
    rows = [(np.clip(rng.integers(-10, 10, (16, 16)) + level, 0, 255).astype(np.uint8), name)
            for i in range(6) for level, name in ((30, "dark"), (220, "light"))]
    result = adapt(tiny_models["cnn"], rows, **FAST)

    assert result.task == "single_label"
    assert result.labels == ["dark", "light"]
    assert result.config.modality == "image"
    check_predict(result, [x for x, _ in rows[:3]])
    assert len(result.predict(rows[0][0])) == 1  # one HxW array: one image


def test_predict_on_stacked_grayscale_array(tiny_models):
    """An (N, H, W) uint8 array (MNIST-style x_test) is N grayscale images, not one 3-d image."""
    rows = [(np.full((16, 16), level, np.uint8), name) for _ in range(6) for level, name in ((30, "dark"), (220, "light"))]
    result = adapt(tiny_models["cnn"], rows, **FAST)
    stacked = np.stack([x for x, _ in rows[:5]])  # (5, 16, 16)
    check_predict(result, stacked)


def test_list_of_image_paths(tiny_models, tmp_path):
    files = write_pngs(tmp_path / "pics")
    rows = [(str(p), y) for p, y in files]
    result = adapt(tiny_models["cnn"], rows, **FAST)

    assert result.config.modality == "image"
    assert result.labels == sorted(COLOURS)
    check_predict(result, [p for p, _ in rows[:3]])


def test_list_of_strings(tiny_models):
    rows = testing.toy_texts(6)
    result = adapt(tiny_models["bert"], rows, **FAST)

    assert result.task == "single_label"
    assert result.labels == ["negative", "positive"]
    assert result.config.modality == "text"
    check_predict(result, ["good great love", "bad awful"])
    assert len(result.predict("good great")) == 1  # a single string


@pytest.mark.parametrize("as_array", [False, True], ids=["lists", "arrays"])
def test_multi_hot_vector_labels(tiny_models, seen, as_array):
    rows = testing.toy_texts(6, multi_label=True)
    order = sorted(testing.TOPICS)
    vectors = [[int(name in y) for name in order] for _, y in rows]
    data = [(t, np.asarray(v, dtype=np.int64) if as_array else v) for (t, _), v in zip(rows, vectors)]
    result = adapt(tiny_models["bert"], data, validation_fraction=0.0, **FAST)

    assert result.task == "multi_label"
    assert result.labels == ["0", "1", "2"]  # positions of the vector
    np.testing.assert_array_equal(targets(seen[0]), np.asarray(vectors, dtype=np.float32))
    check_predict(result, ["goal match", "pizza song"])


# --- tables and overrides -------------------------------------------------------------------------
def test_dict_of_columns(tiny_models):
    rows = topic_texts()
    result = adapt(tiny_models["bert"], {"sentence": [t for t, _ in rows], "label": [y for _, y in rows]}, **FAST)

    assert (result.config.input_column, result.config.label_column) == ("sentence", "label")
    assert result.labels == sorted(TOPIC_ORDER)
    check_predict(result, ["goal match", "guitar drums"])


def test_predict_on_an_unlabelled_table(tiny_models):
    """Trained on {'text', 'label'} columns; predicting on the same columns minus the label must work."""
    rows = topic_texts()
    result = adapt(tiny_models["bert"], {"text": [t for t, _ in rows], "label": [y for _, y in rows]}, **FAST)
    check_predict(result, {"text": ["goal match", "guitar drums"]}, n=2)
    check_predict(result, datasets.Dataset.from_dict({"text": ["goal match", "guitar drums"]}))


@pytest.mark.parametrize("form", ["dict", "dataset"])
def test_label_and_input_column_overrides(tiny_models, seen, form):
    rows = topic_texts()
    table = {
        "title": [t for t, _ in rows],  # the override picks this ...
        "body": ["good great"] * len(rows),  # ... over the column that auto-detection would take
        "topic": [y for _, y in rows],
        "sentiment": ["positive", "negative"] * (len(rows) // 2),
    }
    data = table if form == "dict" else datasets.Dataset.from_dict(table)
    result = adapt(tiny_models["bert"], data, label_column="topic", input_column="title", validation_fraction=0.0, **FAST)

    assert (result.config.input_column, result.config.label_column) == ("title", "topic")
    assert result.labels == sorted(TOPIC_ORDER)
    assert list(seen[0].inputs) == table["title"]
    check_predict(result, {"title": ["goal match"], "topic": ["sports"]} if form == "dict" else ["goal match"], n=1)


# --- validation -----------------------------------------------------------------------------------
def test_stratified_validation_split_carved_when_none_given(tiny_models, seen):
    # imbalanced: a plain random split could miss a class; the smallest still leaves 10 for validation
    counts = {"common": 90, "rare": 70, "scarce": 67}
    rows = [(f"{name} {i}", name) for name, n in counts.items() for i in range(n)]
    result = adapt(tiny_models["bert"], rows, validation_fraction=0.15, strategy="freeze", **FAST)

    resolved = result.config.resolved
    assert resolved["n_validation"] > 0
    assert resolved["n_train"] + resolved["n_validation"] == len(rows)
    train, val = seen[-2:]  # the training loop's two sets (LP-FT's feature pass over the train part comes first)
    assert set(targets(train).tolist()) == set(range(len(counts)))  # every class, even the scarce one, in train
    assert len(val) == resolved["n_validation"]
    assert {train.inputs[i] for i in train.indices}.isdisjoint(val.inputs)  # carved out, not copied
    assert "eval_accuracy" in result.history[-1]


def test_eval_dataset_given_explicitly(tiny_models, seen):
    train, held_out = testing.toy_texts(6, seed=0), testing.toy_texts(3, seed=1)
    result = adapt(tiny_models["bert"], train, eval_dataset=held_out, **FAST)

    assert result.config.resolved["n_validation"] == len(held_out)
    assert result.config.resolved["n_train"] == len(train)  # nothing carved from the training set
    assert list(seen[-1].inputs) == [t for t, _ in held_out]  # the validation set is the last one built
    assert "eval_accuracy" in result.history[-1]
    check_predict(result, [t for t, _ in held_out])


def test_eval_dataset_classlabel_in_another_order(tiny_models, seen):
    """A ClassLabel eval set is read through its own names, whatever order the training labels have."""
    train = topic_texts(6)  # plain string labels -> sorted: food, music, sports
    held_out = classlabel_texts(TOPIC_ORDER, n_per_class=2)  # ids index sports, food, music
    result = adapt(tiny_models["bert"], train, eval_dataset=held_out, **FAST)

    expected = [result.labels.index(TOPIC_ORDER[i]) for i in held_out["label"]]
    np.testing.assert_array_equal(seen[-1].y, expected)  # the validation set is the last one built


# --- preprocessing --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_dynamic_padding_to_each_batchs_longest_text(tiny_models, kind):
    result = adapt(tiny_models[kind], testing.toy_texts(4), max_length=64, **FAST)
    preprocess = result.backbone.preprocess

    short = preprocess(["a"])
    mixed = preprocess(["a", "a b c d"])
    alone = preprocess(["a b c d"])
    assert mixed["input_ids"].shape[1] > short["input_ids"].shape[1]
    assert mixed["input_ids"].shape[1] == alone["input_ids"].shape[1] < 64  # its own longest, not max_length
    assert mixed["attention_mask"][0].sum() == short["attention_mask"][0].sum()  # the short row is padded, not grown
    assert mixed["attention_mask"][1].all()
