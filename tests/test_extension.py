"""Class extension (adapt(previous, new_data, extend=True)) on tiny models, as a grid of properties.

For every backbone kind and both paths (head only, the default; body trained with LoRA): old rows are
copied bit for bit when the head grows; the label list is the old one then the new in order of first
appearance; predictions range over every class; save -> load gives identical outputs and the plain
library opens the folder with every label name. Then: protection lowers forgetting on a toy task,
memory (class means, exemplars) round-trips and is used, a second extension works, and every refusal
names the problem.
"""
import json

import numpy as np
import pytest
import torch

from transferkit import adapt, load
from transferkit.errors import ConfigError, DataError, ModelNotFoundError, StrategyError
from transferkit.extension import Protection
from transferkit.extension import head as heads
from transferkit.testing import toy_classes

KINDS = ["cnn", "vit", "bert", "gpt2"]
PATHS = ["auto", "lora"]
NAMES = {"image": ["red", "green", "blue", "yellow", "cyan", "magenta"],
         "text": ["sports", "food", "music", "positive", "negative"]}
FAST = dict(batch_size=8, learning_rate=5e-3, progress_bar=False)


def modality(kind):
    return "image" if kind in ("cnn", "vit") else "text"


def data(kind, which, n=12, seed=0):
    names = NAMES[modality(kind)]
    chosen = {"old": names[:3], "new": names[3:], "all": names}[which]
    return toy_classes(chosen, n, modality(kind), seed=seed)


@pytest.fixture(scope="module")
def previous(tiny_models):
    """One trained 3-class model per kind (linear probe; LoRA for the 'lora' previous), shared by the checks."""
    cache = {}

    def get(kind, strategy="linear-probe"):
        if (kind, strategy) not in cache:
            extra = {"epochs": 3} if strategy != "linear-probe" else {}
            cache[kind, strategy] = adapt(tiny_models[kind], data(kind, "old"), strategy=strategy, keep_exemplars=2,
                                          **FAST, **extra)
        return cache[kind, strategy]

    return get


@pytest.fixture(scope="module")
def extended(previous, tmp_path_factory):
    cache = {}

    def get(kind, path):
        if (kind, path) not in cache:
            result = adapt(previous(kind), data(kind, "new", seed=1), extend=True, strategy=path, epochs=2, **FAST)
            folder = tmp_path_factory.mktemp("extended") / f"{kind}-{path}"
            result.save(folder)
            cache[kind, path] = (result, folder)
        return cache[kind, path]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_growing_copies_old_rows_bit_for_bit(kind, previous):
    prev = previous(kind)
    labels = prev.labels + ["extra-1", "extra-2"]
    grown = heads.grow(prev.backbone, labels, len(prev.labels), prev._task)
    old_head, new_head = heads.classifier(prev.backbone), heads.classifier(grown)
    assert new_head.out_features == len(labels)
    assert torch.equal(new_head.weight[:3], old_head.weight)
    if old_head.bias is not None:
        assert torch.equal(new_head.bias[:3], old_head.bias)
    assert heads.classifier(prev.backbone) is old_head and old_head.out_features == 3  # the previous model is untouched


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_extension_grid(kind, path, previous, extended):
    """Labels merged in order, all classes predicted from, save -> load identical."""
    prev = previous(kind)
    result, folder = extended(kind, path)
    new_names = list(dict.fromkeys(y for _, y in data(kind, "new", seed=1)))
    assert result.labels == prev.labels + new_names
    inputs = [x for x, _ in data(kind, "all", n=2, seed=3)]
    probs = result.predict_proba(inputs)
    assert probs.shape == (len(inputs), len(result.labels)) and np.isfinite(probs).all()
    assert {p["label"] for p in result.predict(inputs)} <= set(result.labels)
    record = result.config.resolved["extension"]
    assert record["old_labels"] == prev.labels and record["new_labels"] == new_names
    assert record["head_only"] is (path == "auto" and kind != "gpt2")  # GPT-2's head gives no features to solve on
    if record["head_only"]:  # a frozen body and fixed old rows: old columns are the previous model's logits
        head, old = heads.classifier(result.backbone), heads.classifier(prev.backbone)
        assert torch.equal(head.weight[:3], old.weight)
        among_old = probs[:, :3] / probs[:, :3].sum(1, keepdims=True)  # the softmax over the old columns alone
        np.testing.assert_allclose(among_old, prev.predict_proba(inputs), atol=1e-5)
    back = load(folder)
    assert back.labels == result.labels
    np.testing.assert_allclose(back.predict_proba(inputs), probs, atol=1e-5)


