"""What a classifier remembers of its training data for a later extension: class means and exemplars.

**Class means** (``class_means.safetensors``, a row per class in label order): the mean feature,
at the head's input, of each class's training examples, taken with the final body. They are
what feature rehearsal moves new examples onto (``extension.solve``); a few kilobytes per class,
written beside every single-label classifier whose head is one Linear layer. They describe the
body they were taken with: an extension that trains the body keeps only the means it can take
again (the classes in its own data).

**Exemplars** (``exemplars/``, only with ``keep_exemplars=N``): N training examples per class,
chosen by herding (iCaRL, Rebuffi et al. 2017: each next example brings the chosen set's mean
feature closest to the class mean), or at random (seeded) where the head gives no features.
Texts are written to ``exemplars/exemplars.jsonl``; images as PNG files it lists. A later
``adapt(saved_folder, new_data, extend=True)`` rehearses them, so the original data is not needed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("transferkit")
MEANS_FILE = "class_means.safetensors"
EXEMPLARS_DIR = "exemplars"
EXEMPLARS_INDEX = "exemplars.jsonl"


@dataclass
class Memory:
    """Class means (label -> mean feature) and exemplars ((input, label) pairs) of a classifier."""

    means: dict[str, np.ndarray] = field(default_factory=dict)
    exemplars: list[tuple[Any, str]] = field(default_factory=list)
    per_class: int = 0  # exemplars kept per class (0: none asked for)
    modality: str = "text"

    def write(self, folder: Path, labels: list[str]) -> None:
        if self.means:
            _write_means(folder / MEANS_FILE, self.means, labels)
        if self.exemplars:
            _write_exemplars(folder / EXEMPLARS_DIR, self.exemplars, self.per_class, self.modality)

    @classmethod
    def read(cls, folder: Path) -> "Memory":
        means = _read_means(folder / MEANS_FILE) if (folder / MEANS_FILE).is_file() else {}
        exemplars, per_class, modality = _read_exemplars(folder / EXEMPLARS_DIR)
        return cls(means, exemplars, per_class, modality)

    def describe(self) -> dict[str, Any]:
        """What transferkit.json says about the memory (the model card reads it)."""
        counts: dict[str, int] = {}
        for _, label in self.exemplars:
            counts[label] = counts.get(label, 0) + 1
        return {"class_means": sorted(self.means), "exemplars_per_class": self.per_class, "exemplars": counts}


def class_features(backbone, inputs, y: np.ndarray, modality: str, batch_size: int = 32):
    """(features, targets) of ``inputs`` at the head's input, un-augmented; None where the head is not one Linear."""
    from ..data import ExampleDataset, make_loader
    from ..tasks import get_task
    from ..training.feature_cache import cached_features

    loader = make_loader(ExampleDataset(list(inputs), np.asarray(y), modality), backbone.preprocess,
                         get_task("single_label"), batch_size=batch_size, training=False)
    return cached_features(backbone, loader)


def means_of(features: torch.Tensor, y: np.ndarray, labels: list[str]) -> dict[str, np.ndarray]:
    y = np.asarray(y)
    return {labels[c]: features[torch.from_numpy(y == c)].double().mean(0).float().numpy() for c in np.unique(y)}


def remember(backbone, inputs, y: np.ndarray, labels: list[str], modality: str, keep: int, seed: int,
             features=None) -> Memory:
    """The class means of the training examples and, with ``keep`` > 0, ``keep`` exemplars per class."""
    y = np.asarray(y)
    if features is None:
        features = class_features(backbone, inputs, y, modality)
    feats = None if features is None else features[0]
    memory = Memory(means={} if feats is None else means_of(feats, y, labels), per_class=keep, modality=modality)
    if keep:
        chosen = herding(feats, y, keep) if feats is not None else _random(y, keep, seed)
        memory.exemplars = [(inputs[i], labels[y[i]]) for i in chosen]
        logger.info("kept %d exemplars (%d per class at most, chosen by %s)", len(chosen), keep,
                    "herding" if feats is not None else "random draw")
    return memory


def herding(features: torch.Tensor, y: np.ndarray, keep: int) -> list[int]:
    """iCaRL's herding: per class, greedily the example that moves the chosen mean closest to the class mean."""
    chosen: list[int] = []
    x = features.double()
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        xc, target = x[idx], x[idx].mean(0)
        total, picked = torch.zeros_like(target), []
        for k in range(1, min(keep, len(idx)) + 1):
            gap = ((target - (total + xc) / k) ** 2).sum(1)
            if picked:
                gap[picked] = float("inf")
            best = int(gap.argmin())
            picked.append(best)
            total += xc[best]
        chosen += [int(idx[i]) for i in picked]
    return chosen


def _random(y: np.ndarray, keep: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(i) for c in np.unique(y) for i in rng.permutation(np.flatnonzero(y == c))[:keep]]


def merged(old: Memory, new: Memory, body_changed: bool) -> Memory:
    """The memory of an extended model: the new means (and the old ones while the body is unchanged),
    the old exemplars and the new classes' (same number per class)."""
    means = dict(new.means) if body_changed else {**old.means, **new.means}
    if body_changed and old.means:
        lost = sorted(set(old.means) - set(new.means))
        if lost:
            logger.info("class means of %s dropped: the body trained, so they no longer describe its features",
                        lost[:6])
    seen = {label for _, label in old.exemplars}
    exemplars = list(old.exemplars) + [(x, label) for x, label in new.exemplars if label not in seen]
    return Memory(means, exemplars, max(old.per_class, new.per_class), new.modality)


def _write_means(path: Path, means: dict[str, np.ndarray], labels: list[str]) -> None:
    from safetensors.torch import save_file

    kept = [label for label in labels if label in means]
    rows = torch.from_numpy(np.stack([means[label] for label in kept])).float().contiguous()
    save_file({"means": rows}, str(path), metadata={"labels": json.dumps(kept)})


def _read_means(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        labels = json.loads(f.metadata()["labels"])
        rows = f.get_tensor("means").numpy()
    return {label: rows[i] for i, label in enumerate(labels)}


def _write_exemplars(folder: Path, exemplars: list[tuple[Any, str]], per_class: int, modality: str) -> None:
    from ..data.images import to_pil

    folder.mkdir()
    lines = []
    for i, (x, label) in enumerate(exemplars):
        if modality == "text":
            lines.append({"text": x, "label": label})
            continue
        name = f"{i:05d}.png"
        to_pil(x).save(folder / name)
        lines.append({"image": name, "label": label})
    (folder / EXEMPLARS_INDEX).write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "README.md").write_text(f"{len(exemplars)} training examples kept by transferkit (at most {per_class} per "
                                      "class), rehearsed when the model is extended with new classes.\n")


def _read_exemplars(folder: Path) -> tuple[list[tuple[Any, str]], int, str]:
    index = folder / EXEMPLARS_INDEX
    if not index.is_file():
        return [], 0, "text"
    from PIL import Image

    out = []
    for line in index.read_text().splitlines():
        row = json.loads(line)
        if "text" in row:
            out.append((row["text"], str(row["label"])))
        else:
            with Image.open(folder / row["image"]) as img:
                out.append((img.copy(), str(row["label"])))
    counts: dict[str, int] = {}
    for _, label in out:
        counts[label] = counts.get(label, 0) + 1
    modality = "text" if out and isinstance(out[0][0], str) else "image"
    return out, max(counts.values(), default=0), modality
