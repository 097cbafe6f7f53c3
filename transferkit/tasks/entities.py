"""Entities from word tags, exact-span entity scores, and raw text split into words with their offsets.

One span reader serves both ``evaluate`` (entity precision / recall / F1) and ``predict`` (the
entities of a text), so what is scored is what is returned. It reads every common scheme the
way CoNLL's ``conlleval`` does: BIO (IOB2), IOB1, BIOES / BILOU, and plain type names
("PER", "O"), where adjacent words of one type form one entity. An entity is counted as found
only when its type and its first and last words all match (exact span match).

Raw text is split into words the CoNLL way: at whitespace, with punctuation at a word's start or
end split off ("London," -> "London", ","), and punctuation inside a word kept ("P256-X",
"2026-03-04", "#48213"), so a product id or a date is one word, as it is in training data
written that way. ``text[start:end]`` of a word is the word.
"""
from __future__ import annotations

import re
from typing import Sequence

OUTSIDE = "O"
_PREFIX = re.compile(r"^([BIESLU])[-_](.+)$")
_OPENING = "([{\"'“‘«<"
_CLOSING = ".,;:!?)]}\"'”’»>…"
_WORD = re.compile(r"\S+")


def parse(tag: str) -> tuple[str, str | None]:
    """(prefix, type) of a tag: ("B", "PER") for "B-PER", ("I", "PER") for a plain "PER", ("O", None) outside."""
    if tag == OUTSIDE or not tag:
        return "O", None
    match = _PREFIX.match(tag)
    return (match.group(1), match.group(2)) if match else ("I", tag)


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of a tag sequence as (type, first word, last word + 1), in order (conlleval's chunk rules)."""
    out: list[tuple[str, int, int]] = []
    start, kind, previous = None, None, "O"
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, typ = parse(tag)
        ends = start is not None and (prefix in ("O", "B", "S", "U") or typ != kind or previous in ("E", "S", "L", "U"))
        if ends:
            out.append((kind, start, i))
            start = None
        if prefix != "O" and start is None:
            start, kind = i, typ
        previous = prefix
    return out


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged exact-match entity precision, recall and F1 over sentences, and word accuracy."""
    found = true = right = words = correct = 0
    for g, p in zip(gold, predicted):
        g_spans, p_spans = set(spans(g)), set(spans(p))
        found, true, right = found + len(p_spans), true + len(g_spans), right + len(g_spans & p_spans)
        words, correct = words + len(g), correct + sum(a == b for a, b in zip(g, p))
    precision = right / found if found else 0.0
    recall = right / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall,
            "token_accuracy": correct / words if words else 0.0}


def per_type(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support (gold entities) of each entity type."""
    counts: dict[str, list[int]] = {}
    for g, p in zip(gold, predicted):
        g_spans, p_spans = set(spans(g)), set(spans(p))
        for kind, *_ in g_spans | p_spans:
            counts.setdefault(kind, [0, 0, 0])
        for span in p_spans:
            counts[span[0]][0] += 1
            counts[span[0]][2] += span in g_spans
        for span in g_spans:
            counts[span[0]][1] += 1
    out = {}
    for kind, (found, true, right) in sorted(counts.items()):
        p, r = (right / found if found else 0.0), (right / true if true else 0.0)
        out[kind] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": true}
    return out


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of each word of ``text``: whitespace-separated, edge punctuation split off."""
    out = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        lead = []
        while start < end - 1 and text[start] in _OPENING:
            lead.append((text[start], start, start + 1))
            start += 1
        trail = []
        while end > start + 1 and text[end - 1] in _CLOSING:
            trail.append((text[end - 1], end - 1, end))
            end -= 1
        out += lead + [(text[start:end], start, end)] + trail[::-1]
    return out