def test_predictions_cover_old_and_new_classes(extended):
    """On the separable colour toy, the extended model predicts every class, old and new, right."""
    result, _ = extended("cnn", "auto")
    test = data("cnn", "all", n=3, seed=11)
    predicted = [p["label"] for p in result.predict([x for x, _ in test])]
    assert set(predicted) == set(result.labels)
    assert predicted == [y for _, y in test]


@pytest.mark.parametrize("kind", KINDS)
def test_plain_library_opens_extended_folder(kind, extended):
    result, folder = extended(kind, "auto")
    if kind in ("cnn", "vit"):
        import timm

        model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        assert model.pretrained_cfg["label_names"] == result.labels
        assert model.get_classifier().out_features == len(result.labels)
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder)
        assert [config.id2label[i] for i in range(len(result.labels))] == result.labels
        assert json.loads((folder / "config.json").read_text())["id2label"]["4"] == result.labels[4]


def test_extending_a_lora_adapted_model(previous, tmp_path):
    """A LoRA-trained (merged) previous model extends like any other; its rows are kept."""
    prev = previous("bert", "lora")
    result = adapt(prev, data("bert", "new", seed=1), extend=True)
    assert torch.equal(heads.classifier(result.backbone).weight[:3], heads.classifier(prev.backbone).weight)
    folder = result.save(tmp_path / "m")
    np.testing.assert_allclose(load(folder).predict_proba(["good pizza"]), result.predict_proba(["good pizza"]),
                               atol=1e-5)


@pytest.mark.parametrize("kind", ["cnn", "bert"])
def test_default_protection_forgets_less_than_none(kind, previous):
    prev = previous(kind)
    test = data(kind, "all", n=6, seed=5)
    forgot = {}
    for name, protection in (("default", Protection()), ("none", Protection.none())):
        result = adapt(prev, data(kind, "new", seed=1), extend=protection)
        forgot[name] = result.evaluate(test)["forgetting"]
    assert forgot["default"] < forgot["none"], forgot


def test_body_training_with_default_protection_forgets_less(previous):
    prev = previous("cnn")
    test = data("cnn", "all", n=6, seed=5)
    forgot = {}
    for name, protection in (("default", Protection()), ("none", Protection.none())):
        result = adapt(prev, data("cnn", "new", seed=1), extend=protection, strategy="full", epochs=4,
                       early_stopping_patience=None, **FAST)
        scores = result.evaluate(test)
        forgot[name] = scores["forgetting"]
        assert set(scores) >= {"accuracy_old_classes", "accuracy_new_classes", "forgetting"}
    assert forgot["default"] < forgot["none"], forgot


def test_evaluate_reports_old_new_and_forgetting(previous, extended):
    result, folder = extended("cnn", "auto")
    test = data("cnn", "all", n=4, seed=7)
    scores = result.evaluate(test)
    before = previous("cnn").evaluate([(x, y) for x, y in test if y in previous("cnn").labels])["accuracy"]
    assert scores["forgetting"] == pytest.approx(before - scores["accuracy_old_classes"])
    assert load(folder).evaluate(test)["forgetting"] == pytest.approx(scores["forgetting"])  # after a reload too


def test_new_data_with_old_and_new_classes_and_a_second_extension(previous):
    prev = previous("cnn")
    mixed = toy_classes(["yellow", "red", "cyan"], 6, seed=1)  # an old class among new ones
    once = adapt(prev, mixed, extend=True)
    assert once.labels == prev.labels + ["yellow", "cyan"]
    twice = adapt(once, toy_classes(["magenta"], 6, seed=2), extend=True)
    assert twice.labels == once.labels + ["magenta"]
    assert torch.equal(heads.classifier(twice.backbone).weight[:5], heads.classifier(once.backbone).weight)
    assert twice.config.resolved["extension"]["round"] == 2
    assert twice.config.resolved["extension"]["old_labels"] == once.labels


