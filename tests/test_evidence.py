"""compare=True, learning curves, the verdict and the report, on tiny offline models."""
import json

import numpy as np
import pytest

from conftest import toy_data
from transferkit import adapt
from transferkit.errors import ConfigError, DataError
from transferkit.evidence import CompareConfig, learning_curve
from transferkit.evidence.compare import ArmSummary
from transferkit.evidence.curve import draw_per_class
from transferkit.evidence.report import ReportSection, write_report
from transferkit.evidence.verdict import verdict

QUICK = dict(epochs=2, batch_size=8, progress_bar=False)


def _row(arm, kind, mean, sd=0.0, seconds=1.0, params=100):
    return ArmSummary(arm, kind, mean, sd, mean, sd, seconds, params, 3)


@pytest.fixture(scope="module")
def image_comparison(tiny_models):
    return adapt(tiny_models["cnn"], toy_data("cnn", "single_label", n_per_class=10), compare=True, **QUICK)


def test_compare_runs_every_arm_on_every_seed(image_comparison):
    c = image_comparison.comparison
    kinds = [a["kind"] for a in c.arms]
    assert kinds == ["transfer", "scratch", "classic", "classic"]
    assert c.seeds == [0, 1, 2], "small data: at least 3 seeds"
    assert len(c.runs) == len(c.arms) * 3
    for run in c.runs:
        assert 0 <= run.metrics["accuracy"] <= 1 and run.train_seconds >= 0 and run.trainable_parameters > 0
    scratch = [r for r in c.runs if r.arm == "same network from scratch"]
    transfer = [r for r in c.runs if r.arm.startswith("transfer")]
    assert all(r.trainable_parameters > t.trainable_parameters for r, t in zip(scratch, transfer))
    assert image_comparison.config.strategy["name"] == "linear-probe"  # auto at ~8 per class
    # every arm saw the same examples for a seed
    assert len({(r.seed, r.n_train) for r in c.runs}) == 3


def test_comparison_prints_table_then_verdict(image_comparison):
    text = str(image_comparison.comparison)
    table, verdict_text = text.split("\n\nVerdict: ")
    for arm in image_comparison.comparison.arms:
        assert arm["name"] in table
    assert "±" in table and "trainable params" in table and "train time" in table
    assert verdict_text.startswith("Use ")
    summary = image_comparison.comparison.summary()
    best = max(summary, key=lambda s: s.mean)
    picked = next(s for s in summary if verdict_text.startswith(f"Use {s.arm}:"))
    assert picked is best or abs(picked.mean - best.mean) <= max(picked.sd, best.sd)
    json.dumps(image_comparison.comparison.to_dict(), default=float)


def test_compare_with_test_dataset_and_multi_label(tiny_models):
    train = toy_data("bert", "multi_label", n_per_class=8)
    test = toy_data("bert", "multi_label", n_per_class=4, seed=1)
    result = adapt(tiny_models["bert"], train, compare=CompareConfig(seeds=2), test_dataset=test, **QUICK)
    c = result.comparison
    assert c.metric == "f1_micro" and c.n_test == len(test) and c.seeds == [0, 1]
    assert [a["kind"] for a in c.arms] == ["transfer", "scratch", "classic"]


def test_compare_config_is_validated():
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        CompareConfig(seeds=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        CompareConfig(test_fraction=1.5)
    assert CompareConfig().n_seeds(10) == 3 and CompareConfig().n_seeds(500) == 1


def test_compare_needs_two_examples_per_class(tiny_models):
    data = toy_data("cnn", "single_label", n_per_class=3) + [(toy_data("cnn", "single_label", 1)[0][0], "purple")]
    with pytest.raises(DataError, match="at least 2 examples of every class"):
        adapt(tiny_models["cnn"], data, compare=True, **QUICK)


@pytest.mark.parametrize("rows, expected", [
    ([_row("transfer (lora)", "transfer", 90, 1), _row("same network from scratch", "scratch", 40, 2),
      _row("TF-IDF + logistic regression", "classic", 70, 2)], ["Use transfer (lora)", "gains 50.0 points"]),
    ([_row("transfer (lora)", "transfer", 72, 3, seconds=30), _row("same network from scratch", "scratch", 30, 2),
      _row("HOG features + logistic regression", "classic", 70, 2, seconds=0.5)],
     ["Use HOG features + logistic regression", "within the spread", "0.5s instead of 30.0s"]),
    ([_row("transfer (linear-probe)", "transfer", 74, 1), _row("same network from scratch", "scratch", 22, 3),
      _row("HOG features + logistic regression", "classic", 89, 1)],
     ["Use HOG features + logistic regression", "Transfer did not win", "15.0 points below"]),
    ([_row("transfer (full)", "transfer", 50, 1), _row("same network from scratch", "scratch", 60, 1)],
     ["Use same network from scratch", "did better than transfer"]),
])
def test_verdict_rules(rows, expected):
    text = verdict(rows, "accuracy")
    for phrase in expected:
        assert phrase in text, text


def test_draws_are_nested_and_balanced():
    y = np.repeat(np.arange(3), 40)
    pool = np.arange(120)
    small, large = draw_per_class(y, pool, 5, seed=1), draw_per_class(y, pool, 20, seed=1)
    assert set(small) <= set(large)
    assert np.bincount(y[small]).tolist() == [5, 5, 5] and np.bincount(y[large]).tolist() == [20, 20, 20]
    assert set(draw_per_class(y, pool, 5, seed=2)) != set(small)


def test_learning_curve_and_report(tiny_models, tmp_path):
    curve = learning_curve(tiny_models["cnn"], toy_data("cnn", "single_label", n_per_class=14), sizes=(3, 8, 99),
                           compare=CompareConfig(seeds=1, classic=True), **QUICK)
    assert [p.per_class for p in curve.points] == [3, 8], "k=99 exceeds the pool and is skipped"
    text = str(curve)
    assert "k=3" in text and "k=8" in text and text.count("Use ") == 2
    chosen = next(r.result for r in curve.points[-1].runs if r.arm.startswith("transfer"))
    from transferkit.evidence.arms import Split

    data = toy_data("cnn", "single_label", n_per_class=4, seed=5)
    labels = chosen.labels
    split = Split([x for x, _ in data], np.array([labels.index(l) for _, l in data]), labels, "single_label", "image")
    report = write_report(tmp_path, [ReportSection("Toy colours", "tiny model", curve, chosen, split)], "Toy report",
                          "pytest")
    html = report.read_text()
    assert "<table>" in html and "Verdict:" in html and html.count("data:image/png;base64,") == 3
    md = (tmp_path / "report.md").read_text()
    assert "toy-colours-learning-curve.png" in md and "| arm |" in md and "Reproduce: `pytest`" in md
    for png in ("toy-colours-learning-curve.png", "toy-colours-training-curves.png", "toy-colours-confusion.png"):
        assert (tmp_path / png).stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["env"]["versions"]["torch"] and results["sections"][0]["points"][0]["seeds"] == [0]

    # recipes/readme_numbers.py pastes these tables into the README, never retyped
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("readme_numbers", Path(__file__).parents[1] / "recipes" / "readme_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    block = module.render(results)
    summary = results["sections"][0]["points"][1]["summary"]
    assert "| arm | k=3 (1 seed) | k=8 (1 seed) |" in block and "Measured by `pytest`" in block
    assert f"{summary[0]['mean']:.1f}" in block and results["sections"][0]["points"][1]["verdict"] in block
