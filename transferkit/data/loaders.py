"""Examples + preprocessing -> torch DataLoaders. Images are decoded lazily, one batch at a time."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .images import to_pil


class ExampleDataset(Dataset):
    """Items are ``(decoded input, target, index)``; the task's ``collate`` preprocesses a batch of them.

    A text input is a string, a list of words (token classification) or a block of token ids
    (causal LM); its target is whatever the task encoded (a class id, a row, a list of tag ids, None).
    """

    def __init__(self, inputs: Sequence[Any], y: np.ndarray | None, modality: str, indices: np.ndarray | None = None):
        self.inputs, self.y, self.modality = inputs, y, modality
        self.indices = np.arange(len(inputs)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        value = self.inputs[j]
        if self.modality == "image":
            value = to_pil(value)
        elif isinstance(value, str):  # numpy / pandas string types become plain str; word lists and blocks pass
            value = str(value)
        return value, (None if self.y is None else self.y[j]), j


class DecodedInputs(Sequence):
    """The decoded inputs of an :class:`ExampleDataset`, one at a time (for code that indexes inputs, not items)."""

    def __init__(self, dataset: ExampleDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i][0]


def make_collate(preprocess: Callable, task, training: bool, sampler: "EpochSampler | None" = None) -> Callable:
    """The task's ``collate`` on a batch; training batches draw their augmentation from a generator of
    (seed, epoch, examples).

    Why not the global generators: Accelerate fetches the next batch before the current one trains,
    so augmentation drawn from them would interleave with dropout in an order a resumed run cannot
    replay. Seeded by the batch itself, a batch is augmented the same way however the run got there.
    """
    def collate(items):
        inputs = [x for x, _, _ in items]
        targets = [t for _, t, _ in items] if items[0][1] is not None else None
        if training and sampler is not None:
            seed = np.random.SeedSequence([sampler.seed, sampler.epoch, *(j for _, _, j in items)]).generate_state(1)[0]
            with _seeded(int(seed)):
                return task.collate(preprocess, inputs, targets, True)
        return task.collate(preprocess, inputs, targets, training)

    return collate


class _seeded:
    """Global torch / numpy / random generators set to ``seed`` inside, and put back as they were on exit."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        import random

        self.saved = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)

    def __exit__(self, *exc):
        import random

        torch.set_rng_state(self.saved[0])
        np.random.set_state(self.saved[1])
        random.setstate(self.saved[2])


class EpochSampler(torch.utils.data.Sampler):
    """A shuffle that is a function of (seed, epoch) alone, so a resumed run sees the order it would have seen.

    Every process computes the same order; Accelerate shards it. The loop calls ``set_epoch``.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(dataset: ExampleDataset, preprocess: Callable, task, batch_size: int, training: bool,
                seed: int = 0, num_workers: int = 0) -> DataLoader:
    sampler = EpochSampler(len(dataset), seed) if training else None
    # A last training batch of one example breaks BatchNorm in training mode; the data is reshuffled
    # every epoch, so dropping it leaves out a different example each time.
    lone_last = training and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      collate_fn=make_collate(preprocess, task, training, sampler), num_workers=num_workers,
                      drop_last=lone_last)
