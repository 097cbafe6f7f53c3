"""Encoders classify from the model's own pooling, and save as sentence-transformers folders.

The reference for every pooling is sentence-transformers itself: the features transferkit computes
from a tiny sentence-transformers folder must equal ``SentenceTransformer(folder).encode``, and a
saved classifier must open in sentence-transformers (logits), in transformers (the body) and in
transferkit (identical probabilities). Plain BERT folders get mean pooling; GPT-2 keeps its last token.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from conftest import toy_data
from transferkit import adapt, load, testing
from transferkit.backbones import resolve_backbone
from transferkit.backbones.pooling import Pooling, PooledTextClassifier
from transferkit.backbones.sentence_folder import pooling_config, pooling_modes

TRAIN = dict(epochs=2, batch_size=8, learning_rate=5e-3, seed=0, early_stopping_patience=None, progress_bar=False)
# lengths from 1 to 12 words, so every batch is padded and every pooler must ignore the padding
TEXTS = ["good", "bad awful", "the pizza is very good", "guitar song drums album band piano and the match was great",
         "sad", "love love love this wonderful happy song that is it very good and"]
LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory):
    """A tiny sentence-transformers download: BERT + mean pooling + Normalize, as all-MiniLM-L6-v2 is."""
    return testing.tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "minilm-like")


def _features(backbone, texts):
    backbone.model.eval()
    with torch.no_grad():
        return backbone.model.forward_features(**backbone.preprocess(texts))


def _logits(result, texts):
    result.model.eval()
    with torch.no_grad():
        return result.backbone.logits(result.backbone.preprocess(texts))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mode", ["cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken",
                                  ("cls", "mean")])
def test_pooling_equals_sentence_transformers(mode, normalize, tmp_path):
    folder = testing.tiny_sentence_transformer(tmp_path / "st", pooling=mode, normalize=normalize)
    backbone = resolve_backbone(str(folder), LABELS, "single_label", {})
    name = "+".join((mode,) if isinstance(mode, str) else mode) + ("+normalize" if normalize else "")
    assert backbone.details["pooling"] == f"{name} (from 1_Pooling/config.json)"
    ours = _features(backbone, TEXTS)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_tensor=True, batch_size=4)
    assert ours.shape == theirs.shape == (len(TEXTS), backbone.num_features)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-6, rtol=1e-5)


def test_pooling_config_round_trip():
    # legacy booleans when the modes are in sentence-transformers' fixed order, named modes otherwise
    legacy = pooling_config(Pooling(("cls", "mean")), 32)
    assert legacy["word_embedding_dimension"] == 32 and legacy["pooling_mode_cls_token"] and "pooling_mode" not in legacy
    assert pooling_modes(legacy) == ("cls", "mean")
    named = pooling_config(Pooling(("mean", "cls")), 32)
    assert named == {"embedding_dimension": 32, "pooling_mode": ["mean", "cls"]}
    assert pooling_modes(named) == ("mean", "cls")
    assert pooling_modes({"word_embedding_dimension": 8}) == ("mean",)  # sentence-transformers' own fallback
    with pytest.raises(ValueError, match="unknown pooling mode"):
        Pooling(("median",))


def test_linear_probe_saves_a_sentence_transformers_folder(st_folder, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel

    data = toy_data("bert", "single_label", n_per_class=12)
    result = adapt(str(st_folder), data, strategy="linear-probe", **TRAIN)
    assert result.config.resolved["pooling"] == "mean+normalize (from 1_Pooling/config.json)"
    assert result.config.resolved["feature_cache"] is True  # the single Linear head replays on the pooled features
    assert isinstance(result.model, PooledTextClassifier) and result.backbone.head == ["classifier.weight", "classifier.bias"]
    assert [g.name for g in result.backbone.groups] == ["embeddings", "layer.0", "layer.1"]
    folder = result.save(tmp_path / "saved")
    texts = [x for x, _ in data] + TEXTS

    # (a) transferkit reloads it with identical outputs
    np.testing.assert_array_equal(load(folder).predict_proba(texts), result.predict_proba(texts))
    # (b) sentence-transformers returns the logits
    logits = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True, batch_size=5)
    torch.testing.assert_close(logits.cpu(), _logits(result, texts), atol=1e-5, rtol=1e-5)
    # (c) transformers opens the body, complete (the unused [CLS] pooler's weights are saved too)
    body, info = AutoModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert [body.config.id2label[i] for i in range(len(result.labels))] == result.labels
    batch = result.backbone.preprocess(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(body.eval()(**batch).last_hidden_state,
                                   result.model.body(**batch).last_hidden_state)

    modules = json.loads((folder / "modules.json").read_text())
    assert [(m["path"], m["type"].rsplit(".", 1)[-1]) for m in modules] == [
        ("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize"), ("3_Dense", "Dense")]
    dense = json.loads((folder / "3_Dense" / "config.json").read_text())
    assert dense == {"in_features": 32, "out_features": 2, "bias": True,
                     "activation_function": "torch.nn.modules.linear.Identity"}
    assert set(load_file(str(folder / "3_Dense" / "model.safetensors"))) == {"linear.weight", "linear.bias"}
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]


def test_plain_bert_folder_gets_mean_pooling(tiny_models, tmp_path):
    backbone = resolve_backbone(tiny_models["bert"], LABELS, "single_label", {})
    assert backbone.details["pooling"].startswith("mean (default for encoders without sentence-transformers files")
    assert isinstance(backbone.model, PooledTextClassifier) and not backbone.model.pooling.normalize
    assert not [n for n, _ in backbone.model.named_parameters() if "pooler" in n]  # unused: taken out
    hidden = backbone.model.body(**backbone.preprocess(TEXTS[:2]))
    mask = backbone.preprocess(TEXTS[:2])["attention_mask"].unsqueeze(-1).float()
    expected = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(_features(backbone, TEXTS[:2]), expected)


def test_gpt2_keeps_last_token_pooling(tiny_models):
    from transformers import GPT2ForSequenceClassification

    backbone = resolve_backbone(tiny_models["gpt2"], LABELS, "single_label", {})
    assert isinstance(backbone.model, GPT2ForSequenceClassification) and "pooling" not in backbone.details
    assert backbone.model.config.pad_token_id is not None  # what makes transformers pool the last non-pad token


def test_lora_on_a_sentence_transformer_trains_merges_and_reloads(st_folder, tmp_path):
    data = toy_data("bert", "single_label", n_per_class=12)
    result = adapt(str(st_folder), data, strategy="lora", **TRAIN)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert isinstance(result.model, PooledTextClassifier)  # merged back into the plain module
    assert not [n for n, _ in result.model.named_parameters() if "lora" in n]
    folder = result.save(tmp_path / "lora")
    texts = [x for x, _ in data[:8]] + TEXTS
    np.testing.assert_array_equal(load(folder).predict_proba(texts), result.predict_proba(texts))
    logits = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(logits.cpu(), _logits(result, texts), atol=1e-5, rtol=1e-5)


def test_from_scratch_keeps_the_pooling_and_not_the_weights(st_folder):
    pretrained = resolve_backbone(str(st_folder), LABELS, "single_label", {})
    scratch = resolve_backbone(str(st_folder), LABELS, "single_label", {"pretrained": False})
    assert scratch.details["pooling"] == pretrained.details["pooling"]
    assert [g.name for g in scratch.groups] == [g.name for g in pretrained.groups]
    word = "body.embeddings.word_embeddings.weight"
    assert not torch.equal(dict(scratch.model.named_parameters())[word], dict(pretrained.model.named_parameters())[word])


def test_held_modules_keep_their_pooling(st_folder):
    from transformers import AutoModel

    held = AutoModel.from_pretrained(str(st_folder))  # name_or_path points at the sentence-transformers folder
    backbone = resolve_backbone(held, LABELS, "single_label", {})
    assert backbone.details["pooling"].startswith("mean+normalize (from 1_Pooling/config.json")
    assert backbone.model.body is not held  # a copy: training never changes the user's object
    st = SentenceTransformer(str(st_folder), device="cpu")
    from_st = resolve_backbone(st, LABELS, "single_label", {})
    assert from_st.details["pooling"].startswith("mean+normalize")
    torch.testing.assert_close(_features(from_st, TEXTS), st.encode(TEXTS, convert_to_tensor=True).cpu(), atol=1e-6, rtol=1e-5)


def _tiny_distilbert(directory):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    tokenizer = AutoTokenizer.from_pretrained(str(testing.tiny_bert(directory / "bert")))
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # DistilBERT takes no token_type_ids
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64, pad_token_id=0, dropout=0.0, attention_dropout=0.0)
    DistilBertModel(config).save_pretrained(str(directory / "distil"))
    tokenizer.save_pretrained(str(directory / "distil"))
    return directory / "distil"


def test_distilbert_has_one_linear_head_and_mean_pooling(tmp_path):
    folder = _tiny_distilbert(tmp_path)
    data = toy_data("bert", "single_label", n_per_class=12)
    result = adapt(str(folder), data, strategy="linear-probe", **TRAIN)
    assert result.backbone.head == ["classifier.weight", "classifier.bias"]  # no pre_classifier any more
    assert result.config.resolved["feature_cache"] is True
    assert result.config.resolved["layer_groups"] == ["embeddings", "layer.0", "layer.1"]
    assert result.config.resolved["pooling"].startswith("mean (default")
    saved = result.save(tmp_path / "saved")
    np.testing.assert_array_equal(load(saved).predict_proba(TEXTS), result.predict_proba(TEXTS))


def test_folders_saved_by_transferkit_0x_still_load(tiny_models, tmp_path):
    """Before pooling, encoders were saved as plain BertForSequenceClassification folders."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    result = adapt(tiny_models["bert"], toy_data("bert", "single_label"), strategy="linear-probe", **TRAIN)
    folder = result.save(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    (old / "transferkit.json").write_text((folder / "transferkit.json").read_text())
    labels = result.labels
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(
        tiny_models["bert"], num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(str(old))
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    tokenizer.save_pretrained(str(old))

    reloaded = load(old)
    assert type(reloaded.model) is BertForSequenceClassification
    with torch.no_grad():
        expected = model.eval()(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), expected, atol=1e-6)
    resaved = reloaded.save(tmp_path / "resaved")  # and it saves back in the same 0.x layout
    assert not (resaved / "modules.json").exists()
    np.testing.assert_array_equal(load(resaved).predict_proba(TEXTS), reloaded.predict_proba(TEXTS))


def test_an_adapted_model_can_be_adapted_again(st_folder):
    first = resolve_backbone(str(st_folder), LABELS, "single_label", {})
    again = resolve_backbone(first.model, ["a", "b", "c"], "single_label", {"tokenizer": first.preprocess.tokenizer})
    assert again.details["pooling"].startswith("mean+normalize") and again.model.classifier.out_features == 3
    torch.testing.assert_close(_features(again, TEXTS), _features(first, TEXTS))
