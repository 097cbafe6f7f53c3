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
from transferkit.evidence.verdict import TIE_MARGIN, paired, verdict

QUICK = dict(epochs=2, batch_size=8, progress_bar=False)


def _row(arm, kind, scores, seconds=1.0, params=100):
    """A summary row from per-seed scores (seeds 0, 1, ...), as Comparison.summary() builds it."""
    scores = [float(s) for s in scores]
    sd = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
    mean = float(np.mean(scores))
    return ArmSummary(arm, kind, mean, sd, mean, sd, seconds, params, len(scores), dict(enumerate(scores)))


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
    # the pick is the best, or as good as it seed by seed and faster to train
    assert picked is best or (paired(picked, best).as_good() and picked.seconds <= best.seconds)
    assert "paired over 3 seeds:" in verdict_text and "vs best, paired" in table
    data = json.loads(json.dumps(image_comparison.comparison.to_dict(), default=float))
    assert all(len(s["scores"]) == 3 for s in data["summary"]), "per-seed scores in results.json"
    assert {p["b"] for p in data["paired"]} >= {best.arm} and all(len(p["differences"]) == 3 for p in data["paired"])


def test_compare_with_test_dataset_and_multi_label(tiny_models):
    train = toy_data("bert", "multi_label", n_per_class=8)
    test = toy_data("bert", "multi_label", n_per_class=4, seed=1)
    result = adapt(tiny_models["bert"], train, compare=CompareConfig(seeds=2), test_dataset=test, **QUICK)
    c = result.comparison
    assert c.metric == "f1_micro" and c.n_test == len(test) and c.seeds == [0, 1]
    assert [a["kind"] for a in c.arms] == ["transfer", "scratch", "classic"]


