"""The L-BFGS linear probe: scikit-learn parity at fixed C, deterministic CV choice of C, the result
as an nn.Linear, and the small-data edges (no CV possible, classes absent from the data)."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from transferkit.training.probe import DEFAULT_C, DEFAULT_GRID, ProbeFit, cv_score, fit_probe


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """scikit-learn's reference fits are small; BLAS threads only make them wait on a shared machine."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    """scikit-learn digits, pixels scaled to [0, 1]: a shuffled 600-example train split and 600 held out."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    return x[:600], y[:600], x[600:1200], y[600:1200]


def _logits(fit: ProbeFit, x: np.ndarray) -> np.ndarray:
    return (torch.tensor(x, dtype=torch.float32) @ fit.weight.T + fit.bias).numpy()


def _multi_label(n: int, seed: int = 0):
    """Three labels that depend linearly (plus noise) on 12 features, so each is learnable but not trivially."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    truth = rng.normal(size=(12, 3))
    y = (x @ truth + rng.normal(scale=1.5, size=(n, 3)) > 0.3).astype(np.float32)
    return x, y


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("classes", [10, 2])
def test_matches_sklearn_at_fixed_C(digits, C, classes):
    """Same C, same features -> sklearn's solution: near-identical coefficients, same held-out accuracy."""
    x, y, x_test, y_test = digits
    y, y_test = y % classes, y_test % classes  # classes=2: odd vs even digits, sklearn's binary formulation
    fit = fit_probe(torch.tensor(x, dtype=torch.float32), torch.tensor(y), False, C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn may warn about lbfgs iterations at large C
        sk = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(x, y)
    ours = (_logits(fit, x_test).argmax(1) == y_test).mean()
    assert abs(ours - sk.score(x_test, y_test)) <= 0.01
    assert (_logits(fit, x_test).argmax(1) == sk.predict(x_test)).mean() >= 0.99
    coef = fit.weight.numpy()
    if classes == 2:  # the softmax pair (-w/2, w/2) carries sklearn's single vector as its difference
        coef = (coef[1] - coef[0])[None]
    assert np.abs(coef - sk.coef_).max() <= 0.02 * np.abs(sk.coef_).max()
    assert fit.C == C and fit.cv_score is None and fit.folds == 0


def test_standardized_matches_sklearn_on_standardized_features(digits):
    """standardize=True is sklearn on StandardScaler'd features, folded back to act on raw features."""
    x, y, x_test, y_test = digits
    fit = fit_probe(torch.tensor(x, dtype=torch.float32), torch.tensor(y), False, C=0.1, standardize=True)
    scaler = StandardScaler().fit(x)
    sk = LogisticRegression(C=0.1, max_iter=5000, tol=1e-8).fit(scaler.transform(x), y)
    assert (_logits(fit, x_test).argmax(1) == sk.predict(scaler.transform(x_test))).mean() >= 0.99
    raw_coef = sk.coef_ / np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    assert np.abs(fit.weight.numpy() - raw_coef).max() <= 0.02 * np.abs(raw_coef).max()


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_multi_label_matches_one_vs_rest(C):
    x, y = _multi_label(400)
    sk = OneVsRestClassifier(LogisticRegression(C=C, max_iter=5000, tol=1e-8)).fit(x[:300], y[:300])
    fit = fit_probe(torch.tensor(x[:300]), torch.tensor(y[:300]), True, C=C)
    ours = _logits(fit, x[300:]) > 0
    theirs = sk.predict(x[300:]).astype(bool)
    assert (ours == theirs).mean() >= 0.99
    coef = np.stack([e.coef_[0] for e in sk.estimators_])
    assert np.abs(fit.weight.numpy() - coef).max() <= 0.02 * np.abs(coef).max()


def test_cv_picks_from_grid_deterministically(digits):
    x, y = torch.tensor(digits[0], dtype=torch.float32), torch.tensor(digits[1])
    grid = (0.01, 0.1, 1.0, 10.0)
    a = fit_probe(x, y, False, grid=grid, folds=3, seed=5)
    b = fit_probe(x, y, False, grid=grid, folds=3, seed=5)
    assert a.C in grid and a.folds == 3
    assert set(a.cv_scores) == set(grid)
    assert a.C == b.C and a.cv_scores == b.cv_scores and torch.equal(a.weight, b.weight)
    assert a.cv_log_losses[a.C] == min(a.cv_log_losses.values()) and a.cv_score == a.cv_scores[a.C]
    assert 0.9 < a.cv_score <= 1.0
    assert "3-fold CV" in a.describe() and "\n" not in a.describe()
    assert cv_score(x, y, False, a.C, 3, 5) == pytest.approx(a.cv_score)


def test_multi_label_cv_reports_micro_f1():
    x, y = _multi_label(150)
    fit = fit_probe(torch.tensor(x), torch.tensor(y), True, grid=(0.1, 1.0), folds=3)
    assert fit.folds == 3 and fit.C in (0.1, 1.0)
    assert 0.5 < fit.cv_score <= 1.0
    assert "micro-F1" in fit.describe()


@pytest.mark.parametrize("multi_label", [False, True])
def test_loads_into_nn_linear(digits, multi_label):
    if multi_label:
        x, y = _multi_label(60)
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    else:
        x, y = torch.tensor(digits[0][:100], dtype=torch.float32), torch.tensor(digits[1][:100])
    fit = fit_probe(x, y, multi_label, grid=(0.1, 1.0), folds=2)
    assert fit.weight.dtype == fit.bias.dtype == torch.float32
    head = torch.nn.Linear(x.shape[1], fit.weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(fit.weight)
        head.bias.copy_(fit.bias)
        torch.testing.assert_close(head(x), x @ fit.weight.T + fit.bias)


@pytest.mark.parametrize("per_class", [1, 2])
def test_tiny_data_without_cv(digits, per_class):
    """With 1 example per class no fold split is possible: C falls back to the default, no CV score."""
    x, y = digits[0], digits[1]
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    fit = fit_probe(torch.tensor(x[idx], dtype=torch.float32), torch.tensor(y[idx]), False)
    if per_class == 1:
        assert fit.folds == 0 and fit.cv_score is None and fit.C == DEFAULT_C and fit.cv_scores == {}
        assert "no CV" in fit.describe()
    else:
        assert fit.folds == 2 and fit.C in DEFAULT_GRID
    assert (_logits(fit, x[idx]).argmax(1) == y[idx]).all()  # 10-20 points in 64 dims: separable


@pytest.mark.parametrize("C", [None, 1.0])
def test_absent_classes_get_rows_never_predicted(digits, C):
    x, y = digits[0], digits[1]
    keep = y < 3
    fit = fit_probe(torch.tensor(x[keep], dtype=torch.float32), torch.tensor(y[keep]), False, C=C,
                    n_outputs=5, folds=3)
    assert fit.weight.shape == (5, x.shape[1]) and fit.bias.shape == (5,)
    assert torch.isfinite(fit.weight).all() and torch.isfinite(fit.bias).all()
    assert set(_logits(fit, digits[2]).argmax(1)) <= {0, 1, 2}


def test_n_outputs_two_with_one_class_present(digits):
    """n_outputs=2 takes the binary route even when only class 0 is in the data."""
    x = torch.tensor(digits[0][:20], dtype=torch.float32)
    fit = fit_probe(x, torch.zeros(20, dtype=torch.long), False, n_outputs=2)
    assert fit.weight.shape == (2, 64)
    assert (_logits(fit, digits[2]).argmax(1) == 0).all()


def test_thread_setting_is_restored(digits):
    before = torch.get_num_threads()
    fit_probe(torch.tensor(digits[0][:60], dtype=torch.float32), torch.tensor(digits[1][:60]), False, C=1.0)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad, match", [
    (dict(multi_label=False, targets=torch.arange(10) - 1), "class ids >= 0"),
    (dict(multi_label=False, targets=torch.ones(10, 2)), "multi_label=True"),
    (dict(multi_label=True, targets=torch.ones(10, dtype=torch.long)), "multi-hot"),
    (dict(multi_label=False, targets=torch.arange(10) % 4, n_outputs=3), "n_outputs >= 4"),
])
def test_bad_targets_say_the_fix(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_probe(torch.randn(10, 3), **bad)


@pytest.mark.parametrize("kw", [dict(C=0.0), dict(grid=()), dict(grid=(1.0, -1.0))])
def test_bad_C_or_grid_says_the_fix(kw):
    with pytest.raises(ValueError, match="C > 0"):
        fit_probe(torch.randn(10, 3), torch.arange(10) % 2, False, **kw)
