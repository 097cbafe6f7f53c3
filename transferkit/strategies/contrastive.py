"""contrastive: tune the body so same-class examples embed together, then solve a linear probe on it.

SetFit's recipe (Tunstall et al. 2022), done in-batch as FastFit does (Yehudai & Bendel 2024): with
a few labels per class, the probe on a frozen embedding is limited by how well that embedding
separates these particular classes; a short contrastive phase on the body can fix that, and the
convex probe (``training.probe``) then reads the tuned embedding. The head takes no part in the
contrastive phase, so :meth:`Contrastive.apply` returns the body's parameter groups only.

Measured (scratch runs, 2 busy CPU cores; all-MiniLM-L6-v2 mean-pooled + normalised, 128 tokens;
scikit-learn LogisticRegression C=1 on the embeddings; a stratified test set fixed by seed 0, k
examples per class drawn from the rest; mean +- sd over seeds 0-2; seconds: one k=10 run alone on
the machine, model loading to fitted head):

==========================================  ===================  ============  ==============
arm                                         tweets k=10 (1000)   k=50, seed 0  BBC k=10 (500)
==========================================  ===================  ============  ==============
frozen embedding + LR                       61.4 +- 3.0          68.1          92.8 +- 1.2
contrastive, loss="cosine" (the default)    61.3 +- 2.1, 40 s    67.8, 188 st  94.2 +- 1.3
contrastive, loss="supcon", t=0.2           61.6 +- 1.7          -             -
contrastive, loss="supcon", t=0.07          61.8 (seed 0 only)   -             -
SetFit 1.2.0 defaults, same MiniLM          60.4 +- 3.3, 55 s    -             -
==========================================  ===================  ============  ==============

On the three-class sentiment task neither this nor SetFit itself beats the frozen probe (the
embedding is not about sentiment and 30 labels do not teach it); on five news topics the tuned
embedding gains 1.2-1.6 points on every seed. The default budget is SetFit's order of work at k=10
(40 steps of 16 examples: 640 example passes, against SetFit's 38 steps of 16 pairs = 1,216) and
far less above it (k=50: 188 steps against SetFit's 938). "cosine" is SetFit's objective and was
as good as SupCon on the same draws; SupCon at t=0.2 did no worse than at 0.07. Images are refused
(see :meth:`Contrastive.check`): on MNIST digits with EfficientNet-Lite0 it measured no better than
the probe. Single-label classification only: with several labels per example "same class" has no
single meaning.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import StrategyError, did_you_mean
from .base import Strategy, as_task, freeze_all, lower_count, register_strategy, unfreeze

LOSS_CHOICES = ("supcon", "cosine")
GROUP_CHOICES = ("all", "upper")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


@register_strategy
@dataclass
class Contrastive(Strategy):
    """Contrastive body tuning, then the probe. Options:

    - ``loss``: "cosine" (SetFit's CosineSimilarityLoss) or "supcon" (supervised contrastive,
      FastFit's kind), both over every pair of a class-balanced batch.
    - ``temperature``: SupCon's softmax temperature (unused by "cosine").
    - ``steps``: optimizer steps; None means ``passes`` passes over the examples, clipped to
      ``[min_steps, max_steps]``: 40 steps up to 32 examples at batch 16, then 20 passes (k=50 x 3
      classes: 188), at most 1,000.
    - ``batch_size``: examples per contrastive batch; None means the run's ``batch_size``.
    - ``lr_scale``: the body's rate relative to the run's ``learning_rate`` (the head's rate in
      other strategies): 0.02 x adapt's default 1e-3 = 2e-5, SetFit's body rate.
    - ``groups``: which layer groups are tuned: "all", "upper" (the upper half), or the upper N.
    - ``C``, ``folds``: the probe fitted afterwards, as in :class:`LinearProbe` (C None: chosen by CV).
    """

    name = "contrastive"
    solves_head = True
    loss: str = "cosine"
    temperature: float = 0.2
    steps: int | None = None
    passes: float = 20.0
    min_steps: int = 40
    max_steps: int = 1000
    batch_size: int | None = None
    lr_scale: float = 0.02
    warmup_ratio: float = 0.1
    groups: str | int = "all"
    C: float | None = None
    folds: int = 5

    def __post_init__(self) -> None:
        if self.loss not in LOSS_CHOICES:
            raise StrategyError(f"contrastive loss must be one of {LOSS_CHOICES}, got {self.loss!r}."
                                f"{did_you_mean(str(self.loss), LOSS_CHOICES)}")
        for key, least in (("steps", 1), ("batch_size", 2)):
            value = getattr(self, key)
            if value is not None and not (_is_int(value) and value >= least):
                raise StrategyError(f"contrastive {key} must be None or an integer >= {least}, got {value!r}.")
        if not (_is_int(self.min_steps) and _is_int(self.max_steps) and 1 <= self.min_steps <= self.max_steps):
            raise StrategyError(f"contrastive needs integers 1 <= min_steps <= max_steps, got {self.min_steps!r} "
                                f"and {self.max_steps!r}.")
        for key, hint in (("temperature", " (0.05-0.5 is usual)"), ("passes", ""),
                          ("lr_scale", " (the body's rate is lr_scale x learning_rate)")):
            if not _is_positive(getattr(self, key)):
                raise StrategyError(f"contrastive {key} must be a number > 0{hint}, got {getattr(self, key)!r}.")
        if not (isinstance(self.warmup_ratio, (int, float)) and 0 <= self.warmup_ratio < 1):
            raise StrategyError(f"contrastive warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        if not ((_is_int(self.groups) and self.groups >= 1) or self.groups in GROUP_CHOICES):
            raise StrategyError(f"contrastive groups must be one of {GROUP_CHOICES} or an integer >= 1 (the upper "
                                f"N layer groups), got {self.groups!r}.")
        if self.C is not None and not _is_positive(self.C):
            raise StrategyError(f"contrastive C must be None (chosen by cross-validation) or a number > 0, "
                                f"got {self.C!r}.")
        if not (_is_int(self.folds) and self.folds >= 2):
            raise StrategyError(f"contrastive folds must be an integer >= 2, got {self.folds!r}.")

    def check(self, task, modality: str) -> None:
        """Refuse, before anything loads, what the strategy cannot do or did not measure better at."""
        if modality == "image":
            raise StrategyError(
                "strategy 'contrastive' is for text encoders: on images it measured no better than the linear probe "
                "(MNIST digits, EfficientNet-Lite0 at 112 px, 10 per class: 79.3% tuned on augmented views, 75.3% "
                "without augmentation, 79.7% for the probe on frozen features). Use strategy='linear-probe', or "
                "'full' / 'lora' with more examples per class.")
        super().check(task, modality)
        task = as_task(task)
        if not task.one_label_per_example:
            raise StrategyError(f"strategy 'contrastive' needs a single-label task (one class per example), got "
                                f"task={task.name!r}: with several labels per example 'same class' has no single "
                                "meaning. Use strategy='linear-probe' or 'lora'.")

    def chosen_groups(self, backbone):
        n = len(backbone.groups)
        if self.groups == "all":
            return backbone.groups
        count = n - n // 2 if self.groups == "upper" else lower_count(n, self.groups, None)
        return backbone.groups[n - count:]

    def tune(self, backbone, inputs, y, param_groups, cfg):
        """The contrastive phase on the body (``training.contrastive``); its record for ``resolved``."""
        from ..training.contrastive import contrastive_tune

        return contrastive_tune(backbone, inputs, y, param_groups, cfg, self).to_dict()

    def apply(self, backbone, learning_rate):
        """Freeze everything, then unfreeze the chosen body groups; the head stays frozen (the probe solves it)."""
        freeze_all(backbone.model)
        head = set(backbone.head)
        return [{"name": g.name, "params": unfreeze(backbone.model, [p for p in g.params if p not in head]),
                 "lr": learning_rate * self.lr_scale} for g in self.chosen_groups(backbone)]