def test_compare_config_is_validated():
    with pytest.raises(ConfigError, match=r"seeds must be None .*an integer >= 1, got 0"):
        CompareConfig(seeds=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        CompareConfig(test_fraction=1.5)
    assert CompareConfig().n_seeds(10) == 3 and CompareConfig().n_seeds(500) == 1


def test_compare_needs_two_examples_per_class(tiny_models):
    data = toy_data("cnn", "single_label", n_per_class=3) + [(toy_data("cnn", "single_label", 1)[0][0], "purple")]
    with pytest.raises(DataError, match="at least 2 examples of every class"):
        adapt(tiny_models["cnn"], data, compare=True, **QUICK)


TRANSFER, SCRATCH, TFIDF, HOG = ("transfer (linear-probe)", "same network from scratch", "TF-IDF + logistic regression",
                                 "HOG features + logistic regression")


@pytest.mark.parametrize("rows, expected", [
    ([_row("transfer (lora)", "transfer", [89, 90, 91]), _row(SCRATCH, "scratch", [38, 40, 42]),
      _row(TFIDF, "classic", [68, 70, 72])],
     ["Use transfer (lora)", "gains 50.0 points (paired over 3 seeds: +50.0 ± 1.0, won 3/3)",
      "Transfer (lora) beats the next best, TF-IDF + logistic regression, by 20.0 points "
      "(paired over 3 seeds: +20.0 ± 1.0, won 3/3)"]),
    ([_row("transfer (lora)", "transfer", [69, 72, 75], seconds=30), _row(SCRATCH, "scratch", [28, 30, 32]),
      _row(HOG, "classic", [71, 68, 71], seconds=0.5)],
     ["Use HOG features + logistic regression", "within the spread of the paired differences",
      "0.5s instead of 30.0s", "paired over 3 seeds: -2.0 ± 3.5, won 1/3", "buys nothing measurable"]),
    ([_row(TRANSFER, "transfer", [73, 74, 75]), _row(SCRATCH, "scratch", [19, 22, 25]),
      _row(HOG, "classic", [88, 89, 90])],
     ["Use HOG features + logistic regression", "Transfer did not win", "15.0 points below",
      "paired over 3 seeds: -15.0 ± 0.0, won 0/3"]),
    ([_row("transfer (full)", "transfer", [49, 50, 51]), _row(SCRATCH, "scratch", [59, 60, 61])],
     ["Use same network from scratch", "did better than transfer", "transfer vs scratch, paired over 3 seeds: -10.0 ± 0.0, won 0/3",
      "pretraining hurt"]),
])
def test_verdict_rules(rows, expected):
    text = verdict(rows, "accuracy")
    for phrase in expected:
        assert phrase in text, text


def test_cheaper_arm_that_loses_every_seed_is_not_recommended():
    # the demo: unpaired means within one sd of each other, TF-IDF faster but with MORE parameters
    transfer = _row(TRANSFER, "transfer", [44, 51, 57.4], seconds=2.4, params=1155)
    tfidf = _row(TFIDF, "classic", [40, 46, 52], seconds=0.01, params=1970)
    assert abs(transfer.mean - tfidf.mean) <= max(transfer.sd, tfidf.sd), "the old unpaired rule called this a tie"
    text = verdict([transfer, _row(SCRATCH, "scratch", [30, 33, 36], seconds=5), tfidf], "accuracy")
    assert text.startswith(f"Use {TRANSFER}:"), text
    assert f"Transfer (linear-probe) beats the next best, {TFIDF}, by 4.8 points (paired over 3 seeds: +4.8 ± 0.7, won 3/3)" in text
    assert "1,970" not in text and "trainable parameters" not in text, "never cite the pick's parameters when more"


def test_arm_losing_every_seed_is_not_a_tie_even_within_the_spread():
    # mean shortfall 2.1 is within the sd of the differences (3.4), but the leader won all three seeds
    rows = [_row(TRANSFER, "transfer", [70, 70, 76], seconds=9), _row(TFIDF, "classic", [69.9, 69.8, 70], seconds=0.1)]
    assert abs(paired(rows[1], rows[0]).mean) <= paired(rows[1], rows[0]).sd
    assert not paired(rows[1], rows[0]).as_good()
    assert verdict(rows, "accuracy").startswith(f"Use {TRANSFER}:")


def test_arm_tied_on_every_seed_and_faster_is_recommended():
    rows = [_row(TRANSFER, "transfer", [60, 70, 80], seconds=20, params=1155),
            _row(TFIDF, "classic", [60, 70, 80], seconds=0.3, params=2129)]
    text = verdict(rows, "accuracy")
    assert text.startswith(f"Use {TFIDF}: it trains in 0.3s instead of 20.0s"), text
    assert f"within {TIE_MARGIN:g} points (paired over 3 seeds: +0.0 ± 0.0, won 0/3, 3 tied)" in text
    assert "2,129" not in text and "trainable parameters" not in text


def test_parameters_are_mentioned_only_when_fewer():
    rows = [_row(TRANSFER, "transfer", [60, 71, 80], seconds=20, params=1155),
            _row(TFIDF, "classic", [61, 70, 80], seconds=0.3, params=500)]
    assert "It also has fewer trainable parameters (500 vs 1,155)." in verdict(rows, "accuracy")


def test_one_seed_verdict_says_there_is_no_spread():
    tie = [_row(TRANSFER, "transfer", [80.0], seconds=3), _row(HOG, "classic", [79.7], seconds=0.2)]
    text = verdict(tie, "accuracy")
    assert text.startswith(f"Use {HOG}:") and "one seed: -0.3, no spread" in text, text
    assert "With one seed the differences carry no spread" in text
    gap = [_row(TRANSFER, "transfer", [80.0], seconds=3), _row(HOG, "classic", [78.0], seconds=0.2)]
    text = verdict(gap, "accuracy")
    assert text.startswith(f"Use {TRANSFER}:") and "by 2.0 points (one seed: +2.0, no spread)" in text, text
    assert "With one seed the differences carry no spread" in text


def test_transfer_losing_is_stated_plainly():
    rows = [_row(TRANSFER, "transfer", [50, 55, 52], seconds=3), _row(SCRATCH, "scratch", [51, 56, 53], seconds=9),
            _row(HOG, "classic", [70, 72, 71], seconds=0.2)]
    text = verdict(rows, "accuracy")
    assert "Transfer did not win on this data: transfer (linear-probe) reached 52.3%, 18.7 points below " \
           f"{HOG} (paired over 3 seeds: -18.7 ± 1.5, won 0/3)." in text, text
    # scratch beat transfer by 1.0 on every seed: the same rule calls that a loss, not a tie
    assert "did better than transfer" in text and "won 0/3" in text


def test_paired_numbers_in_results():
    a, b = _row(TRANSFER, "transfer", [60, 64, 71]), _row(TFIDF, "classic", [55, 60, 62])
    p = paired(a, b)
    from scipy.stats import ttest_rel

    assert p.diffs == {0: 5.0, 1: 4.0, 2: 9.0} and p.wins == 3 and p.n == 3
    assert p.p_value == pytest.approx(ttest_rel([60, 64, 71], [55, 60, 62]).pvalue)
    assert paired(a, _row(TFIDF, "classic", [55])).p_value is None
    with pytest.raises(ValueError, match="share no seed"):
        paired(a, ArmSummary(TFIDF, "classic", 50, 0, 50, 0, 1, 1, 1))


def _hand_made_comparison(seeds=(0, 1, 2)):
    """A Comparison from ArmRun rows, no training: a one-row probe history and a 5-epoch scratch history."""
    from transferkit.evidence.arms import ArmRun
    from transferkit.evidence.compare import Comparison

    arms = [{"name": TRANSFER, "kind": "transfer", "description": "", "strategy": "linear-probe"},
            {"name": SCRATCH, "kind": "scratch", "description": "", "strategy": None},
            {"name": TFIDF, "kind": "classic", "description": "", "strategy": None}]
    runs = []
    for seed in seeds:
        runs += [ArmRun(TRANSFER, seed, 30, {"accuracy": 0.5 + seed / 100, "f1_macro": 0.5}, 2.0, 1155,
                        [{"epoch": 1, "train_loss": 0.7, "seconds": 0.1}]),
                 ArmRun(SCRATCH, seed, 30, {"accuracy": 0.3, "f1_macro": 0.3}, 5.0, 9000,
                        [{"epoch": e, "train_loss": 1.0 / e, "eval_loss": 1.2 / e, "seconds": 1.0} for e in range(1, 6)]),
                 ArmRun(TFIDF, seed, 30, {"accuracy": 0.45, "f1_macro": 0.45}, 0.01, 1970)]
    return Comparison("single_label", "accuracy", arms, runs, 10, 40, list(seeds), env={})


def test_comparison_table_and_json_carry_paired_numbers():
    c = _hand_made_comparison()
    table = c.table(markdown=True)
    assert "| best |" in table and "-6.0 ± 1.0, won 0/3" in table, table
    data = json.loads(json.dumps(c.to_dict(), default=float))
    assert data["summary"][0]["scores"] == {"0": 50.0, "1": 51.0, "2": 52.0}
    tfidf = next(p for p in data["paired"] if p["a"] == TFIDF)
    assert tfidf["b"] == TRANSFER and tfidf["differences"] == pytest.approx([-5, -6, -7]) and not tfidf["as_good"]
    assert any(p["a"] == TRANSFER and p["b"] == SCRATCH for p in data["paired"])
    assert c.verdict.startswith(f"Use {TRANSFER}:") and "won 3/3" in c.verdict


def test_report_draws_one_panel_per_arm_and_one_row_histories(tmp_path):
    from transferkit.evidence.curve import LearningCurve

    curve = LearningCurve([_hand_made_comparison(seeds=(0,))])
    report = write_report(tmp_path, [ReportSection("Hand made", "no training", curve)], "Hand report", "pytest")
    assert report.read_text().count("data:image/png;base64,") == 2
    assert (tmp_path / "hand-made-training-curves.png").stat().st_size > 1000
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sections"][0]["points"][0]["paired"], "paired differences recorded"
    assert "With one seed" in results["sections"][0]["points"][0]["verdict"]


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