def test_memory_round_trips_and_exemplars_are_rehearsed(previous, tmp_path):
    prev = previous("cnn")
    assert sorted(prev.memory.means) == sorted(prev.labels)
    folder = prev.save(tmp_path / "prev")
    assert (folder / "class_means.safetensors").is_file() and (folder / "exemplars" / "exemplars.jsonl").is_file()
    back = load(folder)
    assert back.memory.per_class == 2 and len(back.memory.exemplars) == 6
    np.testing.assert_allclose(back.memory.means["red"], prev.memory.means["red"])
    np.testing.assert_allclose(back.memory.spread.factor, prev.memory.spread.factor)
    assert back.memory.spread.dof == prev.memory.spread.dof == 36 - 3
    again = prev.save(tmp_path / "again")  # the same model saves to the same bytes (a re-push uploads nothing new)
    assert (again / "class_means.safetensors").read_bytes() == (folder / "class_means.safetensors").read_bytes()
    result = adapt(str(folder), data("cnn", "new", seed=1), extend=True, keep_exemplars=2)
    counts = result.config.resolved["extension"]["examples"]
    assert counts["exemplars"] == 6 and counts["pseudo_features"] > 0
    assert sorted(result.memory.describe()["exemplars"]) == sorted(result.labels)  # new classes' exemplars added
    assert result.config.resolved["extension"]["previous"] == str(folder.resolve())


def test_rehearsal_given_by_the_user(previous):
    prev = previous("bert")
    result = adapt(prev, data("bert", "new", seed=1), extend=True, rehearsal=data("bert", "old", n=2, seed=4))
    assert result.config.resolved["extension"]["examples"]["rehearsal"] == 6
    with pytest.raises(DataError, match="rehearsal= holds labels"):
        adapt(prev, data("bert", "new", seed=1), extend=True, rehearsal=[("goal match", "weather")])


def test_compare_shows_four_arms(previous, tiny_models):
    prev = previous("cnn")
    result = adapt(prev, data("cnn", "new", seed=1), extend=True, compare=True, test_dataset=data("cnn", "all", 3, 8),
                   rehearsal=data("cnn", "old", n=2, seed=9))
    arms = {a.name: a.scores for a in result.comparison.arms}
    assert list(arms) == ["replace head", "extend, no protection", "extend, protected", "joint training"]
    assert arms["replace head"]["accuracy_old_classes"] == 0.0
    assert all(s is not None for s in arms.values())
    assert "replace head" in result.comparison.table(markdown=True)
    bare = adapt(tiny_models["cnn"], data("cnn", "old"), strategy="linear-probe", progress_bar=False)  # no exemplars
    without_old = adapt(bare, data("cnn", "new", seed=1), extend=True, compare=True,
                        test_dataset=data("cnn", "all", 3, 8))
    assert without_old.comparison.arms[-1].scores is None and "no old examples" in without_old.comparison.arms[-1].note


def test_errors(previous, tiny_models, tmp_path):
    prev = previous("cnn")
    new = data("cnn", "new", seed=1)
    with pytest.raises(DataError, match="no new class"):
        adapt(prev, data("cnn", "old", seed=1), extend=True)
    with pytest.raises(StrategyError, match="differs from the one the previous model was trained on"):
        adapt(tiny_models["vit"], new, extend=prev)
    with pytest.raises(ModelNotFoundError, match="not one"):
        adapt(tiny_models["cnn"], new, extend=True)
    multi = adapt(tiny_models["cnn"], [(x, [y]) for x, y in data("cnn", "old")], task="multi_label",
                  strategy="linear-probe", progress_bar=False)
    with pytest.raises(StrategyError, match="single-label classifier"):
        adapt(multi, new, extend=True)
    with pytest.raises(DataError, match="one label per example"):
        adapt(prev, [(x, [y]) for x, y in new], extend=True, task="multi_label")
    with pytest.raises(ConfigError, match="needs extend=True"):
        adapt(tiny_models["cnn"], new, rehearsal=new)
    with pytest.raises(ConfigError, match="keep_exemplars"):
        adapt(tiny_models["cnn"], new, keep_exemplars=-1)
    with pytest.raises(ConfigError, match="Protection bias_correction"):
        Protection(bias_correction="sometimes")
    with pytest.raises(StrategyError, match="extend=True supports strategy"):
        adapt(prev, new, extend=True, strategy="contrastive")
    with pytest.raises(ConfigError, match="test_dataset"):
        adapt(prev, new, extend=True, compare=True)
    with pytest.raises(ConfigError, match="does not take tokenizer"):
        adapt(prev, new, extend=True, tokenizer=object())


