"""Token classification (named-entity recognition): one tag per word, a BERT-family encoder, entity scores.

Data: a dict or ``datasets.Dataset`` with a column of word lists (``tokens``) and one of tag lists
(``ner_tags``: names, or ids of a ``ClassLabel`` sequence whose names are used); a list of
``(words, tags)`` pairs; or a CoNLL file (one word per line, its tag in the last column, a blank
line between sentences, ``-DOCSTART-`` lines skipped). Any scheme: BIO, BIOES, or plain types.

Word tags meet sub-words in ``collate``: each word's **first** sub-token carries its tag, the
others are ignored by the loss (the tokenizer's ``word_ids()``), and a word the tokenizer drops
(or truncates away) is predicted ``O``. ``predict`` takes raw strings, splits them into words with
offsets (``entities.split_words``) and returns whole-word entities with the keys of transformers'
``pipeline("token-classification", aggregation_strategy="simple")``; the label of a word's first
sub-token decides, as with ``aggregation_strategy="first"``. Scores: exact-span entity F1 (the
CoNLL way, ``entities.py``), word accuracy and the loss.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from . import entities
from .base import Task, random_split, register_task
from .token_data import Words, read_sentences, recognises

logger = logging.getLogger("transferkit")
MIN_VALIDATION_SENTENCES = 5
IGNORE = -100


@register_task
class TokenClassification(Task):
    name = "token_classification"
    aliases = ("token-classification", "ner", "NER")
    head = "token"
    metric = "entity_f1"
    stop_on_loss = True  # entity F1 stays at 0 while every word is still tagged O; the loss falls meanwhile
    default_strategy = "lora"
    strategy_reason = ("token classification: LoRA on every layer with a new tag head (no linear probe: a tag per "
                       "word is not one feature vector per example)")

    label_word = "tag"
    example_word = "sentences"
    percent_metrics = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")

    # --- data -------------------------------------------------------------------------------------
    def recognises(self, data: Any) -> bool:
        return recognises(data)

    def read(self, data, input_column, label_column, require_labels=True):
        return read_sentences(data, input_column, label_column, require_labels)

    def claims(self, examples):
        return bool(examples.inputs) and isinstance(examples.inputs[0], list)

    def build_labels(self, examples):
        if examples.label_names:
            return [str(n) for n in examples.label_names]
        found = {t for tags in examples.raw_labels for t in tags}
        return ([entities.OUTSIDE] if entities.OUTSIDE in found else []) + sorted(found - {entities.OUTSIDE})

    def encode(self, examples, labels, what):
        if examples.raw_labels is None:
            return None
        index = {name: i for i, name in enumerate(labels)}
        out = np.empty(len(examples.raw_labels), dtype=object)
        for i, tags in enumerate(examples.raw_labels):
            unknown = next((t for t in tags if t not in index), None)
            if unknown is not None:
                raise DataError(f"the {what} has tag {unknown!r} in sentence {i} ({_show(examples.inputs[i])}), which "
                                f"the training set never had (its tags: {labels[:20]}). Fix the tag, or add "
                                "sentences with it to the training data.")
            out[i] = np.array([index[t] for t in tags], dtype=np.int64)
        return out

    def check(self, y, labels):
        if len(labels) < 2:
            raise DataError(f"every word of the training set has the tag {labels!r}: a tagger needs at least 2 tags "
                            "(e.g. 'O' and an entity type). Check the tag column.")

    def prepare(self, inputs, y, preprocess, what, training=True):
        _warn_cut_words(inputs, preprocess, what)
        return inputs, y

    def split(self, y, n, fraction, seed):
        return random_split(n, fraction, seed, MIN_VALIDATION_SENTENCES)

    def validation_ok(self, y, n, n_labels):
        return n >= MIN_VALIDATION_SENTENCES

    def counts(self, y, labels):
        if y is None or len(y) == 0:
            return {}
        per = np.bincount(np.concatenate(list(y)), minlength=len(labels))
        return {label: int(k) for label, k in zip(labels, per)}

    def collate(self, preprocess, inputs, targets, training):
        """Sub-word inputs, and ``labels``: the first sub-token of each word tagged (ids), the rest ignored."""
        tokenizer = preprocess.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("token classification needs a fast tokenizer (it maps sub-words back to words with "
                              "word_ids()): pass tokenizer=AutoTokenizer.from_pretrained(name, use_fast=True).")
        enc = tokenizer([list(w) for w in inputs], is_split_into_words=True, truncation=True,
                        max_length=preprocess.max_length, padding=True, return_tensors="pt")
        first = torch.full(enc["input_ids"].shape, -1, dtype=torch.long)
        for row in range(len(inputs)):
            seen = set()
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None and word not in seen:
                    seen.add(word)
                    first[row, position] = word
        width = max(len(w) for w in inputs)
        gold = torch.full((len(inputs), width), IGNORE, dtype=torch.long)
        for row, tags in enumerate(targets or []):
            gold[row, :len(tags)] = torch.as_tensor(np.asarray(tags, dtype=np.int64))
        tags = torch.where(first >= 0, gold.gather(1, first.clamp(min=0)), torch.full_like(first, IGNORE))
        batch = {k: enc[k] for k in tokenizer.model_input_names if k in enc}
        batch["labels"] = {"tags": tags, "first": first, "gold": gold,
                           "n_words": torch.tensor([len(w) for w in inputs])}
        return batch

    # --- model ------------------------------------------------------------------------------------
    def loss(self, logits, targets):
        tags = targets["tags"]
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tags.reshape(-1), ignore_index=IGNORE)

    def outputs(self, logits, labels):
        """Per sentence: the predicted tag id and its probability for each word the model saw, the gold tags, the loss."""
        probs = logits.float().softmax(-1)
        score, pred = probs.max(-1)
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels["tags"], ignore_index=IGNORE, reduction="none")
        out = []
        for row in range(len(logits)):
            at = torch.nonzero(labels["first"][row] >= 0).flatten()
            n = int(labels["n_words"][row])
            gold = labels["gold"][row, :n]
            counted = labels["tags"][row] != IGNORE
            out.append({"words": labels["first"][row, at].tolist(), "pred": pred[row, at].tolist(),
                        "score": score[row, at].tolist(), "gold": gold.tolist(), "n": n,
                        "nll": float(nll[row][counted].sum()), "count": int(counted.sum())})
        return out

    def join(self, parts):
        return [item for part in parts for item in part]

    def word_tags(self, item: dict[str, Any], labels: list[str]) -> tuple[list[str], list[float | None]]:
        """The tag of every word (``O`` where the model saw none of its sub-words), with the model's probability."""
        outside = entities.OUTSIDE if entities.OUTSIDE in labels else labels[0]
        tags, scores = [outside] * item["n"], [None] * item["n"]
        for word, pred, score in zip(item["words"], item["pred"], item["score"]):
            tags[word], scores[word] = labels[pred], score
        return tags, scores

    def _sequences(self, outputs, labels):
        gold = [[labels[t] for t in item["gold"]] for item in outputs]
        return gold, [self.word_tags(item, labels)[0] for item in outputs]

    def score(self, outputs, threshold=None, labels=None):
        if labels is None:
            raise ConfigError("token classification scores need the tag names (labels=...).")
        scores = entities.entity_scores(*self._sequences(outputs, labels))
        count = sum(item["count"] for item in outputs)
        return scores | {"loss": sum(item["nll"] for item in outputs) / max(count, 1)}

    def per_class(self, outputs, labels, threshold=None):
        return entities.per_type(*self._sequences(outputs, labels))

    def decode(self, outputs, labels, threshold=None, inputs=()):
        """Per text, its entities: ``{"entity_group", "word", "start", "end", "score"}``, ``text[start:end] == word``."""
        results = []
        for item, words in zip(outputs, inputs):
            tags, scores = self.word_tags(item, labels)
            found = []
            for kind, first, last in entities.spans(tags):
                start, end = words.offsets[first][0], words.offsets[last - 1][1]
                seen = [s for s in scores[first:last] if s is not None]
                found.append({"entity_group": kind, "word": words.text[start:end], "start": start, "end": end,
                              "score": float(np.mean(seen)) if seen else 0.0})
            results.append(found)
        return results

    # --- the model card ---------------------------------------------------------------------------
    def pipeline_tag(self, modality):
        return "token-classification"

    def card_summary(self, record):
        kinds = sorted({entities.parse(t)[1] for t in record["labels"]} - {None})
        return (f"A named-entity tagger ({len(record['labels'])} word tags; entity types: "
                + ", ".join(f"`{k}`" for k in kinds) + ")")

    def card_example(self, record):
        return ("for entity in model.predict(['Order #48213 shipped with DHL on 2026-03-04.'])[0]:\n"
                "    print(entity['entity_group'], entity['word'], entity['start'], entity['end'])")

    def card_usage(self, record, repo_id):
        return ("Without transferkit, with transformers (the folder is a plain `AutoModelForTokenClassification`):"
                f"\n\n```python\nfrom transformers import pipeline\n"
                f"tagger = pipeline(\"token-classification\", model=\"{repo_id}\", aggregation_strategy=\"first\")\n"
                "print(tagger('Order #48213 shipped with DHL on 2026-03-04.'))\n```\n\n"
                "Use `aggregation_strategy=\"first\"`: the model was trained with each word's first sub-token "
                "labelled, and the default grouping can return pieces of one word (`'p'`, `'##25'`). The pipeline "
                "splits words at every punctuation mark; `transferkit.load(...).predict` splits them as the training "
                "data was written (at spaces, punctuation at word edges apart), so ids such as `P256-X` stay one word.")

    def card_limits(self, record):
        return ["It finds only the entity types it was trained on; a word gets one tag, decided by its first "
                "sub-token, so an entity is always made of whole words.",
                "Raw text is split into words at spaces, with punctuation at a word's edges apart; text tokenized "
                "differently from the training data (e.g. '12 - 4' against '12-4') can be tagged differently.",
                f"Sentences are cut to {_max_length(record)} sub-words; words beyond are tagged 'O'."]


