"""What each strategy costs on real pretrained backbones, measured side by side in one run.

    python benchmarks/strategy_cost.py [--n 160] [--epochs 3] [--repeats 2]

For EfficientNet-Lite0 (96 px digits) and MiniLM (48-token tweets): the wall-clock time of a whole
``adapt()`` call (loading included) for the same number of epochs, median of --repeats, per
strategy, with trainable parameters, both as ratios to the solved linear probe. The linear probe
runs twice: solved on cached features (one forward pass plus an L-BFGS fit with CV) and trained
in the normal loop for the same epochs (``feature_cache=False``): their ratio is the cache's
speed-up. The from-scratch network costs what ``full`` costs. Prints a
Markdown table for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import logging  # noqa: E402

import torch  # noqa: E402

from transferkit import LinearProbe, adapt  # noqa: E402
from transferkit.assets import load_digits_mnist5k, load_tweets  # noqa: E402

# (row name, strategy, extra adapt options)
ROWS = [("linear-probe, solved on cached features", LinearProbe(), {}),
        ("linear-probe, no cache", "linear-probe", {"feature_cache": False}),
        ("freeze (upper half)", "freeze", {}), ("lora (r=8, all groups)", "lora", {}), ("full", "full", {}),
        ("from scratch (full, random init)", "full", {"pretrained": False})]


def _data(kind: str, n: int):
    if kind == "image":
        images, labels = load_digits_mnist5k()
        step = len(images) // n
        return [(images[i], str(labels[i])) for i in range(0, step * n, step)]
    texts, labels = load_tweets()
    step = len(texts) // n
    return [(texts[i], labels[i]) for i in range(0, step * n, step)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("transferkit").setLevel(logging.WARNING)
    setups = [("EfficientNet-Lite0 @96px", "packaged:efficientnet_lite0", "image", dict(image_size=96)),
              ("all-MiniLM-L6-v2 @48 tokens", "packaged:all-MiniLM-L6-v2", "text", dict(max_length=48))]
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.n} examples x {args.epochs} epochs, median of {args.repeats}\n")
    print("| backbone | strategy | adapt() seconds | vs solved linear-probe | trainable params | vs linear-probe |")
    print("|---|---|---|---|---|---|")
    for title, model, kind, extra in setups:
        data = _data(kind, args.n)
        base = None
        for name, strategy, options in ROWS:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = adapt(model, data, strategy=strategy, epochs=args.epochs, batch_size=16, validation_fraction=0,
                               head_init="random", progress_bar=False, **extra, **options)
                times.append(time.perf_counter() - start)
            seconds, params = statistics.median(times), result.config.resolved["trainable_parameters"]
            base = base or (seconds, params)
            print(f"| {title} | {name} | {seconds:.1f} | {seconds / base[0]:.1f}x | {params:,} | {params / base[1]:.0f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