def test_extending_a_model_pulled_from_the_hub(hub, previous, monkeypatch):
    """``hf-hub:`` ids of a pushed transferkit model extend too; its class means and exemplars travel with it."""
    from hub_server import ALICE

    monkeypatch.setenv("HF_TOKEN", ALICE)
    prev = previous("cnn")
    prev.push_to_hub("alice/colours")
    assert {"class_means.safetensors", "exemplars/exemplars.jsonl"} <= set(hub.files("alice/colours"))
    result = adapt("hf-hub:alice/colours", data("cnn", "new", seed=1), extend=True)
    assert result.labels[:3] == prev.labels and result.config.resolved["extension"]["previous"] == "hf-hub:alice/colours"
    assert result.config.resolved["extension"]["examples"]["exemplars"] == 6
    assert torch.equal(heads.classifier(result.backbone).weight[:3], heads.classifier(prev.backbone).weight)


def test_spread_is_the_pooled_within_class_covariance():
    """Stored spread = the covariance of features around their class mean; pooling two sets of classes = both at once."""
    from transferkit.extension.memory import Spread

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 12)
    x = torch.from_numpy(rng.normal(size=(60, 8)) * np.arange(1, 9) + 3 * y[:, None]).float()
    offsets = x.double() - torch.stack([x[torch.from_numpy(y == c)].double().mean(0) for c in y])
    expected = (offsets.T @ offsets / (60 - 5)).numpy()

    def covariance(spread):
        return spread.factor.astype(np.float64) @ spread.factor.T.astype(np.float64) + spread.residual * np.eye(8)

    np.testing.assert_allclose(covariance(Spread.of(x, y)), expected, rtol=1e-4, atol=1e-4)
    first, second = torch.from_numpy(y < 3), torch.from_numpy(y >= 3)
    pooled = Spread.of(x[first], y[first.numpy()]).pooled(Spread.of(x[second], y[second.numpy()]))
    np.testing.assert_allclose(covariance(pooled), expected, rtol=1e-4, atol=1e-4)
    assert pooled.dof == 55


def test_dropped_exemplars_are_neither_saved_nor_claimed(tiny_models, tmp_path):
    result = adapt(tiny_models["cnn"], data("cnn", "old"), strategy="linear-probe", keep_exemplars=1, progress_bar=False)
    assert "exemplars/" in (result.save(tmp_path / "with") / "README.md").read_text()
    result.memory.exemplars = []
    folder = result.save(tmp_path / "without")
    assert not (folder / "exemplars").exists() and "exemplars/" not in (folder / "README.md").read_text()
    assert json.loads((folder / "transferkit.json").read_text())["resolved"]["memory"]["exemplars"] == {}


def test_compare_with_a_single_new_class(previous):
    """A head replaced by one for a single class predicts it everywhere: the arm is scored without training."""
    prev = previous("cnn")
    result = adapt(prev, toy_classes(["magenta"], 8, seed=1), extend=True, compare=True,
                   test_dataset=toy_classes(["red", "green", "blue", "magenta"], 2, seed=3))
    replace = result.comparison.arms[0]
    assert replace.scores["accuracy_old_classes"] == 0.0 and replace.scores["accuracy_new_classes"] == 1.0
    assert replace.scores["accuracy"] == pytest.approx(0.25) and "one new class" in replace.note
