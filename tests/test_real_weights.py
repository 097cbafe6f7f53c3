"""Every strategy trains on real pretrained backbones shipped in PyPI packages (installed by .ci/run):
EfficientNet-Lite0 (ImageNet) on handwritten digits and all-MiniLM-L6-v2 on tweet sentiment."""
import numpy as np
import pytest

from transferkit import adapt, load
from transferkit.assets import load_digits_mnist5k, load_tweets

pytestmark = pytest.mark.real
STRATEGIES = ["linear-probe", "freeze", "lora", "full"]


def _few_per_class(labels, k, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False) for c in np.unique(labels)])


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits_mnist5k()
    idx = _few_per_class(labels, 6)
    return [(images[i], str(labels[i])) for i in idx]


@pytest.fixture(scope="module")
def tweets():
    texts, labels = load_tweets()
    idx = _few_per_class(labels, 12)
    return [(texts[i], labels[i]) for i in idx]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_efficientnet_lite0_every_strategy(strategy, digits, tmp_path):
    result = adapt("packaged:efficientnet_lite0", digits, strategy=strategy, epochs=1, batch_size=16,
                   image_size=64, progress_bar=False)
    assert result.config.family == "timm" and result.labels == [str(i) for i in range(10)]
    assert np.isfinite(result.history[0]["train_loss"])
    if strategy in ("linear-probe", "lora"):
        assert result.config.resolved["frozen_batchnorm_layers"] > 40  # EfficientNet is full of BatchNorm
    probs = result.predict_proba([x for x, _ in digits[:4]])
    result.save(tmp_path / "m")
    np.testing.assert_array_equal(load(tmp_path / "m").predict_proba([x for x, _ in digits[:4]]), probs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_minilm_every_strategy(strategy, tweets, tmp_path):
    result = adapt("packaged:all-MiniLM-L6-v2", tweets, strategy=strategy, epochs=1, batch_size=16,
                   max_length=48, progress_bar=False)
    assert result.config.family == "encoder" and result.labels == ["negative", "neutral", "positive"]
    assert np.isfinite(result.history[0]["train_loss"])
    if strategy == "lora":
        # 6 layers x (query, key, value, attention.output.dense, intermediate, output) Linear layers at r=8
        assert result.config.resolved["trainable_parameters"] < 0.1 * result.config.resolved["total_parameters"]
    texts = [x for x, _ in tweets[:4]]
    probs = result.predict_proba(texts)
    result.save(tmp_path / "m")
    np.testing.assert_array_equal(load(tmp_path / "m").predict_proba(texts), probs)
