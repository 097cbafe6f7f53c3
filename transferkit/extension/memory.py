"""What a classifier remembers of its training data for a later extension: class means and exemplars.

**Class statistics** (``class_means.safetensors``): the mean feature, at the head's input, of each
class's training examples (a row per class in label order), and the spread of features around
their class mean, shared by the classes, as a low-rank covariance (``SPREAD_RANK`` directions plus
an isotropic rest), all taken with the final body. Feature rehearsal draws old-class
pseudo-features from them (``extension.solve``). A few kilobytes per class plus ``d x 32``
numbers, written beside every single-label classifier whose head is one Linear layer. They
describe the body they were taken with: an extension that trains the body keeps only what it can
take again (the classes in its own data).

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
SPREAD_RANK = 32  # on MNIST / tweets features, 32 directions drew pseudo-features as good as the full covariance
EXEMPLARS_DIR = "exemplars"
EXEMPLARS_INDEX = "exemplars.jsonl"


@dataclass
class Spread:
    """The within-class covariance shared by the classes: ``factor @ factor.T + residual * I`` (``factor``: d x r)."""

    factor: np.ndarray
    residual: float
    dof: int  # examples minus classes: the degrees of freedom it was estimated from (weights when pooling)

    @classmethod
    def of(cls, features: torch.Tensor, y: np.ndarray) -> "Spread | None":
        x, y = features.double(), np.asarray(y)
        classes = np.unique(y)
        dof = len(y) - len(classes)
        if dof < 2:
            return None
        centres = {c: x[torch.from_numpy(y == c)].mean(0) for c in classes}
        offsets = x - torch.stack([centres[c] for c in y])
        return cls._from_scaled(offsets / np.sqrt(dof), dof, x.shape[1])

    @classmethod
    def _from_scaled(cls, rows: torch.Tensor, dof: int, d: int) -> "Spread":
        """From rows whose Gram matrix is the covariance (offsets / sqrt(dof), or stacked factors)."""
        _, s, vt = torch.linalg.svd(rows, full_matrices=False)
        r = min(SPREAD_RANK, len(s))
        return cls((vt[:r].T * s[:r]).float().numpy(), float((s[r:] ** 2).sum()) / d, dof)

    def pooled(self, other: "Spread | None") -> "Spread":
        """The covariance of both sets of classes, each weighted by its degrees of freedom."""
        if other is None:
            return self
        dof = self.dof + other.dof
        rows = torch.cat([torch.from_numpy(self.factor).double().T * np.sqrt(self.dof / dof),
                          torch.from_numpy(other.factor).double().T * np.sqrt(other.dof / dof)])
        d = self.factor.shape[0]
        pooled = Spread._from_scaled(rows, dof, d)
        pooled.residual += (self.residual * self.dof + other.residual * other.dof) / dof
        return pooled


@dataclass
class Memory:
    """Class means (label -> mean feature) and exemplars ((input, label) pairs) of a classifier."""

    means: dict[str, np.ndarray] = field(default_factory=dict)
    spread: Spread | None = None
    exemplars: list[tuple[Any, str]] = field(default_factory=list)
    per_class: int = 0  # exemplars kept per class (0: none asked for)
    modality: str = "text"

    def write(self, folder: Path, labels: list[str]) -> None:
        if self.means:
            _write_means(folder / MEANS_FILE, self.means, labels, self.spread)
        if self.exemplars:
            _write_exemplars(folder / EXEMPLARS_DIR, self.exemplars, self.per_class, self.modality)

    @classmethod
    def read(cls, folder: Path) -> "Memory":
        means, spread = _read_means(folder / MEANS_FILE) if (folder / MEANS_FILE).is_file() else ({}, None)
        exemplars, per_class, modality = _read_exemplars(folder / EXEMPLARS_DIR)
        return cls(means, spread, exemplars, per_class, modality)

    def describe(self) -> dict[str, Any]:
        """What transferkit.json says about the memory (the model card reads it)."""
        counts: dict[str, int] = {}
        for _, label in self.exemplars:
            counts[label] = counts.get(label, 0) + 1
        return {"class_means": sorted(self.means), "spread_rank": 0 if self.spread is None else
                int(self.spread.factor.shape[1]), "exemplars_per_class": self.per_class, "exemplars": counts}


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
    memory = Memory(means={} if feats is None else means_of(feats, y, labels), per_class=keep, modality=modality,
                    spread=None if feats is None else Spread.of(feats, y))
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
    """The memory of an extended model: the new statistics (pooled with the old ones while the body is
    unchanged), the old exemplars and the new classes' (same number per class)."""
    means = dict(new.means) if body_changed else {**old.means, **new.means}
    spread = new.spread if body_changed or old.spread is None else old.spread.pooled(new.spread)
    if body_changed and old.means:
        lost = sorted(set(old.means) - set(new.means))
        if lost:
            logger.info("class means of %s dropped: the body trained, so they no longer describe its features",
                        lost[:6])
    seen = {label for _, label in old.exemplars}
    exemplars = list(old.exemplars) + [(x, label) for x, label in new.exemplars if label not in seen]
    return Memory(means, spread, exemplars, max(old.per_class, new.per_class), new.modality)


def _write_means(path: Path, means: dict[str, np.ndarray], labels: list[str], spread: Spread | None) -> None:
    from safetensors.torch import save_file

    kept = [label for label in labels if label in means]
    tensors = {"means": torch.from_numpy(np.stack([means[label] for label in kept])).float().contiguous()}
    record: dict[str, Any] = {"labels": kept}
    if spread is not None:
        tensors["spread_factor"] = torch.from_numpy(spread.factor).float().contiguous()
        record |= {"spread_residual": spread.residual, "spread_dof": spread.dof}
    # one metadata entry: safetensors writes several in hash order, so the same statistics would not give the same bytes
    save_file(tensors, str(path), metadata={"transferkit": json.dumps(record)})


def _read_means(path: Path) -> tuple[dict[str, np.ndarray], Spread | None]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["transferkit"])
        labels = meta["labels"]
        rows = f.get_tensor("means").numpy()
        spread = (Spread(f.get_tensor("spread_factor").numpy(), float(meta["spread_residual"]), int(meta["spread_dof"]))
                  if "spread_factor" in f.keys() else None)
    return {label: rows[i] for i, label in enumerate(labels)}, spread


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
