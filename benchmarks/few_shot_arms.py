"""The few-shot benchmark's arms: transferkit's strategies and the baselines people use (``few_shot.py``).

Every arm gets a :class:`Context` (task, data, training draw, test set, seed, feature cache) and
returns test probabilities and the wall time of its training call.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import transferkit
from few_shot_data import MAX_LENGTH, Data, FeatureCache, TaskSpec, _efficientnet, _timm_eval_transform, _to_rgb
from transferkit import assets


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
