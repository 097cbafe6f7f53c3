"""Saved folders for sharing: the model card, plain-library loading, and LoRA kept as a peft adapter.

Properties, for every family and task: the card's YAML parses, names the library, task, strategy
and family, carries the held-out metrics exactly as ``evaluate`` returned them, and holds no local
path; the body has every section; a folder saved with ``merge_lora=False`` loads with
``PeftModel.from_pretrained`` and with ``transferkit.load`` to the same outputs as the trained model;
an encoder folder runs in ``pipeline("text-classification", trust_remote_code=True)`` unchanged.
"""
import json

import numpy as np
import pytest
import torch
import yaml

from conftest import toy_data
from transferkit import TransferkitError, adapt, load
from transferkit.evidence import CompareConfig
from transferkit.hub.card import render

TRAIN = dict(epochs=2, batch_size=8, seed=0, progress_bar=False)
SECTIONS = ["## How it was adapted", "## Data", "## Evaluation", "## How to use", "## Intended use and limitations",
            "## Environment"]
TEXTS = ["good great wonderful match", "awful terrible sad pizza", "the band was very good"]


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    cache = {}

    def get(kind, task="single_label", strategy="lora"):
        key = (kind, task, strategy)
        if key not in cache:
            result = adapt(tiny_models[kind], toy_data(kind, task, 8), strategy=strategy, task=task, **TRAIN)
            metrics = result.evaluate(toy_data(kind, task, 4, seed=1), name="toy test set")
            folder = result.save(tmp_path_factory.mktemp("card") / "-".join(key), license="apache-2.0",
                                 datasets="me/toy")
            cache[key] = (result, metrics, folder)
        return cache[key]

    return get


@pytest.mark.parametrize("kind,task", [("cnn", "single_label"), ("vit", "multi_label"), ("bert", "single_label"),
                                       ("bert", "multi_label"), ("gpt2", "single_label")])
def test_card_metadata_and_body(kind, task, trained, tiny_models):
    result, metrics, folder = trained(kind, task)
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "transferkit"
    assert meta["pipeline_tag"] == ("image-classification" if kind in ("cnn", "vit") else "text-classification")
    assert {"transferkit", "lora", result.config.family} <= set(meta["tags"])
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["me/toy"]
    assert "base_model" not in meta  # a local folder is never named as a base model
    reported = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert reported == {k: round(v, 4) for k, v in metrics.items() if k != "loss"}
    assert all(section in card for section in SECTIONS)
    for label in result.labels:
        assert f"`{label}`" in card  # per-class rows and class counts
    assert str(folder.parent) not in card and tiny_models[kind] not in card and "/tmp" not in card


def test_card_is_the_same_from_the_folder_and_from_the_object(trained):
    result, _, folder = trained("cnn")
    record = json.loads((folder / "transferkit.json").read_text())
    assert str(render(record)) == (folder / "README.md").read_text()
    assert str(render(result.record(license="apache-2.0", datasets="me/toy"))) == str(render(record))


