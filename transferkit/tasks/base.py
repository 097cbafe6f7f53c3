"""The Task contract, its registry, and how a task is chosen from a name or from the data.

A task owns everything that differs between tasks, so the rest of transferkit never asks which
task it runs:

* **data**: how its examples are read (``read``), its label set (``build_labels``), the encoded
  targets (``encode``, ``check``), the validation split (``split``), what happens once the
  tokenizer is known (``prepare``: causal LM packs text into blocks) and how a batch is made
  (``collate``: token classification aligns word tags to sub-words there);
* **model**: which head the family builds (``head``: a key of the family's head mapping), the
  loss, and whether a linear head on one feature vector per example exists (``solves_head``:
  what the linear probe and contrastive tuning need);
* **evaluation**: what is kept of each batch (``outputs``: never whole logits where they are big),
  the metrics, the metric early stopping watches and its direction;
* **prediction**: ``decode`` turns outputs into what ``predict`` returns;
* **auto**: ``default_strategy`` (auto picks it without measuring a probe) or None (auto measures
  the probe; see :mod:`transferkit.strategies.auto`).

Adding a task (regression, seq2seq, ...) means one new module here with a ``@register_task``
class, plus the head it names in each family's ``HEADS`` mapping. Token classification
(``token_classification.py``) and causal-LM adaptation (``causal_lm.py``) were added that way.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ..errors import ConfigError, close_matches

TASKS: dict[str, "Task"] = {}
ALIASES: dict[str, str] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: make the task available under its name and aliases."""
    TASKS[cls.name] = cls()
    ALIASES.update({alias: cls.name for alias in cls.aliases})
    return cls


