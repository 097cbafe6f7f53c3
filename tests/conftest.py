"""Offline by design: nothing downloads. Tiny models are built from configs once per session and
saved to folders, then loaded through the same path a user's model name takes."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from transferkit import testing  # noqa: E402

BUILDERS = {
    "cnn": lambda d: testing.tiny_timm(d, "test_resnet"),
    "vit": lambda d: testing.tiny_timm(d, "test_vit"),
    "bert": testing.tiny_bert,
    "gpt2": testing.tiny_gpt2,
    "llama": testing.tiny_llama,
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{'cnn'|'vit'|'bert'|'gpt2'|'llama': folder} of tiny pretrained-like models saved as a user would have them."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {name: str(build(root / name)) for name, build in BUILDERS.items()}


def toy_data(kind: str, task: str, n_per_class: int = 8, seed: int = 0):
    multi = task == "multi_label"
    if kind in ("cnn", "vit"):
        return testing.toy_images(n_per_class, multi_label=multi, seed=seed)
    return testing.toy_texts(n_per_class, multi_label=multi, seed=seed)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fresh Hub-compatible server on 127.0.0.1 (users alice and bob, tokens hub_server.ALICE and
    hub_server.BOB) with this process's huggingface_hub pointed at it; see tests/hub_server.py."""
    from hub_server import serving

    with serving(monkeypatch, tmp_path / "hf-home") as server:
        yield server
