"""Reading token-classification data: sentences as word lists with their tags, from every form people have.

Forms: a dict / ``datasets.Dataset`` / DataFrame with a word-list column and a tag-list column; a
list of ``(words, tags)`` pairs; a CoNLL file. For prediction, also raw strings (split into
words with offsets, ``entities.split_words``) and bare word lists. Every sentence is checked
here, before a model loads: words and tags of equal length, no empty sentence, words as strings,
no missing tag; the error names the sentence and shows its start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import Examples
from ..errors import DataError, did_you_mean
from .entities import split_words

WORD_COLUMNS = ("tokens", "words", "token", "word", "text")
TAG_COLUMNS = ("ner_tags", "tags", "labels", "label", "ner", "entities", "tag")
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".txt", ".tsv")


class Words(list):
    """A sentence's words, with the text they came from and each word's (start, end) in it."""

    def __init__(self, words: Sequence[str], text: str | None = None, offsets: list[tuple[int, int]] | None = None):
        super().__init__(words)
        if text is None:  # words given without their text: they are joined by single spaces
            text, offsets, at = " ".join(words), [], 0
            for w in words:
                offsets.append((at, at + len(w)))
                at += len(w) + 1
        self.text, self.offsets = text, offsets

    @classmethod
    def from_text(cls, text: str) -> "Words":
        found = split_words(text)
        return cls([w for w, _, _ in found], text, [(s, e) for _, s, e in found])


def _is_word_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(w, str) for w in value)


def recognises(data: Any) -> bool:
    """Whether ``data`` is token-classification data in a form no other task reads (for ``task=None``)."""
    if isinstance(data, (str, Path)):
        return Path(data).suffix.lower() in (".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes")
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], tuple) and len(data[0]) == 2:
        return _is_word_list(data[0][0]) and isinstance(data[0][1], (list, tuple))
    columns = _columns(data)
    if columns is None:
        return False
    firsts = {c: _first(data, c) for c in columns}
    # A named word column counts even when its first sentence is empty, and a named tag column even when its
    # first row's length is wrong: the reader then names the faulty sentence instead of classification failing.
    words = [c for c, v in firsts.items() if _is_word_list(v) or c.lower() in WORD_COLUMNS and isinstance(v, list)]
    return any(isinstance(v, (list, tuple)) and (len(v) == len(firsts[w]) or c.lower() in TAG_COLUMNS)
               for w in words for c, v in firsts.items() if c != w)


def _columns(data: Any) -> list[str] | None:
    kind = type(data).__name__
    if kind == "Dataset" and hasattr(data, "column_names"):
        return list(data.column_names)
    if kind == "DataFrame" or isinstance(data, dict):
        return [str(c) for c in (data.columns if kind == "DataFrame" else data)]
    return None


def _first(data: Any, column: str) -> Any:
    values = data[column]
    return values[0] if len(values) else None


def read_sentences(data: Any, input_column: str | None, label_column: str | None, require_labels: bool) -> Examples:
    """Examples whose inputs are :class:`Words` and whose labels are tag-name lists (None when unlabelled)."""
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if not path.is_file():
            raise DataError(f"CoNLL file {str(path)!r} does not exist (resolved from {Path.cwd()}).")
        words, tags = read_conll(path)
        return _examples(words, tags, None, None, None)
    if isinstance(data, (list, tuple)):
        return _from_list(list(data), require_labels)
    columns = _columns(data)
    if columns is None:
        raise DataError(f"cannot read a {type(data).__name__} as token-classification data: pass a dict or "
                        "datasets.Dataset with 'tokens' and 'ner_tags' columns, (words, tags) pairs, or a CoNLL file.")
    word_col = _pick(columns, input_column, WORD_COLUMNS, "word-list (input)", data)
    tag_col = _pick(columns, label_column, TAG_COLUMNS, "tag-list (label)", data, required=require_labels)
    names = _tag_names(data, tag_col) if tag_col else None
    tags = [list(t) for t in data[tag_col]] if tag_col else None
    if tags is not None and names:
        tags = [[_name(t, names, i) for t in row] for i, row in enumerate(tags)]
    return _examples([list(w) for w in data[word_col]], tags, names, word_col, tag_col)


def _pick(columns: list[str], given: str | None, names: tuple[str, ...], what: str, data, required: bool = True):
    if given is not None:
        if given not in columns:
            raise DataError(f"{what} column {given!r} not found; the columns are {columns}.{did_you_mean(given, columns)}")
        return given
    lowered = {c.lower(): c for c in columns}
    found = next((lowered[n] for n in names if n in lowered), None)
    if found is None and what.startswith("word"):
        found = next((c for c in columns if _is_word_list(_first(data, c))), None)
    if found is None and required:
        raise DataError(f"no {what} column found among {columns}; name it with "
                        f"{'input_column' if what.startswith('word') else 'label_column'}=...")
    return found


def _tag_names(data: Any, column: str) -> list[str] | None:
    """The names of a ``ClassLabel`` sequence feature (``Sequence(ClassLabel)`` / ``List(ClassLabel)``), if any."""
    feature = getattr(data, "features", {}).get(column) if hasattr(data, "features") else None
    inner = getattr(feature, "feature", None)
    names = getattr(inner, "names", None)
    return list(names) if names else None


def _name(tag: Any, names: list[str], sentence: int) -> str:
    if not isinstance(tag, (int, np.integer)) or not 0 <= int(tag) < len(names):
        raise DataError(f"sentence {sentence} has tag id {tag!r}, not an id of its ClassLabel {names[:10]}.")
    return names[int(tag)]


def _from_list(data: list, require_labels: bool) -> Examples:
    if not data:
        raise DataError("the dataset is empty (an empty list): nothing to train or evaluate on.")
    if all(isinstance(x, tuple) and len(x) == 2 for x in data):
        return _examples([list(w) for w, _ in data], [list(t) for _, t in data], None, None, None)
    if require_labels:
        raise DataError("token-classification data needs tags: a list of (words, tags) pairs, a dict with 'tokens' "
                        f"and 'ner_tags', or a CoNLL file; the first item is a {type(data[0]).__name__}.")
    inputs = [Words.from_text(x) if isinstance(x, str) else Words([str(w) for w in x]) if _is_word_list(x) else x
              for x in data]
    bad = next((i for i, x in enumerate(inputs) if not isinstance(x, Words)), None)
    if bad is not None:
        raise DataError(f"item {bad} is a {type(data[bad]).__name__}: predict() takes texts (strings) or word lists.")
    return Examples(inputs, None, "text")


def _examples(words: list[list], tags: list[list] | None, names, word_col, tag_col) -> Examples:
    """Checked sentences: words are strings, tags are present, lengths match, no sentence is empty."""
    for i, sentence in enumerate(words):
        if not sentence:
            raise DataError(f"sentence {i} is empty (no words): drop it; a sentence needs at least one word.")
        bad = next((j for j, w in enumerate(sentence) if not isinstance(w, str) or not w.strip()), None)
        if bad is not None:
            raise DataError(f"sentence {i} has the word {sentence[bad]!r} at position {bad}: words must be non-empty "
                            "strings.")
        if tags is not None:
            if len(tags[i]) != len(sentence):
                raise DataError(f"sentence {i} ({' '.join(sentence)[:60]!r}) has {len(sentence)} words but "
                                f"{len(tags[i])} tags: give one tag per word.")
            if any(t is None or (isinstance(t, str) and not t.strip()) for t in tags[i]):
                raise DataError(f"sentence {i} ({' '.join(sentence)[:60]!r}) has a missing tag: tag every word "
                                "('O' for words outside any entity).")
            tags[i] = [str(t) for t in tags[i]]
    return Examples([Words(w) for w in words], tags, "text", names, word_col, tag_col)


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Words and tags of a CoNLL file: a word per line, its tag in the last column, blank lines between sentences."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not UTF-8 (offset {exc.start}): re-save it as UTF-8.") from None
    words, tags, sentence, sentence_tags = [], [], [], []
    for number, line in enumerate(lines + [""], 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if sentence:
                words.append(sentence)
                tags.append(sentence_tags)
            sentence, sentence_tags = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{str(path)!r} line {number} ({line.strip()[:40]!r}) has one column: CoNLL lines hold "
                            "a word and its tag (the tag in the last column), separated by a space or a tab.")
        sentence.append(fields[0])
        sentence_tags.append(fields[-1])
    if not words:
        raise DataError(f"{str(path)!r} holds no sentences: expected one 'word tag' per line, blank lines between "
                        "sentences.")
    return words, tags
