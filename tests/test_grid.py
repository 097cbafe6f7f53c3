"""The grid: (timm CNN, timm ViT, BERT, GPT-2) x (linear-probe, freeze, lora, full) x (single, multi-label).

Every case checks what must always hold, against a copy of the model taken before training:
output shape and finite values; exactly the intended parameters changed; frozen BatchNorm
statistics unchanged; the loss falls on a separable toy set; save -> load gives identical
outputs, and plain timm / transformers open the saved folder with the same outputs; LoRA's
trainable-parameter count matches r*(in+out) per layer (r*(in*k*k+out) for convolutions).
"""
import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from conftest import toy_data
from transferkit import adapt, load
from transferkit.backbones import resolve_backbone
from transferkit.strategies import LoRA, lora_parameter_count

BACKBONES = ["cnn", "vit", "bert", "gpt2"]
STRATEGIES = ["linear-probe", "freeze", "lora", "full"]
TASKS = ["single_label", "multi_label"]
# head_init="random": the loop's mechanics are what the grid checks (a solved LP-FT head leaves a separable toy
# set nothing to lower); LP-FT has its own test in test_training.py.
TRAIN = dict(epochs=5, batch_size=8, learning_rate=5e-3, seed=0, early_stopping_patience=None, head_init="random",
             progress_bar=False)


def _initial_backbone(folder, result):
    """The model exactly as adapt() built it before training: same seed, same head initialisation."""
    set_seed(0)
    return resolve_backbone(folder, result.labels, result.task, {"image_size": None, "max_length": 128})


def _changed(before: dict, after: dict) -> set:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    """Train each grid case once (lazily) and share the result between the checks."""
    cache = {}

    def get(kind, strategy, task):
        key = (kind, strategy, task)
        if key not in cache:
            data = toy_data(kind, task, n_per_class=12)
            result = adapt(tiny_models[kind], data, strategy=strategy, task=task, **TRAIN)
            folder = tmp_path_factory.mktemp("saved") / "-".join(key)
            result.save(folder)
            cache[key] = (result, data, folder)
        return cache[key]

    return get


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("kind", BACKBONES)
def test_grid_case(kind, strategy, task, runs, tiny_models):
    result, data, folder = runs(kind, strategy, task)
    inputs = [x for x, _ in data]

    # output shape and finite values
    probs = result.predict_proba(inputs)
    assert probs.shape == (len(inputs), len(result.labels))
    assert np.isfinite(probs).all()
    preds = result.predict(inputs[:3])
    assert len(preds) == 3
    if task == "single_label":
        assert all(p["label"] in result.labels for p in preds)
    else:
        assert all(isinstance(p, list) for p in preds) and result.threshold is not None

    # exactly the intended parameters changed
    initial = _initial_backbone(tiny_models[kind], result)
    before, after = initial.model.state_dict(), result.model.state_dict()
    changed = _changed(before, after)
    params = {n for n, _ in initial.model.named_parameters()}
    head = set(initial.head)
    assert head <= changed, "the new head must train"
    groups = initial.groups
    if strategy == "linear-probe":
        assert changed & params == head
    elif strategy == "freeze":
        n_frozen = int(round(0.5 * len(groups)))
        frozen = {p for g in groups[:n_frozen] for p in g.params}
        trained = {p for g in groups[n_frozen:] for p in g.params}
        assert not changed & frozen
        assert changed & trained
    elif strategy == "lora":
        targets = LoRA().target_layers(initial)
        target_weights = {f"{name}.weight" for name in targets}
        assert changed & params <= head | target_weights
        assert changed & target_weights, "merged LoRA updates must change the targeted weights"
        expected = sum(lora_parameter_count(m, 8) for m in targets.values()) + sum(
            p.numel() for n, p in initial.model.named_parameters() if n in head)
        assert result.config.resolved["trainable_parameters"] == expected
    else:  # full: even the input-side group trains, at its lower rate
        assert changed & set(groups[0].params)
        assert changed & set(groups[-1].params)

    # BatchNorm in frozen groups: statistics bit-identical (num_batches_tracked too)
    frozen_prefixes = {"linear-probe": [g for g in groups], "lora": [g for g in groups],
                       "freeze": groups[: int(round(0.5 * len(groups)))], "full": []}[strategy]
    frozen_modules = {p.rsplit(".", 1)[0] for g in frozen_prefixes for p in g.params}
    bn_buffers = {n for n in before if n.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
                  and n.rsplit(".", 1)[0] in frozen_modules}
    assert not changed & bn_buffers
    if kind == "cnn" and strategy in ("linear-probe", "lora"):
        assert bn_buffers and result.config.resolved["frozen_batchnorm_layers"] > 0

    # the loss falls on a separable toy set (a solved probe head: one row, well below the uniform guess)
    losses = [h["train_loss"] for h in result.history]
    cached = strategy == "linear-probe" and kind != "gpt2"  # GPT-2 pools after its head: no replay
    assert result.config.resolved["feature_cache"] == cached
    if cached:
        uniform = np.log(len(result.labels)) if task == "single_label" else np.log(2)
        assert len(losses) == 1 and losses[0] < 0.9 * uniform, losses
        assert result.config.resolved["probe"]["C"] > 0
    else:
        assert losses[-1] < losses[0], losses
        assert len(losses) == TRAIN["epochs"]

    # save -> load gives identical outputs
    reloaded = load(folder)
    assert reloaded.labels == result.labels and reloaded.threshold == result.threshold
    np.testing.assert_array_equal(reloaded.predict_proba(inputs), probs)
    assert reloaded.history == result.history


@pytest.mark.parametrize("kind", BACKBONES)
def test_plain_library_opens_saved_folder(kind, runs):
    """The saved folder is the family's own layout: plain timm / transformers get the same outputs."""
    result, data, folder = runs(kind, "lora", "single_label")
    inputs = [x for x, _ in data[:6]]
    ours = result.predict_proba(inputs)
    batch = result.backbone.preprocess(inputs if kind in ("bert", "gpt2") else [x.convert("RGB") for x in inputs])
    if kind in ("cnn", "vit"):
        import timm

        model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        assert model.pretrained_cfg["label_names"] == result.labels
        logits = model(batch["pixel_values"])
    elif kind == "bert":  # a sentence-transformers folder: its last module (Dense) outputs the logits
        from sentence_transformers import SentenceTransformer
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(folder)
        assert [config.id2label[i] for i in range(len(result.labels))] == result.labels
        logits = SentenceTransformer(str(folder), device="cpu").encode(inputs, convert_to_tensor=True).cpu()
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        assert [model.config.id2label[i] for i in range(len(result.labels))] == result.labels
        tok = AutoTokenizer.from_pretrained(folder)
        logits = model(**tok(inputs, padding=True, return_tensors="pt")).logits
    assert list((folder).glob("*.bin")) == [] and list(folder.glob("*.safetensors"))
    with torch.no_grad():
        np.testing.assert_allclose(logits.softmax(-1).detach().numpy(), ours, atol=1e-5)
