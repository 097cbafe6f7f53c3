"""Few-shot accuracy, side by side in one run: transferkit's strategies against the baselines people use.

    .venv/bin/python benchmarks/few_shot.py --quick                      # ~1 minute, what the test runs
    .venv/bin/python benchmarks/few_shot.py                              # everything (long: see README)
    .venv/bin/python benchmarks/few_shot.py --arms baselines --k 10,50   # only the cheap baselines
    .venv/bin/python benchmarks/few_shot.py --markdown                   # tables for benchmarks/README.md

Tasks: the demo's two (tweet sentiment with all-MiniLM-L6-v2, MNIST-5k digits with EfficientNet-Lite0)
plus tasks the defaults were not tuned on: BBC News topics (text), scikit-learn's 8x8 digits and
scikit-image's faces vs non-faces (images). Protocol (shared/reference-numbers.md): a stratified test
set fixed by seed 0, then k labelled examples per class drawn from the rest, nested across k for one
seed (the k=10 draw is inside the k=50 draw); several seeds at the smallest k.

Arms: transferkit ``adapt()`` with ``auto`` and each registered strategy by name; scikit-learn logistic
regression (C=1) on the same frozen features; classic ML (TF-IDF + LR, HOG + LR, raw pixels + LR);
SetFit on the same MiniLM (text); a plain fine-tune of the same network outside transferkit (HF
``Trainer`` for text, a short timm loop for images). Every arm is scored by the same metric code on
the same test set; per-seed numbers and test predictions go to JSON, so paired differences can be
computed later. Seconds are the wall time of the arm's training call (model loading included, test
prediction excluded); for logistic regression on cached frozen features, the fit alone, with the
extraction cost of its training examples recorded beside it (extraction is shared by every run).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, however the script is started

import numpy as np  # noqa: E402

from few_shot_arms import Context, build_arms, select_arms  # noqa: E402
from few_shot_data import MAX_LENGTH, QUICK_TASKS, TASKS, FeatureCache, draw, fingerprint, log, split_test  # noqa: E402

HERE = Path(__file__).resolve().parent


# --- scoring, tables, JSON -------------------------------------------------------------------------
def score(probs: np.ndarray, y: np.ndarray, n_labels: int) -> tuple[dict[str, float], np.ndarray]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = np.asarray(probs).argmax(-1)
    return ({"accuracy": float(accuracy_score(y, pred)),
             "f1_macro": float(f1_score(y, pred, average="macro", labels=np.arange(n_labels), zero_division=0))}, pred)


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def table(runs: list[dict], task: str, arms: list[str], ks: list[int], markdown: bool) -> str:
    head = ["arm"] + [f"{what} k={k}" for k in ks for what in ("acc %", "macro-F1 %", "s")]
    rows = []
    for arm in arms:
        mine = [r for r in runs if r["task"] == task and r["arm"] == arm]
        if not mine:
            continue
        row = [arm]
        for k in ks:
            at = [r for r in mine if r["k"] == k]
            row += [_mean_sd([r["accuracy"] for r in at], 100), _mean_sd([r["f1_macro"] for r in at], 100),
                    _mean_sd([r["seconds"] for r in at], digits=1 if all(r["seconds"] < 10 for r in at) else 0)]
        rows.append(row)
    if markdown:
        return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [head, *rows])


def paired(runs: list[dict], task: str, ks: list[int], markdown: bool, base: str = "tk-auto") -> str:
    """``base`` minus every other arm, seed by seed (the arms share draws): per-seed points, mean, wins."""
    mine = {(r["arm"], r["k"], r["seed"]): r["accuracy"] for r in runs if r["task"] == task}
    others = sorted({a for a, _, _ in mine} - {base})
    head = ["tk-auto minus"] + [f"k={k}" for k in ks]
    rows = []
    for arm in others:
        row = [arm]
        for k in ks:
            d = [100 * (mine[(base, k, s)] - mine[(arm, k, s)]) for (a, kk, s) in sorted(mine)
                 if a == arm and kk == k and (base, k, s) in mine]
            row.append("—" if not d else f"{statistics.fmean(d):+.1f} ({', '.join(f'{x:+.1f}' for x in d)}; "
                       f"won {sum(x > 0 for x in d)}/{len(d)})")
        rows.append(row)
    if not rows or not any((base, k, s) for (a, k, s) in mine if a == base):
        return ""
    if markdown:
        return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows])
    return "\n".join("  ".join(r) for r in [head, *rows])


def machine_info() -> dict:
    import importlib.metadata as md

    versions = {}
    for dist in ("transferkit", "torch", "transformers", "timm", "setfit", "sentence-transformers", "scikit-learn",
                 "peft", "accelerate", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import torch

    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "platform": platform.platform(),
            "machine": platform.machine(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "git": commit, "versions": versions}


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="k=4, one seed, ~60 test examples, the cheapest arms, "
                        f"tasks {','.join(QUICK_TASKS)} (unless --tasks)")
    parser.add_argument("--tasks", help=f"comma list of tasks (default: all available): {', '.join(TASKS)}")
    parser.add_argument("--arms", help="comma list of arms or groups (all, quick, transferkit, baselines, finetune, "
                        "setfit, or names such as tk-auto,lr-frozen); default: all (quick: the quick arms)")
    parser.add_argument("--k", type=parse_ints, help="labelled examples per class, nested (default 10,50; quick 4)")
    parser.add_argument("--seeds", type=parse_ints, help="draw seeds at the smallest k (default 0,1,2; quick 0)")
    parser.add_argument("--large-k-seeds", type=parse_ints, help="draw seeds at the larger k (default 0)")
    parser.add_argument("--n-test", type=int, help="override every task's test-set size")
    parser.add_argument("--image-size", type=int, default=112, help="pixels for every image arm that takes a size")
    parser.add_argument("--cache-dir", default=os.environ.get("TRANSFERKIT_BENCH_CACHE", "/tmp/transferkit-bench-cache"),
                        help="frozen-feature cache (default /tmp/transferkit-bench-cache)")
    parser.add_argument("--output", help="JSON path (default benchmarks/results/few_shot[-quick].json)")
    parser.add_argument("--markdown", action="store_true", help="print the tables in Markdown")
    parser.add_argument("--no-predictions", action="store_true", help="leave per-example test predictions out of the JSON")
    parser.add_argument("--table-from", metavar="JSON[,JSON...]", help="print the tables of saved runs and exit (no "
                        "run); several are merged (and written to --output if given)")
    args = parser.parse_args(argv)
    if args.table_from:
        report = merge([json.loads(Path(f).read_text()) for f in args.table_from.split(",")])
        if args.output:  # several parts run one after another, kept as one file
            Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
        print_report(report, args.markdown)
        return 0

    import logging

    logging.getLogger("transferkit").setLevel(logging.WARNING)
    for noisy in ("transformers", "sentence_transformers", "setfit", "timm"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    ks = args.k or ([4] if args.quick else [10, 50])
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    large_seeds = args.large_k_seeds or [0]
    arms = build_arms()
    chosen = select_arms(args.arms, arms, args.quick)
    task_names = [t.strip() for t in args.tasks.split(",")] if args.tasks else (QUICK_TASKS if args.quick else list(TASKS))
    for t in task_names:
        if t not in TASKS:
            raise SystemExit(f"unknown task {t!r}; tasks: {', '.join(TASKS)}")
    output = Path(args.output) if args.output else HERE / "results" / f"few_shot{'-quick' if args.quick else ''}.json"
    report: dict[str, Any] = {
        "benchmark": "few_shot", "quick": args.quick, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_info(),
        "protocol": {"k": ks, "seeds_smallest_k": seeds, "seeds_larger_k": large_seeds, "image_size": args.image_size,
                     "max_length": MAX_LENGTH, "test_split": "stratified, sklearn train_test_split random_state=0",
                     "draw": "per class, numpy default_rng(seed).permutation, first k (nested across k)",
                     "seconds": "wall time of the arm's training call, model loading included, test prediction excluded; "
                                "lr-frozen: the fit only (extract_seconds beside it)",
                     "accuracy": "fraction in [0, 1]; tables show %"},
        "arms": {a: {"group": arms[a].group, "description": arms[a].description, "modalities": list(arms[a].modalities),
                     **({"settings": arms[a].settings} if arms[a].settings else {})} for a in chosen},
        "tasks": {}, "runs": [], "skipped": [], "errors": [],
    }
    total_start = time.perf_counter()
    for name in task_names:
        spec = TASKS[name]
        if spec.needs and importlib.util.find_spec(spec.needs) is None:
            reason = f"{spec.needs} is not installed; fix: {spec.install}"
            log(f"skipping task {name}: {reason}")
            report["skipped"].append({"task": name, "arm": None, "reason": reason})
            continue
        data = spec.load()
        n_test = args.n_test or (spec.n_test_quick if args.quick else spec.n_test)
        pool, test = split_test(data.y, n_test)
        cache = FeatureCache(Path(args.cache_dir), spec, data, args.image_size)
        report["tasks"][name] = {
            "description": spec.description, "source": spec.source, "modality": spec.modality, "model": spec.model,
            "labels": data.labels, "n_total": len(data.y), "n_test": len(test), "n_pool": len(pool),
            "class_counts": np.bincount(data.y).tolist(), "test_class_counts": np.bincount(data.y[test]).tolist(),
            "majority_class_accuracy": float(np.bincount(data.y[test]).max() / len(test)),
            "fingerprint": fingerprint(data), "test_labels": "".join(map(str, data.y[test])) if len(data.labels) <= 10 else None,
        }
        log(f"== {name}: {len(data.y)} examples, {len(data.labels)} classes, test {len(test)}, pool {len(pool)}")
        fits = [k for k in ks if np.bincount(data.y[pool]).min() >= k]
        for k in sorted(set(ks) - set(fits)):
            reason = f"k={k} is more than the pool holds for its smallest class ({np.bincount(data.y[pool]).min()})"
            log(f"  skipping {reason}")
            report["skipped"].append({"task": name, "arm": None, "k": k, "reason": reason})
        plan = [(k, s) for i, k in enumerate(ks) if k in fits for s in (seeds if i == 0 else large_seeds)]
        if "lr-frozen" in chosen:  # extract everything once, in one pass: one model load, one measured rate
            cache.get(np.unique(np.concatenate([test, *(draw(data.y, pool, k, s) for k, s in plan)])))
        for arm in chosen:
            if spec.modality not in arms[arm].modalities:
                continue
            if arm == "setfit" and importlib.util.find_spec("setfit") is None:
                report["skipped"].append({"task": name, "arm": arm, "reason": "setfit is not installed; fix: "
                                          "pip install setfit==1.2.0 (benchmark-only dependency)"})
                continue
            for k, seed in plan:
                train = draw(data.y, pool, k, seed)
                ctx = Context(spec, data, train, test, seed, args.image_size, cache)
                try:
                    out = arms[arm].run(ctx)
                except Exception as exc:  # one broken arm must not lose the others' numbers
                    log(f"  {arm} k={k} seed={seed}: FAILED {type(exc).__name__}: {exc}")
                    report["errors"].append({"task": name, "arm": arm, "k": k, "seed": seed,
                                             "error": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()[-3000:]})
                    continue
                metrics, pred = score(out["probs"], data.y[test], len(data.labels))
                run = {"task": name, "arm": arm, "k": k, "seed": seed, "n_train": len(train), **metrics,
                       "seconds": out["seconds"], "eval_seconds": out.get("eval_seconds")}
                run.update({key: out[key] for key in ("fit_seconds", "extract_seconds", "details") if key in out})
                if not args.no_predictions and len(data.labels) <= 10:
                    run["predictions"] = "".join(map(str, pred))
                report["runs"].append(run)
                log(f"  {arm:<16} k={k:<3} seed={seed}: acc {100 * metrics['accuracy']:.1f}  "
                    f"F1 {100 * metrics['f1_macro']:.1f}  {out['seconds']:.1f} s"
                    + (f"  [auto -> {out['details'].get('strategy')}]" if arm == "tk-auto" else ""))
    report["total_seconds"] = time.perf_counter() - total_start
    if hasattr(os, "getloadavg"):  # timings on a shared machine mean little without this
        report["machine"]["load_average_at_end"] = list(os.getloadavg())
    report["summary"] = summarize(report["runs"])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report, args.markdown)
    print(f"\nJSON: {output}")
    return 1 if report["errors"] else 0


def merge(reports: list[dict]) -> dict:
    """Parts of one benchmark run one after another (same protocol), as one report; each part's machine kept."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    merged = {**first, "command": " ; ".join(r["command"] for r in reports),
              "parts": [{"command": r["command"], "machine": r["machine"], "total_seconds": r.get("total_seconds")}
                        for r in reports],
              "total_seconds": sum(r.get("total_seconds") or 0 for r in reports),
              "protocol": {**first["protocol"], "k": sorted({k for r in reports for k in r["protocol"]["k"]})}}
    for key in ("arms", "tasks"):
        merged[key] = {k: v for r in reports for k, v in r[key].items()}
    for key in ("skipped", "errors"):
        merged[key] = [x for r in reports for x in r[key]]
    seen: set = set()  # a (task, arm, k, seed) run in two parts is deterministic: keep its first record
    merged["runs"] = [x for r in reports for x in r["runs"]
                      if (x["task"], x["arm"], x["k"], x["seed"]) not in seen
                      and not seen.add((x["task"], x["arm"], x["k"], x["seed"]))]
    merged["summary"] = summarize(merged["runs"])
    return merged


