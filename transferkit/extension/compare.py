"""``adapt(previous, new_data, extend=True, compare=True, test_dataset=...)``: four arms side by side.

1. **replace head**: today's ``adapt`` on the previous model with the new data: the head is replaced,
   so every old class is lost (its old-class accuracy is 0 by construction, measured anyway).
2. **extend, no protection**: the head grown, no feature rehearsal, distillation, exemplars or
   bias correction.
3. **extend, protected**: the extension as asked (the default ``Protection()``); its model is returned.
4. **joint training**: the original backbone trained on every example the user has given: the new
   data, ``rehearsal=``, the kept exemplars, and ``CompareConfig(joint_data=...)`` (old data used by
   this reference arm alone). Without any old example it is left out, and the table says why.

Every arm is scored on the same test set by label name: accuracy, accuracy on the old and on the
new classes, and forgetting (the previous model's old-class accuracy on the same examples minus
the arm's).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..tasks import get_task

logger = logging.getLogger("transferkit")


@dataclass
class ExtensionArm:
    name: str
    description: str
    scores: dict[str, float] | None  # None: not run (``note`` says why)
    seconds: float = 0.0
    note: str = ""


@dataclass
class ExtensionComparison:
    """The four arms on one test set; ``previous_old_accuracy`` is the previous model's on the old classes."""

    arms: list[ExtensionArm]
    previous_old_accuracy: float
    n_test: int
    old_labels: list[str]
    new_labels: list[str]
    metric: str = "accuracy"
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self, markdown: bool = False) -> str:
        head = ["arm", "accuracy", "old classes", "new classes", "forgetting", "seconds"]
        rows = []
        for arm in self.arms:
            s = arm.scores
            if s is None:
                rows.append([arm.name, "not run", "", "", "", arm.note])
                continue
            rows.append([arm.name, _pct(s["accuracy"]), _pct(s["accuracy_old_classes"]), _pct(s["accuracy_new_classes"]),
                         _pct(s["forgetting"], signed=True), f"{arm.seconds:.1f}"])
        if markdown:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in [head, *rows])

    @property
    def verdict(self) -> str:
        got = {a.name: a.scores for a in self.arms if a.scores is not None}
        protected, joint = got.get("extend, protected"), got.get("joint training")
        text = (f"Before extension the model scored {_pct(self.previous_old_accuracy)} on the {len(self.old_labels)} old "
                f"classes ({self.n_test} test examples in all).")
        if protected:
            text += f" Protected extension: forgetting {_pct(protected['forgetting'])} points"
            if joint:
                gap = 100 * (joint["accuracy"] - protected["accuracy"])
                text += (f", {abs(gap):.1f} points of accuracy {'behind' if gap >= 0 else 'ahead of'} joint training "
                         "on every class")
            text += "."
        return text

    def __str__(self) -> str:
        return f"{self.table()}\n{self.verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {"arms": [a.__dict__ for a in self.arms], "previous_old_accuracy": self.previous_old_accuracy,
                "n_test": self.n_test, "old_labels": self.old_labels, "new_labels": self.new_labels}

    def card_record(self) -> dict[str, Any]:
        return {"table": self.table(markdown=True), "verdict": self.verdict, "metric": self.metric,
                "transfer_led": True, "leader": "extend, protected", "images": [],
                "title": "Extension compared with head replacement and joint training",
                "intro": "`compare=True` with `extend=True` scored four arms on the same test set (forgetting in "
                         "points: the previous model's old-class accuracy minus the arm's):"}


def _pct(value: float, signed: bool = False) -> str:
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def compare_extension(model, train, extend, compare, *, test_dataset, strategy, task, rehearsal, keep_exemplars, cfg,
                      input_column, label_column):
    """Run the four arms; return the protected extension with ``.comparison`` set."""
    from .config import Protection
    from .previous import resolve
    from .run import extend as run_extension

    if test_dataset is None:
        raise ConfigError("compare=True with extend=True scores every arm on one test set holding old and new classes: "
                          "pass test_dataset=...")
    previous, protection = resolve(model, extend)
    common = dict(strategy=strategy, task=task, cfg=cfg, input_column=input_column, label_column=label_column)
    arms = []
    start = time.perf_counter()
    protected = run_extension(previous, train, protection, rehearsal=rehearsal, keep_exemplars=keep_exemplars,
                              test_dataset=test_dataset, **common)
    seconds = time.perf_counter() - start
    test = _Test.read(previous, test_dataset, protected.labels)
    n_old = len(previous.labels)
    base = test.previous_accuracy(previous)
    new_labels = protected.labels[n_old:]
    replace = "the head replaced by one for the new classes only (today's adapt)"
    if len(new_labels) > 1:
        arms.append(_arm("replace head", replace, lambda: _replace(previous, train, strategy, cfg, input_column,
                                                                   label_column), test, base))
    else:  # a head for one class predicts it for every input: nothing to train, the scores follow
        arms.append(ExtensionArm("replace head", replace, test.constant(new_labels[0], base),
                                 note="one new class: the replaced head predicts it for every input"))
    arms.append(_arm("extend, no protection", "head grown; no rehearsal, distillation or bias correction",
                     lambda: run_extension(previous, train, Protection.none(), rehearsal=None, keep_exemplars=0,
                                           **common), test, base))
    arms.append(ExtensionArm("extend, protected", f"head grown, {_described(protection, rehearsal, previous)}",
                             test.scores(protected, base), seconds))
    arms.append(_joint(previous, train, rehearsal, compare, test, base, cfg, input_column, label_column))
    comparison = ExtensionComparison(arms, base, len(test.y), previous.labels, protected.labels[n_old:])
    protected.comparison = comparison
    protected.evaluate(test_dataset, name="the test set given to adapt()")  # for result.evaluations and the card
    logger.info("extension comparison:\n%s", comparison)
    return protected


