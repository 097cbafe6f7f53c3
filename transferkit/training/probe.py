"""The linear probe solved as the convex problem it is: full-batch L-BFGS, L2 strength chosen by CV.

A linear head on frozen features is L2-regularised logistic regression. A few hundred noisy AdamW
steps underfit it; a full-batch quasi-Newton solver reaches the optimum in a fraction of a second,
so the effort goes where it matters instead: choosing the regularisation strength by k-fold
cross-validation on the training examples (never on the validation split the caller holds back).

Objective, in scikit-learn's ``LogisticRegression(C=C)`` meaning so that C values and results carry
over: ``mean loss + ||W||^2 / (2 C n)``, the bias unpenalised. The loss is softmax cross-entropy for
single-label targets, except with exactly two outputs, where scikit-learn fits one sigmoid vector
(a softmax pair under the same penalty would be a different C); we do the same and return the
equivalent softmax pair ``(-w/2, w/2)``. Multi-label targets use per-label sigmoid cross-entropy,
which is scikit-learn's one-vs-rest with the same C for every label. Float64 throughout the
solve: in float32 L-BFGS ran out of precision with the weights still ~1% from the optimum.

Standardisation (off by default, ``standardize=True`` to turn on): measured, not assumed. On
EfficientNet-Lite0 features (MNIST, scikit-learn digits) scaling every feature to unit variance cost
6 points of held-out accuracy at 10 examples per class and 1.5-2 at 50, with C chosen by CV either
way; on MiniLM tweet embeddings it made no difference beyond noise (6 draws each). Why: pooled CNN
channels with little variance are mostly noise, and the L2 penalty on raw features shrinks them
hardest, a useful prior that standardising removes. The scale worry that motivates standardising is
what CV over C handles: features 10x larger need a 100x smaller C, and on features rescaled that way
(MiniLM x10, EfficientNet x0.1) the CV probe beat scikit-learn's fixed C=1 by 2-3 points. When on,
the mean and scale are folded into the returned weight and bias; CV folds share the statistics of
all training rows (unsupervised, so no label leaks).

C choice: the grid value with the lowest mean held-out log-loss over k folds; ties go to the higher
mean score (accuracy; micro-F1 at 0.5 for multi-label), then to the smaller C. Log-loss rather than
accuracy because accuracy on small folds moves in steps of 1/fold-size and is flat over a wide range
of C, so its argmax is mostly noise: on the features above, choosing by accuracy (ties -> log-loss)
was 0.1 points worse on average than choosing by log-loss and up to 0.6 worse in one setting, while
choosing by log-loss matched scikit-learn's C=1 on average (which is near-optimal on unscaled features).
Folds are stratified (``StratifiedKFold(shuffle=True, random_state=seed)``; plain ``KFold`` for
multi-label), capped at the smallest class count. With fewer than two folds possible there is no CV
and C = ``DEFAULT_C`` (scikit-learn's default). The path runs from strong to weak regularisation,
each fit warm-started from the previous one, and stops once log-loss has turned up for good.

Threads: problems under ``_SMALL`` feature entries are solved with one intra-op thread. L-BFGS on a
few hundred rows runs thousands of tiny kernels; on a busy machine every multi-threaded one waits for
a second core, which made a 600 x 64 CV ~20x slower on two shared cores. The setting is restored after.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

# 10^-3 .. 10^2 in half decades. On the features measured the best C lay in 0.3..3, moving to 0.03 and
# 30-100 when the same features were scaled by 10 and 0.1 (C scales as 1 / feature scale^2). The low end
# is cheap (strong regularisation converges in a few iterations); above 1e2 a probe is close to
# unregularised and slow to fit, and the path usually stops before then anyway (see _cv_path).
DEFAULT_GRID: tuple[float, ...] = tuple(round(10 ** (e / 2), 6) for e in range(-6, 5))
DEFAULT_C = 1.0
_TIE = 1e-9  # mean CV values closer than this count as tied
_SMALL = 4_000_000  # n x d below which the solve runs on one thread (see the module docstring)
_PATIENCE = 2  # CV stops after this many C values in a row whose log-loss is worse than the best so far
# Gradient tolerances (on the preconditioned gradient). Ranking C values needs less precision than the
# final fit: at 1e-4 the CV log-loss near its minimum moved by < 0.001 against 1e-5, at a third of the cost.
_CV_TOLERANCE = 1e-4
_FIT_TOLERANCE = 1e-7


@dataclass
class ProbeFit:
    """A solved linear head and how its regularisation was chosen."""

    weight: torch.Tensor  # (n_outputs, n_features), float32, ready for nn.Linear.weight
    bias: torch.Tensor  # (n_outputs,), float32
    C: float  # inverse L2 strength, scikit-learn's LogisticRegression meaning
    cv_score: float | None  # mean k-fold score at the chosen C; None when CV could not run
    cv_scores: dict[float, float] = field(default_factory=dict)  # C -> mean CV score, every C tried
    cv_log_losses: dict[float, float] = field(default_factory=dict)  # C -> mean CV log-loss: what chose C
    folds: int = 0  # folds used (0 when no CV)
    seconds: float = 0.0  # wall time of the whole fit, CV included
    metric: str = "accuracy"  # what cv_score measures: "accuracy" or "micro-F1"
    chosen_by: str = "CV"  # "CV", "given" (C passed in) or "default" (too few examples per class for CV)

    def describe(self) -> str:
        """One log line: the solver, the C and how it was chosen, the time."""
        if self.chosen_by == "CV":
            how = (f"chosen by {self.folds}-fold CV log-loss ({self.metric} {self.cv_score:.3f}; "
                   f"tried {len(self.cv_scores)} values)")
        elif self.chosen_by == "given":
            how = "as given, no CV"
        else:
            how = "default, no CV (fewer than 2 examples in some class)"
        return f"probe: L-BFGS, C={self.C:g} {how}, {self.seconds:.1f} s"


@dataclass
class _Problem:
    """Targets in the form the solver uses: class ids for softmax, float columns for sigmoid."""

    targets: torch.Tensor  # int64 (n,) for softmax; float64 (n, k) for sigmoid
    sigmoid: bool  # per-column sigmoid loss (multi-label, or the binary single-label case)
    pair: bool  # binary single-label: one sigmoid column, returned as a softmax pair
    n_cols: int  # columns the solver fits

    def subset(self, idx: torch.Tensor) -> _Problem:
        return _Problem(self.targets[idx], self.sigmoid, self.pair, self.n_cols)


def _problem(targets: torch.Tensor, multi_label: bool, n_outputs: int | None) -> _Problem:
    if multi_label:
        if targets.ndim != 2:
            raise ValueError(f"multi-label targets must be a (n, n_labels) multi-hot matrix; got shape "
                             f"{tuple(targets.shape)}. Fix: one 0/1 column per label.")
        return _Problem(targets.double(), True, False, targets.shape[1])
    if targets.ndim != 1 or targets.dtype.is_floating_point:
        raise ValueError(f"single-label targets must be int64 class ids of shape (n,); got {targets.dtype} "
                         f"{tuple(targets.shape)}. Fix: pass multi_label=True for multi-hot rows.")
    if len(targets) and int(targets.min()) < 0:
        raise ValueError(f"single-label targets must be class ids >= 0; got {int(targets.min())}. "
                         f"Fix: map labels to 0..n_classes-1.")
    needed = int(targets.max()) + 1 if len(targets) else 1
    n_out = needed if n_outputs is None else n_outputs
    if n_out < needed:
        raise ValueError(f"n_outputs={n_outputs} but the targets hold class id {needed - 1}. "
                         f"Fix: n_outputs >= {needed}, or leave it None.")
    if n_out == 2:
        return _Problem((targets == 1).double()[:, None], True, True, 1)
    return _Problem(targets.long(), False, False, n_out)


def _loss(logits: torch.Tensor, p: _Problem) -> torch.Tensor:
    """Mean loss per example (summed over labels for sigmoid columns)."""
    if p.sigmoid:
        return F.binary_cross_entropy_with_logits(logits, p.targets, reduction="sum") / len(logits)
    return F.cross_entropy(logits, p.targets)


@dataclass
class _Basis:
    """Training features centred (and maybe standardised), in the basis of their singular vectors.

    Why: at the optimum W lies in the span of the centred training rows (the bias absorbs the mean),
    so solving in that r = min(n, d) dimensional basis is exact, cheaper when n < d, and there the
    data part of the Hessian is diagonal (``S^2``), which gives L-BFGS a good diagonal preconditioner:
    raw CNN features are badly conditioned. A CV fold's rows span a subspace of the same basis, so
    one decomposition serves every fold and the fold solutions can seed the final fit.
    """

    mean: torch.Tensor  # (d,)
    scale: torch.Tensor  # (d,) per-feature scale, ones unless standardising
    vt: torch.Tensor  # (r, d) right singular vectors
    z: torch.Tensor  # (n, r) training rows in the basis: U * S

    @classmethod
    def of(cls, x: torch.Tensor, standardize: bool) -> _Basis:
        mean = x.mean(0)
        std = x.std(0, unbiased=False)
        scale = torch.where(std > 1e-12, std, torch.ones_like(std)) if standardize else torch.ones_like(std)
        u, s, vt = torch.linalg.svd((x - mean) / scale, full_matrices=False)
        keep = s > s[0] * 1e-9 if len(s) and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
        return cls(mean, scale, vt[keep], u[:, keep] * s[keep])

    def to_raw(self, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights in the basis -> weight and bias acting on raw features."""
        w = (w @ self.vt) / self.scale
        return w, b - w @ self.mean