def summarize(runs: list[dict]) -> dict:
    """{task: {arm: {k: mean and sd of accuracy, macro-F1 and seconds over seeds}}}, for readers of the JSON."""
    out: dict = {}
    for r in runs:
        out.setdefault(r["task"], {}).setdefault(r["arm"], {}).setdefault(str(r["k"]), []).append(r)
    for arms in out.values():
        for arm, by_k in arms.items():
            for k, rs in by_k.items():
                cell = {"seeds": [r["seed"] for r in rs]}
                for key in ("accuracy", "f1_macro", "seconds"):
                    values = [r[key] for r in rs]
                    cell[key] = statistics.fmean(values)
                    cell[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
                by_k[k] = cell
    return out


def print_report(report: dict, markdown: bool) -> None:
    """The side-by-side tables of a report (a fresh one, or one read back with --table-from)."""
    when, protocol = report["machine"], report["protocol"]
    print(f"few-shot benchmark: {when['date']}, {when['platform']}, {when['cpu_count']} CPUs, torch "
          f"{when['versions']['torch']}, transformers {when['versions']['transformers']}, timm {when['versions']['timm']}, "
          f"setfit {when['versions']['setfit']}; image_size {protocol['image_size']}, max_length {protocol['max_length']}; "
          f"total {report['total_seconds']:.0f} s")
    for name, info in report["tasks"].items():
        title = (f"{name}: {info['description']}; test {info['n_test']} (majority class "
                 f"{100 * info['majority_class_accuracy']:.1f}%); k per class, mean ± sd over seeds")
        print(f"\n{'### ' if markdown else '== '}{title}\n")
        print(table(report["runs"], name, list(report["arms"]), protocol["k"], markdown))
        pairs = paired(report["runs"], name, protocol["k"], markdown)
        if pairs:
            print(f"\npaired, tk-auto minus each arm (accuracy points per seed):\n\n{pairs}")
    for s in report["skipped"]:
        print(f"\nskipped {s['task']}{' / ' + s['arm'] if s.get('arm') else ''}: {s['reason']}")
    for e in report["errors"]:
        print(f"\nERROR {e['task']} / {e['arm']} k={e['k']} seed={e['seed']}: {e['error']}")


if __name__ == "__main__":
    sys.exit(main())
