"""The model being extended: where it comes from, whether it can be extended, and the merged label list."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError, ModelNotFoundError, StrategyError

EXTENDABLE = "single_label"


def resolve(model: Any, extend: Any):
    """(previous Adapted, Protection) from ``adapt(model, data, extend=...)``.

    ``extend=True`` or a ``Protection``: ``model`` is the previous model. ``extend=<previous>`` (an
    ``Adapted``, a saved folder or an ``hf-hub:`` id): ``model`` names the backbone, which must be
    the one the previous model was trained on.
    """
    from ..adapted import Adapted
    from .config import Protection

    if extend is True or isinstance(extend, Protection):
        return load_previous(model), extend if isinstance(extend, Protection) else Protection()
    if isinstance(extend, (Adapted, str, Path)):
        previous = load_previous(extend)
        check_backbone(model, previous)
        return previous, Protection()
    raise ConfigError(f"extend= takes True, a Protection(...) or the previous model (an Adapted, its folder or an "
                      f"'hf-hub:' id), got {extend!r}.")


def load_previous(source: Any):
    """An ``Adapted``, or one loaded from a transferkit folder or ``hf-hub:`` id; anything else is refused."""
    from ..adapted import Adapted, load
    from ..storage import MARKER

    if isinstance(source, Adapted):
        return source
    if isinstance(source, (str, Path)) and str(source).startswith("hf-hub:"):
        return load(str(source))
    if isinstance(source, (str, Path)) and (Path(str(source)).expanduser() / MARKER).is_file():
        return load(source)
    shown = type(source).__name__ if isinstance(source, torch.nn.Module) else str(source)
    raise ModelNotFoundError(f"extend=True adds classes to a model transferkit trained, but {shown!r} is not one "
                             f"(an Adapted, a folder holding {MARKER}, or an 'hf-hub:' id of one). To train a new "
                             "classifier on this backbone, call adapt() without extend=True.")


def check_backbone(model: Any, previous) -> None:
    """``model`` must name the backbone ``previous`` was trained on (its recorded source)."""
    from ..assets import is_packaged_name, packaged_model_path

    def canonical(source: Any) -> str:
        if isinstance(source, torch.nn.Module):
            return type(source).__name__
        text = str(source)
        if is_packaged_name(text):
            text = str(packaged_model_path(text))
        text = text[len("local-dir:"):] if text.startswith("local-dir:") else text
        return str(Path(text).expanduser().resolve()) if Path(text).expanduser().exists() else text

    if canonical(model) != canonical(previous.config.model):
        raise StrategyError(f"the backbone {canonical(model)!r} differs from the one the previous model was trained on "
                            f"({previous.config.model!r}): its head's rows mean nothing on other features. Extend with "
                            f"the same backbone, adapt(previous, new_data, extend=True), or train a new model on "
                            f"{canonical(model)!r} without extend.")


def check_task(previous, task) -> None:
    if previous.task != EXTENDABLE:
        raise StrategyError(f"extend=True adds classes to a single-label classifier; this model is a {previous.task!r} "
                            "model. Train a new model with adapt() instead.")
    if task is not None and task.name != EXTENDABLE:
        raise DataError(f"extend=True adds classes to a single-label classifier, but the new data reads as task "
                        f"{task.name!r} (one label per example is needed). Pass task='single_label' if that is what "
                        "the data holds.")


def merged_labels(old: list[str], raw_labels: list[Any]) -> list[str]:
    """The old labels in their ids, then the new ones in order of first appearance; refuses data with none new."""
    known = set(old)
    new = [label for label in dict.fromkeys(str(v) for v in raw_labels) if label not in known]
    if not new:
        raise DataError(f"extend=True found no new class in the data: its labels {sorted(set(map(str, raw_labels)))[:10]} "
                        f"are all among the model's {old[:10]}. To train on more examples of the same classes, call "
                        "adapt(previous, data) without extend=True.")
    return list(old) + new
