"""The NER generator behind the token-classification tests: well-formed tags in every scheme, raw text that
gives the gold entities back, the same data for the same seed, and a CoNLL file a reader can be checked on."""
import pytest

from transferkit.errors import ConfigError, DataError
from transferkit.ner_data import ENTITY_TYPES, SCHEMES, detokenize, entities, order_messages, to_conll, tokenize

N = 200


@pytest.fixture(scope="module", params=SCHEMES)
def tagged(request):
    return request.param, order_messages(N, seed=3, scheme=request.param)


def _split(tag: str) -> tuple[str, str]:
    return tuple(tag.split("-", 1)) if tag[:2] in ("B-", "I-", "E-", "S-") else ("", tag)


def test_one_tag_per_token_and_known_labels(tagged):
    scheme, data = tagged
    assert len(data["tokens"]) == len(data["ner_tags"]) == N
    prefixes = {"BIO": {"B", "I"}, "BIOES": {"B", "I", "E", "S"}, "IO": {""}}[scheme]
    for words, tags in zip(data["tokens"], data["ner_tags"]):
        assert len(words) == len(tags) > 0
        assert all(w and " " not in w for w in words)
        for tag in tags:
            prefix, label = _split(tag)
            assert tag == "O" or (prefix in prefixes and label in ENTITY_TYPES), tag
    assert {_split(t)[1] for tags in data["ner_tags"] for t in tags} == {"O", *ENTITY_TYPES}


def test_bio_inside_follows_its_begin():
    for tags in order_messages(N, seed=4, scheme="BIO")["ner_tags"]:
        for before, tag in zip(["O", *tags], tags):
            if tag.startswith("I-"):
                assert before in ("B-" + tag[2:], tag), tags


def test_bioes_spans_open_and_close():
    for tags in order_messages(N, seed=4, scheme="BIOES")["ner_tags"]:
        for before, tag, after in zip(["O", *tags], tags, [*tags[1:], "O"]):
            prefix, label = _split(tag)
            if prefix in ("I", "E"):
                assert before in (f"B-{label}", f"I-{label}"), tags
            if prefix in ("B", "I"):
                assert after in (f"I-{label}", f"E-{label}"), tags


def test_schemes_tag_the_same_entities():
    """The scheme changes only the tag spelling: same words, same entities (IO included, so no two
    entities of one type ever touch)."""
    by_scheme = {s: order_messages(N, seed=5, scheme=s) for s in SCHEMES}
    assert by_scheme["BIO"]["tokens"] == by_scheme["BIOES"]["tokens"] == by_scheme["IO"]["tokens"]
    for i, words in enumerate(by_scheme["BIO"]["tokens"]):
        found = {s: entities(words, by_scheme[s]["ner_tags"][i]) for s in SCHEMES}
        assert found["BIO"] == found["BIOES"] == found["IO"]


def test_multi_word_entities_and_sentences_without_any():
    data = order_messages(N, seed=6)
    found = [e for words, tags in zip(data["tokens"], data["ner_tags"]) for e in entities(words, tags)]
    multi = {label for label, text in found if " " in text}
    assert {"POSTCODE", "CARRIER", "PERSON", "DATE"} <= multi
    assert ("CARRIER", "Royal Mail") in found or ("CARRIER", "royal mail") in found
    assert sum(all(t == "O" for t in tags) for tags in data["ner_tags"]) >= N // 20


def test_detokenize_round_trips_and_holds_every_entity(tagged):
    _, data = tagged
    for words, tags in zip(data["tokens"], data["ner_tags"]):
        text = detokenize(words)
        assert tokenize(text) == words
        for _, surface in entities(words, tags):
            assert surface and surface in text, (surface, text)


def test_detokenize_spacing():
    words = ["Where", "is", "order", "#48213", "(", "sent", "via", "Royal", "Mail", ")", "?", "He", "said", '"',
             "soon", '"', ",", "ok", "!"]
    assert detokenize(words) == 'Where is order #48213 (sent via Royal Mail)? He said "soon", ok!'
    assert tokenize("Hi, ORD-2231-77 ships 04/03/2026; P256-X (SW1A 1AA).") == [
        "Hi", ",", "ORD-2231-77", "ships", "04/03/2026", ";", "P256-X", "(", "SW1A", "1AA", ")", "."]


def test_entities_reads_every_scheme():
    words = ["Sarah", "Jones", "sent", "KX-2231", "to", "1012", "AB"]
    expected = [("PERSON", "Sarah Jones"), ("PRODUCT", "KX-2231"), ("POSTCODE", "1012 AB")]
    assert entities(words, ["B-PERSON", "I-PERSON", "O", "B-PRODUCT", "O", "B-POSTCODE", "I-POSTCODE"]) == expected
    assert entities(words, ["B-PERSON", "E-PERSON", "O", "S-PRODUCT", "O", "B-POSTCODE", "E-POSTCODE"]) == expected
    assert entities(words, ["PERSON", "PERSON", "O", "PRODUCT", "O", "POSTCODE", "POSTCODE"]) == expected


def test_same_seed_same_data_other_seed_new_values():
    assert order_messages(50, seed=7) == order_messages(50, seed=7)
    assert order_messages(50, seed=7) != order_messages(50, seed=8)

    def values(data):
        return {e for w, t in zip(data["tokens"], data["ner_tags"]) for e in entities(w, t)}

    train, test = values(order_messages(300, seed=0)), values(order_messages(200, seed=1))
    assert len(test - train) / len(test) > 0.5  # most test ids and names were never seen in training


def test_to_conll_writes_docstart_tab_lines_and_blank_separators(tmp_path):
    data = order_messages(3, seed=9, scheme="BIOES")
    path = to_conll(data, tmp_path / "train.conll")
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[:2] == ["-DOCSTART-\tO", ""]
    expected = []
    for words, tags in zip(data["tokens"], data["ner_tags"]):
        expected += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    assert lines[2:] == expected + [""]  # the file ends with a newline after the last blank line


def test_bad_arguments_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'BIOES'"):
        order_messages(2, scheme="BIOSE")
    with pytest.raises(ConfigError, match="cannot be negative"):
        order_messages(-1)
    with pytest.raises(DataError, match="one tag per token"):
        to_conll({"tokens": [["a", "b"]], "ner_tags": [["O"]]}, tmp_path / "bad.conll")