def _arm(name: str, description: str, train_arm, test: "_Test", base: float) -> ExtensionArm:
    start = time.perf_counter()
    adapted = train_arm()
    seconds = time.perf_counter() - start
    return ExtensionArm(name, description, test.scores(adapted, base), seconds)


def _described(protection, rehearsal, previous) -> str:
    parts = [k.replace("_", " ") for k in ("feature_rehearsal", "distillation") if getattr(protection, k)]
    if rehearsal is not None:
        parts.append("rehearsal of the given old examples")
    memory = getattr(previous, "memory", None)
    if protection.use_exemplars and memory is not None and memory.exemplars:
        parts.append(f"{len(memory.exemplars)} kept exemplars")
    parts.append(f"bias correction {protection.bias_correction}")
    return ", ".join(parts)


def _replace(previous, train, strategy, cfg, input_column, label_column):
    from ..api import adapt

    chosen = "linear-probe" if strategy in ("auto", "linear-probe") else strategy
    return adapt(previous.model, train, strategy=chosen, tokenizer=getattr(previous.backbone.preprocess, "tokenizer", None),
                 input_column=input_column or previous.config.input_column, seed=cfg.seed, batch_size=cfg.batch_size,
                 label_column=label_column or previous.config.label_column, progress_bar=False,
                 **_size_options(previous))


def _size_options(previous) -> dict[str, Any]:
    training = previous.config.training
    return {"max_length": training.max_length, **({"image_size": training.image_size} if training.image_size else {})}


def _joint(previous, train, rehearsal, compare, test, base, cfg, input_column, label_column) -> ExtensionArm:
    """The original backbone on every example given (new data, rehearsal, exemplars, joint_data)."""
    from ..api import adapt
    from ..data import read_dataset

    cols = (input_column or previous.config.input_column, label_column or previous.config.label_column)
    pairs: list[tuple[Any, Any]] = []
    for source in (train, rehearsal, getattr(compare, "joint_data", None)):
        if source is not None:
            ex = read_dataset(source, *cols)
            pairs += list(zip(ex.inputs, ex.raw_labels))
    memory = getattr(previous, "memory", None)
    old_given = len(pairs) - len(read_dataset(train, *cols).inputs)
    pairs += list(memory.exemplars) if memory is not None else []
    description = "the original backbone trained on every example given, old and new"
    if old_given == 0 and not (memory is not None and memory.exemplars):
        return ExtensionArm("joint training", description, None, note="no old examples given (rehearsal=, kept "
                            "exemplars or CompareConfig(joint_data=...))")
    strategy = previous.config.strategy.get("name", "auto")
    source = previous._base_source if previous._base_source is not None else previous.config.model
    start = time.perf_counter()
    adapted = adapt(source, pairs, strategy="auto" if strategy == "auto" else strategy, seed=cfg.seed,
                    batch_size=cfg.batch_size, progress_bar=False, **_size_options(previous))
    return ExtensionArm("joint training", description, test.scores(adapted, base), time.perf_counter() - start)


@dataclass
class _Test:
    inputs: list
    y: np.ndarray  # ids in the extended model's labels
    labels: list[str]
    n_old: int

    @classmethod
    def read(cls, previous, data, labels: list[str]) -> "_Test":
        task, cfg = get_task("single_label"), previous.config
        ex = task.read(data, cfg.input_column, cfg.label_column, require_labels=True)
        return cls(list(ex.inputs), task.encode(ex, labels, what="test set"), labels, len(previous.labels))

    def previous_accuracy(self, previous) -> float:
        """The previous model's accuracy on the old-class test examples (it knows only those classes)."""
        old = self.y < self.n_old
        predicted = [p["label"] for p in previous.predict([x for x, o in zip(self.inputs, old) if o])]
        return float(np.mean([p == self.labels[t] for p, t in zip(predicted, self.y[old])]))

    def scores(self, adapted, base: float) -> dict[str, float]:
        return self._scores(np.array([p["label"] for p in adapted.predict(self.inputs)]), base)

    def constant(self, label: str, base: float) -> dict[str, float]:
        """The scores of a model that predicts ``label`` for every input."""
        return self._scores(np.array([label] * len(self.y)), base)

    def _scores(self, predicted: np.ndarray, base: float) -> dict[str, float]:
        right = predicted == np.array([self.labels[t] for t in self.y])
        old = self.y < self.n_old
        acc_old = float(right[old].mean())
        return {"accuracy": float(right.mean()), "accuracy_old_classes": acc_old,
                "accuracy_new_classes": float(right[~old].mean()), "forgetting": base - acc_old}
