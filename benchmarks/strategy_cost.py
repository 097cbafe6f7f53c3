"""What each strategy costs on real pretrained backbones, measured side by side in one run.

    python benchmarks/strategy_cost.py [--n 160] [--repeats 2]

For EfficientNet-Lite0 (96 px digits) and MiniLM (48-token tweets): training throughput of one
epoch per strategy (median of --repeats), trainable parameters, and both as ratios to
linear-probe; plus inference throughput. Also the from-scratch network (same cost as `full`,
different weights). Prints a Markdown table for benchmarks/README.md.
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

from transferkit import adapt  # noqa: E402
from transferkit.assets import load_digits_mnist5k, load_tweets  # noqa: E402

STRATEGIES = ["linear-probe", "freeze", "lora", "full"]


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
    args = parser.parse_args()
    logging.getLogger("transferkit").setLevel(logging.WARNING)
    setups = [("EfficientNet-Lite0 @96px", "packaged:efficientnet_lite0", "image", dict(image_size=96)),
              ("all-MiniLM-L6-v2 @48 tokens", "packaged:all-MiniLM-L6-v2", "text", dict(max_length=48))]
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, n={args.n}, repeats={args.repeats}\n")
    print("| backbone | strategy | train ex/s | vs linear-probe | trainable params | vs linear-probe |")
    print("|---|---|---|---|---|---|")
    for title, model, kind, extra in setups:
        data = _data(kind, args.n)
        base = None
        for strategy in STRATEGIES + ["scratch"]:
            speeds = []
            for _ in range(args.repeats):
                result = adapt(model, data, strategy="full" if strategy == "scratch" else strategy,
                               pretrained=strategy != "scratch", epochs=1, batch_size=16, validation_fraction=0,
                               progress_bar=False, **extra)
                speeds.append(len(data) / result.history[0]["seconds"])
            speed, params = statistics.median(speeds), result.config.resolved["trainable_parameters"]
            base = base or (speed, params)
            print(f"| {title} | {strategy} | {speed:.1f} | {speed / base[0]:.2f}x | {params:,} | {params / base[1]:.0f}x |",
                  flush=True)
        start = time.perf_counter()
        result.predict_proba([x for x, _ in data])
        print(f"| {title} | inference | {len(data) / (time.perf_counter() - start):.1f} | | | |", flush=True)


if __name__ == "__main__":
    main()