def test_card_names_a_hub_base_model_and_never_a_path(trained):
    result, _, _ = trained("bert")
    record = result.record()
    record["model"], record["resolved"] = "packaged:all-MiniLM-L6-v2", dict(record["resolved"], base_model=None)
    assert front_matter(str(render(record)))["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    record["model"] = "/home/someone/models/my-bert"
    card = str(render(record))
    assert "base_model" not in front_matter(card) and "/home/someone" not in card and "`my-bert`" in card


def test_card_without_a_test_set_says_the_scores_are_validation_scores(tiny_models, tmp_path):
    result = adapt(tiny_models["cnn"], toy_data("cnn", "single_label", 8), strategy="freeze",
                   eval_dataset=toy_data("cnn", "single_label", 10, seed=3), **TRAIN)
    card = (result.save(tmp_path / "m") / "README.md").read_text()
    meta = front_matter(card)
    assert meta["model-index"][0]["results"][0]["dataset"]["split"] == "validation"
    assert "not from an independent test set" in card


def test_card_reports_the_comparison_with_its_plots(tiny_models, tmp_path):
    result = adapt(tiny_models["bert"], toy_data("bert", "single_label", 8), compare=CompareConfig(seeds=1),
                   strategy="linear-probe", **TRAIN)
    folder = result.save(tmp_path / "m")
    card = (folder / "README.md").read_text()
    assert result.comparison.verdict in card and "## Transfer compared" in card
    for image in ("learning_curve.png", "training_curves.png"):
        assert (folder / image).read_bytes()[:4] == b"\x89PNG" and f"]({image})" in card
    record = json.loads((folder / "transferkit.json").read_text())
    assert load(folder).record()["comparison"] == record["comparison"]  # a loaded model keeps it for its card


@pytest.mark.parametrize("kind", ["cnn", "gpt2", "bert"])
def test_unmerged_lora_is_a_peft_adapter_that_loads_back(kind, trained, tiny_models, tmp_path):
    result, _, _ = trained(kind)
    folder = result.save(tmp_path / "adapter", merge_lora=False)
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    assert json.loads((folder / "transferkit.json").read_text())["saved_as"] == "peft-adapter"
    inputs = toy_data(kind, "single_label", 3, seed=2)
    inputs = [x for x, _ in inputs]
    loaded = load(folder)
    np.testing.assert_allclose(loaded.predict_proba(inputs), result.predict_proba(inputs), atol=1e-5)
    again = loaded.save(tmp_path / "again", merge_lora=False)  # a loaded adapter saves as the same adapter
    from safetensors.torch import load_file

    first, second = load_file(folder / "adapter_model.safetensors"), load_file(again / "adapter_model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    if kind == "bert":
        return  # the base of an encoder adapter is transferkit's pooled classifier; plain peft is checked on the others
    from peft import PeftModel

    base = _plain_base(kind, tiny_models[kind], len(result.labels))
    peft_model = PeftModel.from_pretrained(base, str(folder)).eval()
    batch = _batch(result, inputs)
    with torch.no_grad():
        theirs = peft_model(batch["pixel_values"]) if kind == "cnn" else peft_model(**batch).logits
        ours = result.backbone.logits(batch)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)


def _plain_base(kind, source, n_labels):
    if kind == "cnn":
        import timm

        return timm.create_model(f"local-dir:{source}", pretrained=True, num_classes=n_labels)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = AutoModelForSequenceClassification.from_pretrained(source, num_labels=n_labels)
    base.config.pad_token_id = AutoTokenizer.from_pretrained(source).eos_token_id
    return base


def _batch(result, inputs):
    from transferkit.data import ExampleDataset, make_loader

    loader = make_loader(ExampleDataset(inputs, None, result.backbone.modality), result.backbone.preprocess,
                         result._task, batch_size=len(inputs), training=False)
    batch = next(iter(loader))
    result.model.eval()
    return {k: v for k, v in batch.items() if k != "labels"}


def test_encoder_folder_runs_in_the_transformers_pipeline(trained):
    from transformers import pipeline

    result, _, folder = trained("bert")
    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True, top_k=None)
    theirs = np.array([[s["score"] for s in sorted(row, key=lambda s: result.labels.index(s["label"]))]
                       for row in classify(TEXTS)])
    np.testing.assert_allclose(theirs, result.predict_proba(TEXTS), atol=1e-5)


def test_merge_lora_false_needs_a_lora_model(trained, tmp_path):
    result, _, _ = trained("cnn", strategy="freeze")
    with pytest.raises(TransferkitError, match="merge_lora=False keeps a LoRA adapter.*'freeze'"):
        result.save(tmp_path / "x", merge_lora=False)
    with pytest.raises(TransferkitError, match="merge_lora must be True or False"):
        result.save(tmp_path / "x", merge_lora="no")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("datasets", ["/data/vehicles", "./vehicles", "a/b/c", "bad name"])
def test_datasets_must_be_hub_ids(trained, datasets, tmp_path):
    result, _, _ = trained("cnn")
    with pytest.raises(TransferkitError, match="Hub dataset ids"):
        result.save(tmp_path / "x", datasets=datasets)
    assert not (tmp_path / "x").exists()


def test_test_dataset_is_scored_after_training_and_reported(tiny_models, tmp_path):
    test = toy_data("bert", "single_label", 4, seed=1)
    result = adapt(tiny_models["bert"], toy_data("bert", "single_label", 8), strategy="linear-probe",
                   test_dataset=test, output_dir=tmp_path / "m", **TRAIN)
    assert result.evaluations[-1]["name"] == "the test set given to adapt()"
    assert result.evaluations[-1]["metrics"] == result.evaluate(test)
    meta = front_matter((tmp_path / "m" / "README.md").read_text())
    assert meta["model-index"][0]["results"][0]["dataset"]["name"] == "the test set given to adapt()"


def test_card_names_a_packaged_or_odd_source_with_a_valid_repository_name(trained):
    from transferkit.hub.card import default_name

    result, _, _ = trained("cnn")
    record = result.record()
    record["model"] = "packaged:efficientnet_lite0"
    card = str(render(record))
    assert "# efficientnet_lite0-transferkit" in card and "your-name/efficientnet_lite0-transferkit" in card
    assert default_name("hf-hub:timm/resnet18.a1_in1k") == "resnet18.a1_in1k-transferkit"
    assert default_name("/home/x/my model/") == "my-model-transferkit"


@pytest.mark.parametrize("license", ["Apache 2.0", "MIT", "apache 2", ""])
def test_license_must_be_a_hub_id(trained, license, tmp_path):
    result, _, _ = trained("cnn")
    with pytest.raises(TransferkitError, match="licence id such as 'apache-2.0'"):
        result.save(tmp_path / "x", license=license)
    assert not (tmp_path / "x").exists()