class Task:
    """One kind of prediction. Subclasses set the class attributes and implement the data and model hooks."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    head: ClassVar[str]  # the key of Family.HEADS naming the head the family builds
    metric: ClassVar[str]  # what early stopping watches and the best epoch is chosen by
    greater_is_better: ClassVar[bool] = True
    # Early stopping watches the validation loss instead of ``metric`` (the best epoch is still chosen by
    # ``metric``): for a score that sits at 0 for the first epochs, as entity F1 does while the model still
    # tags every word O, "no gain for 3 epochs" would stop training before it starts.
    stop_on_loss: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = True
    multi_label: ClassVar[bool] = False  # independent per-label decisions with a tuned threshold
    solves_head: ClassVar[bool] = False  # one Linear on one feature vector per example: probe / contrastive work
    one_label_per_example: ClassVar[bool] = False  # "same class" is defined: contrastive pairs can be drawn
    default_strategy: ClassVar[str | None] = None  # auto's pick without a probe; None: auto measures the probe
    strategy_reason: ClassVar[str] = ""
    min_labels: ClassVar[int] = 2
    new_head: ClassVar[bool] = True  # False: the pretrained head is kept (a causal LM's LM head)

    # --- data -------------------------------------------------------------------------------------
    def read(self, data: Any, input_column: str | None, label_column: str | None, require_labels: bool = True):
        """``Examples`` from any data form this task takes (classification: every form of ``data.sources``)."""
        from ..data import read_dataset

        return read_dataset(data, input_column, label_column, require_labels=require_labels)

    def recognises(self, data: Any) -> bool:
        """Whether raw ``data`` is in a form only this task reads (tried before reading, for ``task=None``)."""
        return False

    def claims(self, examples) -> bool:
        """Whether data read without a ``task=`` is this task's (detection; the first claiming task wins)."""
        return False

    def build_labels(self, examples) -> list[str]:
        """The label names in id order."""
        raise NotImplementedError

    def encode(self, examples, labels: list[str], what: str) -> Any:
        """The targets of ``examples`` as ids; a DataError naming the example for a label outside ``labels``."""
        raise NotImplementedError

    def check(self, y: Any, labels: list[str]) -> None:
        """Refuse training targets that cannot train this task (one class only, ...)."""

    def prepare(self, inputs: Sequence[Any], y: Any, preprocess, what: str,
                training: bool = True) -> tuple[Sequence[Any], Any]:
        """Inputs and targets once the backbone's preprocessing is known (default: unchanged).

        ``training``: the set is trained on (False: scored only, e.g. an evaluation set)."""
        return inputs, y

    def split(self, y: Any, n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(train_idx, val_idx) of a validation split to carve, or None where the data is too small for one."""
        raise NotImplementedError

    def validation_ok(self, y: Any, n: int, n_labels: int) -> bool:
        """Whether a validation set this size may stop training and pick the best epoch (else it is only reported)."""
        return n > 0

    def counts(self, y: Any, labels: list[str]) -> dict[str, int]:
        """Examples per label (for the model card); {} where that means nothing."""
        return {}

    def collate(self, preprocess, inputs: list[Any], targets: list[Any] | None, training: bool) -> dict[str, torch.Tensor]:
        """One batch: the model's inputs and, when targets are given, ``labels``."""
        batch = preprocess(inputs, training=training)
        if targets is not None:
            batch["labels"] = self.targets(np.stack(targets))
        return batch

    def targets(self, y: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    # --- model ------------------------------------------------------------------------------------
    def model_config(self, labels: list[str]) -> dict[str, Any]:
        """The transformers config fields of the head, so the label names travel with a saved folder."""
        return dict(num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def outputs(self, logits: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, ...] | list[Any]:
        """What evaluation keeps of one batch, one row or item per example (gathered across processes)."""
        return (logits.float(),) if labels is None else (logits.float(), labels)

    def join(self, parts: list) -> Any:
        """The kept outputs of every batch as one object ``score`` and ``decode`` read."""
        logits = torch.cat([p[0] for p in parts]).numpy()
        y = torch.cat([p[1] for p in parts]).numpy() if parts and len(parts[0]) > 1 else None
        return logits, y

    def score(self, outputs: Any, threshold: float | None = None, labels: list[str] | None = None) -> dict[str, float]:
        """The metrics of joined outputs, ``loss`` included (``labels``: the label names, where scores need them)."""
        raise NotImplementedError

    def decode(self, outputs: Any, labels: list[str], threshold: float | None, inputs: Sequence[Any] = ()) -> list[Any]:
        """What ``predict`` returns for each input."""
        raise NotImplementedError

    def check_predict(self) -> None:
        """Refuse ``predict`` where the task has nothing to predict (a causal LM generates instead)."""

    def reference_scores(self, adapted, loader) -> dict[str, float]:
        """Scores of a reference model on the same data, beside the adapted model's (causal LM: the base model)."""
        return {}

    def generate(self, backbone, prompts: list[str], max_new_tokens: int, **kwargs) -> list[str]:
        raise ConfigError(f"generate() continues text with a causal LM (task='causal_lm'); this model was adapted "
                          f"for {self.name!r}: use predict().")

    # --- the model card (hub/card_body.py asks the task for what differs) --------------------------
    label_word: ClassVar[str] = "class"  # what one label is called in the card's tables
    example_word: ClassVar[str] = "examples"  # what one example is called there
    percent_metrics: ClassVar[tuple[str, ...]] = ()  # metrics shown as percentages (the others as numbers)

    def pipeline_tag(self, modality: str) -> str:
        """The Hub's pipeline tag for this task on ``modality``."""
        raise NotImplementedError

    def card_summary(self, record: dict[str, Any]) -> str:
        """What the model is, as the card's first sentence begins ("A text classifier (...)")."""
        raise NotImplementedError

    def card_example(self, record: dict[str, Any]) -> str:
        """The line of Python that uses a loaded ``model`` in the card's transferkit snippet."""
        return "print(model.predict(['an example text']))"

    def card_usage(self, record: dict[str, Any], repo_id: str) -> str | None:
        """The plain-library usage (Markdown), or None where the family's own snippet applies."""
        return None

    def card_limits(self, record: dict[str, Any]) -> list[str]:
        """The task's own points in "Intended use and limitations"."""
        return []

    def tune_threshold(self, outputs: Any) -> float | None:
        return None

    def per_class(self, outputs: Any, labels: list[str], threshold: float | None = None) -> dict[str, dict[str, float]]:
        return {}

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats ``b`` on this task's metric."""
        return a > b if self.greater_is_better else a < b


def random_split(n: int, fraction: float, seed: int, minimum: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(train_idx, val_idx): ``fraction`` of ``n`` examples held out at random, or None below ``minimum`` held out
    (or with nothing left to train on). For tasks without classes to stratify on."""
    n_val = int(round(fraction * n))
    if n_val < minimum or n - n_val < 1:
        return None
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def get_task(name: str) -> Task:
    """The task registered as ``name`` (or an alias such as "multi-label"); a ConfigError listing the tasks."""
    _load_tasks()
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in TASKS:
        names = sorted(TASKS)
        spelled = {n: n for n in names} | ALIASES  # a near-miss of an alias suggests the task's own name
        hits = list(dict.fromkeys(spelled[h] for h in close_matches(str(name), spelled, n=5)))[:3]
        hint = " Did you mean " + " or ".join(repr(h) for h in hits) + "?" if hits else ""
        raise ConfigError(f"task must be one of {names}, got {name!r}.{hint}")
    return TASKS[key]


def task_names() -> tuple[str, ...]:
    _load_tasks()
    return tuple(TASKS)


def detect_task(examples) -> Task:
    """The task of labelled data read without ``task=``: the first registered task that claims it."""
    _load_tasks()
    for task in TASKS.values():
        if task.claims(examples):
            return task
    return TASKS["single_label"]


def read_for(data: Any, task: Task | None, input_column: str | None, label_column: str | None):
    """(task, examples): ``data`` read by ``task``, or, without one, by the task whose form it is."""
    _load_tasks()
    if task is None:
        task = next((t for t in TASKS.values() if t.recognises(data)), None)
    if task is not None:
        return task, task.read(data, input_column, label_column, require_labels=task.needs_labels)
    examples = TASKS["single_label"].read(data, input_column, label_column)
    task = detect_task(examples)
    if type(task).read is not type(TASKS["single_label"]).read:  # claimed by a task with its own reader and checks
        examples = task.read(data, input_column, label_column, require_labels=task.needs_labels)
    return task, examples


def _load_tasks() -> None:
    # Importing the modules runs their @register_task; the order is detection order (word lists with tag
    # lists are token classification before lists of labels are multi-label).
    from . import token_classification, classification, causal_lm  # noqa: F401