def _solve(z: torch.Tensor, p: _Problem, C: float, max_iter: int, tol: float,
           init: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean loss + ||W||^2 / (2 C n) over (W, b) with L-BFGS; z is a float64 _Basis.z.

    L-BFGS runs on W / a, with a the inverse square root of each coordinate's Hessian diagonal
    bound (0.25 s_j^2 / n from the loss, 1 / (C n) from the penalty).
    """
    n, r = z.shape
    l2 = 1.0 / (2.0 * C * n)
    a = (0.25 * (z * z).sum(0) / n + 2 * l2).rsqrt()
    za = z * a
    u = torch.zeros(p.n_cols, r, dtype=z.dtype, device=z.device) if init is None else init[0] / a
    b = torch.zeros(p.n_cols, dtype=z.dtype, device=z.device) if init is None else init[1].clone()
    u.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([u, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        objective = _loss(torch.addmm(b, za, u.T), p) + l2 * ((u * a) ** 2).sum()
        objective.backward()
        return objective

    with torch.enable_grad():
        opt.step(closure)
    return (u * a).detach(), b.detach()


def _pair(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One sigmoid column -> the softmax pair with the same probabilities."""
    return torch.cat([-w / 2, w / 2]), torch.cat([-b / 2, b / 2])


def _predict_scores(logits: torch.Tensor, p: _Problem) -> tuple[float, float]:
    """(score, log-loss) of logits against the problem's targets: accuracy or micro-F1 at 0.5."""
    log_loss = float(_loss(logits, p))
    if not p.sigmoid:
        return float((logits.argmax(1) == p.targets).double().mean()), log_loss
    pred, true = logits > 0, p.targets > 0.5
    if p.pair:
        return float((pred == true).double().mean()), log_loss
    tp = float((pred & true).sum())
    wrong = float((pred ^ true).sum())
    return (1.0 if tp + wrong == 0 else 2 * tp / (2 * tp + wrong)), log_loss


def _folds(targets: torch.Tensor, multi_label: bool, folds: int, seed: int, device: torch.device) -> list[tuple]:
    """Train/test index pairs (on ``device``) for k-fold CV, or [] when fewer than two folds are possible."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    y = targets.cpu().numpy()
    if multi_label:
        k = min(folds, len(y))
        splitter = KFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    else:
        k = min(folds, int(np.bincount(y)[np.unique(y)].min())) if len(y) else 0
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    if splitter is None:
        return []
    return [(torch.from_numpy(tr).to(device), torch.from_numpy(te).to(device))
            for tr, te in splitter.split(np.zeros(len(y)), y)]


@dataclass
class _Path:
    """Mean CV score and log-loss per C tried, and the fold solutions averaged (to seed the final fit)."""

    scores: dict[float, float]
    log_losses: dict[float, float]
    mean_params: dict[float, tuple[torch.Tensor, torch.Tensor]]

    def choose(self) -> float:
        """Lowest mean CV log-loss; among ties (within _TIE) the best score, then the smallest C."""
        best = min(self.log_losses.values())
        tied = [C for C, ll in self.log_losses.items() if ll <= best + _TIE]
        return min(tied, key=lambda C: (-self.scores[C], C))


def _cv_path(z: torch.Tensor, p: _Problem, splits, grid, max_iter: int) -> _Path:
    """Walk the grid from strong to weak regularisation, every fold warm-started from its last C.

    Stops once the mean log-loss has risen _PATIENCE times in a row past its best: held-out
    log-loss is U-shaped in C, and the weakly regularised end is where L-BFGS needs most iterations.
    """
    path = _Path({}, {}, {})
    params: list = [None] * len(splits)
    rises = 0
    for C in sorted(grid):
        score = log_loss = 0.0
        for i, (train, test) in enumerate(splits):
            params[i] = _solve(z[train], p.subset(train), C, max_iter, _CV_TOLERANCE, params[i])
            s, ll = _predict_scores(torch.addmm(params[i][1], z[test], params[i][0].T), p.subset(test))
            score, log_loss = score + s / len(splits), log_loss + ll / len(splits)
        rises = rises + 1 if path.log_losses and log_loss > min(path.log_losses.values()) else 0
        path.scores[C], path.log_losses[C] = score, log_loss
        path.mean_params[C] = tuple(torch.stack(t).mean(0) for t in zip(*params))
        if rises >= _PATIENCE:
            break
    return path


@contextmanager
def _threads_for(x: torch.Tensor):
    """One intra-op thread for small CPU problems, where extra threads only add waiting."""
    previous = torch.get_num_threads()
    single = x.device.type == "cpu" and x.numel() < _SMALL and previous > 1
    if single:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if single:
            torch.set_num_threads(previous)


def cv_score(features: torch.Tensor, targets: torch.Tensor, multi_label: bool, C: float = DEFAULT_C,
             folds: int = 5, seed: int = 0, *, n_outputs: int | None = None, standardize: bool = False,
             max_iter: int = 500) -> float:
    """Mean k-fold score of the probe at one C, so callers can compare feature sets; nan without CV."""
    x, p = _prepare(features, targets, multi_label, n_outputs)
    splits = _folds(targets, multi_label, folds, seed, x.device)
    if not splits:
        return math.nan
    with _threads_for(x):
        return _cv_path(_Basis.of(x, standardize).z, p, splits, [C], max_iter).scores[C]


def fit_probe(features: torch.Tensor, targets: torch.Tensor, multi_label: bool, *, C: float | None = None,
              grid: Sequence[float] = DEFAULT_GRID, folds: int = 5, seed: int = 0, max_iter: int = 500,
              n_outputs: int | None = None, standardize: bool = False) -> ProbeFit:
    """Fit the linear head on (frozen) ``features``: C given, or chosen from ``grid`` by k-fold CV.

    ``targets``: int64 class ids (n,), or a float multi-hot (n, n_labels) matrix with
    ``multi_label=True``. ``n_outputs`` (single-label) gives rows to classes absent from the data.
    The returned weight and bias are float32 on ``features``' device and act on raw features.
    """
    start = time.perf_counter()
    values = [C] if C is not None else list(grid)
    if not values or min(values) <= 0:
        raise ValueError(f"C must be > 0 and the grid non-empty; got C={C}, grid={list(grid)}. "
                         f"Fix: pass C > 0, or a grid such as DEFAULT_GRID.")
    x, p = _prepare(features, targets, multi_label, n_outputs)
    splits = [] if C is not None else _folds(targets, multi_label, folds, seed, x.device)
    with _threads_for(x):
        basis = _Basis.of(x, standardize)
        path = _cv_path(basis.z, p, splits, list(grid), max_iter) if splits else _Path({}, {}, {})
        chosen = C if C is not None else (path.choose() if splits else DEFAULT_C)
        w, b = basis.to_raw(*_solve(basis.z, p, chosen, max_iter, _FIT_TOLERANCE, path.mean_params.get(chosen)))
    if p.pair:
        w, b = _pair(w, b)
    return ProbeFit(
        weight=w.float(), bias=b.float(), C=float(chosen),
        cv_score=path.scores.get(chosen), cv_scores=path.scores, cv_log_losses=path.log_losses,
        folds=len(splits), seconds=time.perf_counter() - start,
        metric="micro-F1" if multi_label else "accuracy",
        chosen_by="given" if C is not None else ("CV" if splits else "default"),
    )


def _prepare(features: torch.Tensor, targets: torch.Tensor, multi_label: bool,
             n_outputs: int | None) -> tuple[torch.Tensor, _Problem]:
    """Features as float64 and the targets as a _Problem, both on the features' device."""
    if features.ndim != 2 or len(features) != len(targets):
        raise ValueError(f"features must be (n, n_features) with one row per target; got {tuple(features.shape)} "
                         f"features for {len(targets)} targets.")
    x = features.detach().double()
    return x, _problem(targets.to(x.device), multi_label, n_outputs)