def _max_length(record: dict[str, Any]) -> Any:
    return record["resolved"].get("max_length", record["training"].get("max_length"))


def _show(words: Sequence[str]) -> str:
    text = " ".join(str(w) for w in words)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _warn_cut_words(inputs: Sequence[Words], preprocess, what: str) -> None:
    """Say how many words fall beyond ``max_length`` sub-words or vanish in the tokenizer: they are predicted O."""
    tokenizer = getattr(preprocess, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False) or not inputs:
        return
    lost, sentences, first = 0, 0, None
    for start in range(0, len(inputs), 256):
        chunk = [list(w) for w in inputs[start:start + 256]]
        enc = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=preprocess.max_length)
        for row, words in enumerate(chunk):
            missing = len(words) - len({w for w in enc.word_ids(row) if w is not None})
            if missing:
                lost, sentences = lost + missing, sentences + 1
                first = start + row if first is None else first
    if lost:
        logger.warning("%s: %d word(s) in %d sentence(s) (first: sentence %d) fall beyond max_length=%d sub-words or "
                       "produce no sub-word; they are never seen by the model and are predicted 'O'. Raise max_length "
                       "to keep long sentences whole.", what, lost, sentences, first, preprocess.max_length)


__all__ = ["TokenClassification", "Words", "Path"]
