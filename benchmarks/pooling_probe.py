"""Which pooling a linear probe should read from a plain BERT-family encoder: [CLS]+pooler or mean.

    python benchmarks/pooling_probe.py [--test 1000] [--max-length 128]

Loads the packaged all-MiniLM-L6-v2 as a plain ``BertModel`` (its sentence-transformers files are
ignored, as for a folder that has none), computes for every tweet the pooler output (tanh of a
dense layer on [CLS]: what ``BertForSequenceClassification`` classifies from), the raw [CLS]
vector, and the attention-mask mean of the last hidden states, then fits a logistic regression
(scikit-learn defaults, C=1) on k tweets per class and scores it on the same held-out tweets for
every k and seed. Prints a Markdown table: mean and spread of accuracy and macro-F1 per pooling,
and each pooling's accuracy minus the pooler's on the same training tweets (mean, and on how many
seeds it is higher).
The numbers justify the default pooling in ``transferkit/backbones/pooling.py``.
"""
from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from transferkit.assets import load_tweets, packaged_model_path  # noqa: E402

POOLINGS = ("cls-pooler", "cls-token", "mean", "mean+normalize")


@torch.no_grad()
def features(texts: list[str], max_length: int, batch_size: int = 64) -> dict[str, np.ndarray]:
    from transformers import AutoModel, AutoTokenizer

    folder = str(packaged_model_path("packaged:all-MiniLM-L6-v2"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    out: dict[str, list[torch.Tensor]] = {name: [] for name in POOLINGS}
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        result = model(**batch)
        hidden, mask = result.last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out["cls-pooler"].append(result.pooler_output)
        out["cls-token"].append(hidden[:, 0])
        out["mean"].append(mean)
        out["mean+normalize"].append(torch.nn.functional.normalize(mean, dim=-1))
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def few_per_class(labels: np.ndarray, pool: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(pool[labels[pool] == c], k, replace=False) for c in np.unique(labels)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--sizes", default="10:10,50:5", help="k:seeds pairs")
    parser.add_argument("--standardize", action="store_true", help="scale features to zero mean, unit variance first")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.metrics import accuracy_score, f1_score

    texts, labels = load_tweets()
    labels = np.asarray(labels)
    order = np.random.default_rng(0).permutation(len(texts))
    test, pool = order[:args.test], order[args.test:]
    sizes = [tuple(int(v) for v in pair.split(":")) for pair in args.sizes.split(",")]
    train_sets = {(k, s): few_per_class(labels, pool, k, seed=s) for k, seeds in sizes for s in range(seeds)}
    used = np.unique(np.concatenate([test, *train_sets.values()]))
    feats = features([texts[i] for i in used], args.max_length)
    row = {int(i): r for r, i in enumerate(used)}
    print(f"{platform.system()} {platform.machine()}, torch {torch.__version__}; {len(test)} test tweets, "
          f"max_length {args.max_length}; logistic regression (C=1, lbfgs)"
          f"{' on standardised features' if args.standardize else ''}\n")
    print("| k per class | seeds | pooling | accuracy (mean ± sd) | macro-F1 (mean ± sd) | accuracy vs cls-pooler, "
          "same train sets (mean, wins) |\n|---|---|---|---|---|---|")
    for k, seeds in sizes:
        baseline = None
        for name in POOLINGS:
            x = feats[name]
            accs, f1s = [], []
            for s in range(seeds):
                idx = [row[int(i)] for i in train_sets[(k, s)]]
                clf = LogisticRegression(max_iter=5000)
                clf = (make_pipeline(StandardScaler(), clf) if args.standardize else clf).fit(x[idx], labels[train_sets[(k, s)]])
                pred = clf.predict(x[[row[int(i)] for i in test]])
                accs.append(accuracy_score(labels[test], pred))
                f1s.append(f1_score(labels[test], pred, average="macro"))
            baseline = np.asarray(accs) if baseline is None else baseline
            diff = 100 * (np.asarray(accs) - baseline)
            paired = "" if name == POOLINGS[0] else f"{diff.mean():+.1f}, {int((diff > 0).sum())}/{seeds}"
            print(f"| {k} | {seeds} | {name} | {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} "
                  f"| {100 * np.mean(f1s):.1f} ± {100 * np.std(f1s):.1f} | {paired} |")


if __name__ == "__main__":
    main()
