"""Examples + preprocessing -> torch DataLoaders. Images are decoded lazily, one batch at a time."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .images import to_pil


class ExampleDataset(Dataset):
    """Items are ``(decoded input, target row)``; the preprocessing runs in the collate function."""

    def __init__(self, inputs: Sequence[Any], y: np.ndarray | None, modality: str, indices: np.ndarray | None = None):
        self.inputs, self.y, self.modality = inputs, y, modality
        self.indices = np.arange(len(inputs)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        value = self.inputs[j]
        value = to_pil(value) if self.modality == "image" else str(value)
        return value, (None if self.y is None else self.y[j])


class DecodedInputs(Sequence):
    """The decoded inputs of an :class:`ExampleDataset`, one at a time (for code that indexes inputs, not items)."""

    def __init__(self, dataset: ExampleDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i][0]


def make_collate(preprocess: Callable, task, training: bool) -> Callable:
    def collate(items):
        batch = preprocess([x for x, _ in items], training=training)
        if items[0][1] is not None:
            batch["labels"] = task.targets(np.stack([t for _, t in items]))
        return batch

    return collate


def make_loader(dataset: ExampleDataset, preprocess: Callable, task, batch_size: int, training: bool,
                seed: int = 0, num_workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if training else None
    # A last training batch of one example breaks BatchNorm in training mode; the data is reshuffled
    # every epoch, so dropping it leaves out a different example each time.
    lone_last = training and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=training, generator=generator,
                      collate_fn=make_collate(preprocess, task, training), num_workers=num_workers,
                      drop_last=lone_last)
