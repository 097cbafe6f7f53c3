"""Growing a classifier's head: old rows copied bit for bit, new rows started from the new classes' mean features.

The head is whatever ``Linear`` layers of ``backbone.head`` have one output row per old class
(timm's classifier, the pooled text classifier, a decoder's ``score``): each is replaced by a
``Linear`` with a row per old + new class, and the model's own config learns the new label names,
so the saved folder opens in plain timm / transformers with every name.
"""
from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import torch
from torch import nn

from ..errors import StrategyError

logger = logging.getLogger("transferkit")


def head_linears(model: nn.Module, head: list[str], n_old: int) -> list[tuple[str, nn.Linear]]:
    """The Linear layers of the head with one output per old class."""
    owners = dict.fromkeys(name.rsplit(".", 1)[0] for name in head if "." in name)
    found = [(name, model.get_submodule(name)) for name in owners]
    return [(name, m) for name, m in found if isinstance(m, nn.Linear) and m.out_features == n_old]


def grow(backbone, labels: list[str], n_old: int, task):
    """A copy of ``backbone`` whose head has a row per label in ``labels``; rows ``[:n_old]`` are the old ones."""
    model = copy.deepcopy(backbone.model)
    layers = head_linears(model, backbone.head, n_old)
    if not layers:
        raise StrategyError(f"cannot extend this model: its head ({backbone.head[:3]}) has no Linear layer with one row "
                            f"per class ({n_old}). Extension needs a classifier whose last layer is an nn.Linear.")
    for name, old in layers:
        new = nn.Linear(old.in_features, len(labels), bias=old.bias is not None, device=old.weight.device,
                        dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:n_old] = old.weight
            if old.bias is not None:
                new.bias.zero_()
                new.bias[:n_old] = old.bias
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, new)
    _relabel(model, labels, task)
    return dataclasses.replace(backbone, model=model, adapter=None, details=dict(backbone.details))


def _relabel(model: nn.Module, labels: list[str], task) -> None:
    """The label count and names in the model's own config (transformers) or attributes (timm)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "update"):
        config.update(task.model_config(labels))
    if hasattr(model, "num_classes"):
        model.num_classes = len(labels)
    if hasattr(model, "num_labels"):
        model.num_labels = len(labels)


def classifier(backbone) -> nn.Linear:
    """The head's last Linear layer, which produces the logits (a plain, unwrapped model)."""
    owners = dict.fromkeys(name.rsplit(".", 1)[0] for name in backbone.head if "." in name)
    linears = [m for m in (backbone.model.get_submodule(n) for n in owners) if isinstance(m, nn.Linear)]
    return linears[-1]


@torch.no_grad()
def init_new_rows(head: nn.Linear, n_old: int, new_means: np.ndarray | None, old_means: np.ndarray | None) -> str:
    """New rows from the new classes' mean features, centred on the mean of every class mean and scaled to the
    old rows' mean norm; new biases at the old biases' mean. Without features: small random rows."""
    n_new = head.out_features - n_old
    old_w = head.weight[:n_old].double()
    norm = old_w.norm(dim=1).mean()
    if head.bias is not None:
        head.bias[n_old:] = head.bias[:n_old].mean()
    if new_means is None:
        nn.init.trunc_normal_(head.weight[n_old:], std=0.01)
        return "random (this head gives no feature vector)"
    means = torch.from_numpy(np.asarray(new_means)).double()
    everything = means if old_means is None else torch.cat([torch.from_numpy(np.asarray(old_means)).double(), means])
    direction = means - everything.mean(0)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    head.weight[n_old:] = (direction * norm).to(head.weight)
    return f"the new classes' mean features, scaled to the old rows' mean norm ({float(norm):.3g}; {n_new} rows)"


@torch.no_grad()
def align(head: nn.Linear, n_old: int) -> float:
    """Weight aligning (Zhao et al. 2020): new rows (and biases) scaled so their mean norm is the old rows'."""
    old, new = head.weight[:n_old].norm(dim=1).mean(), head.weight[n_old:].norm(dim=1).mean()
    gamma = float(old / new) if float(new) > 0 else 1.0
    head.weight[n_old:] *= gamma
    if head.bias is not None:
        head.bias[n_old:] *= gamma
    logger.info("bias correction: new rows scaled by %.3f to the old rows' mean norm (weight aligning)", gamma)
    return gamma
