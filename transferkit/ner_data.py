"""Deterministic named-entity data from order and shipping messages, for token classification.

Why this exists: the ``task="token_classification"`` tests, recipe and benchmark need NER data that
is offline, reproducible from a seed, tokenized the CoNLL way, and hard enough to tell a real model
from a lookup table. Public NER sets are downloads; a word list would be solved by memorising it.
So the entity values here are generated (order ids, SKUs, postcodes) or combined from pools (names,
dates), and a test split drawn with another seed holds mostly values never seen in training. The
contexts are deliberately ambiguous: invoice and tracking numbers shaped like order ids, ZIP-sized
case numbers, first names that are months ("June", "April"), surnames that are words ("Price",
"Day"), and some messages typed all in lower case.

>>> train = order_messages(300, seed=0)                  # {"tokens": [[...], ...], "ner_tags": [[...], ...]}
>>> test = order_messages(200, seed=1, scheme="BIOES")   # another seed: mostly unseen ids and names
>>> text = detokenize(test["tokens"][0])                 # the raw message, for predict()
>>> gold = entities(test["tokens"][0], test["ner_tags"][0])  # [("ORDER", "#48213"), ...], substrings of text
"""
from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ConfigError, DataError, did_you_mean

SCHEMES = ("BIO", "BIOES", "IO")
ENTITY_TYPES = ("ORDER", "PRODUCT", "DATE", "POSTCODE", "CARRIER", "PERSON")

FIRST_NAMES = ("Sarah", "James", "Priya", "Mohammed", "Emma", "Liam", "Sofia", "Noah", "Aisha", "Lucas", "Chloe",
               "Daniel", "Fatima", "Oliver", "Mei", "Jack", "Hannah", "Ravi", "Grace", "Tom", "Elena", "Kwame",
               "Laura", "Pieter", "Anna", "Marco", "Yuki", "Sean", "Zoe", "Ahmed", "Lena", "David", "June", "April",
               "May", "Will", "Mark", "Rose", "Bill", "Hope")
LAST_NAMES = ("Smith", "Jones", "Patel", "Khan", "Williams", "Brown", "de Vries", "Jansen", "Garcia", "Nguyen",
              "Kowalski", "Murphy", "O'Brien", "Chen", "Taylor", "Okafor", "Rossi", "Müller", "Silva", "Walsh",
              "Evans", "Bakker", "Singh", "Ali", "Martin", "Moore", "Clarke", "Hughes", "Tanaka", "Novak",
              "Price", "Day", "Black", "Lane", "King", "Hill", "Field", "Marsh", "Post", "Cash")
CARRIERS = ("DHL", "UPS", "Royal Mail", "FedEx", "DPD", "USPS", "PostNL", "Evri", "GLS", "Parcelforce",
            "Amazon Logistics", "Canada Post", "DHL Express", "Yodel", "TNT", "InPost", "Hermes", "OnTrac",
            "Australia Post", "Deutsche Post", "La Poste", "Aramex", "Purolator", "bpost")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
CITIES = ("London", "Leeds", "Amsterdam", "Utrecht", "Chicago", "Austin", "Manchester", "Rotterdam", "Denver",
          "Bristol", "Seattle", "Glasgow")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SHOPS = ("Amazon", "eBay", "the app", "the website", "your shop", "Etsy", "Bol", "Zalando")

# Message bodies. {TYPE} slots are entities, {lowercase} slots are distractors tagged O, and [a|b|] picks one
# phrasing (possibly empty), so the words around an entity vary and also surround the distractors.
_REF = "[order|order number|my order|ref|reference|the order|purchase|]"
_OTHER_REF = "[invoice|ref|reference|case|ticket|receipt|return label|]"
_SHIPPED = "[shipped with|sent via|handed to|picked up by|going out with|dispatched through|with]"
BODIES = (
    # questions
    f"[Where is|Any news on|What happened to|Can you check] {_REF} {{ORDER}}? It [was supposed to|should|was meant to] "
    "arrive [on|by|before] {DATE}[.|]",
    "[Can you tell me|Do you know|Any idea] when {PRODUCT} will [ship|be back|arrive]? I ordered {qty} [of them|] "
    "[on|back on] {DATE}.",
    f"Has {_REF} {{ORDER}} been {_SHIPPED} {{CARRIER}} yet?",
    f"[Is it possible to|Can I|Could you] change the [delivery address|address|postcode] for {_REF} {{ORDER}} "
    "to {POSTCODE}?",
    "Do you [deliver|ship] to {POSTCODE}[, or only to {city}|| in {city}]?",
    "Why does [the tracking number|tracking|the label] {tracking} say {CARRIER} has no record of [my parcel|it]?",
    "Could {CARRIER} leave the parcel with [my neighbour|my partner|reception|] {PERSON} if I'm out on {weekday}?",
    "Is {PRODUCT} back in stock? I'd like {qty} [before|by] {DATE}[.|]",
    f"Any update on {_OTHER_REF} {{invoice}} for {_REF} {{ORDER}}?",
    "When will the refund of {price} for {PRODUCT} reach my account[?| - it's been {qty} days?]",
    "Will {PERSON} [be able to|] sign for it, or [may|must] I be there [myself|in person]?",
    "[May I|Can I] [ask|check] whether {PRODUCT} fits the {PRODUCT}?",
    "Which [courier|carrier|service] do you use for {POSTCODE}? [{CARRIER}|The post office] never delivers here.",
    # complaints
    f"I still haven't received {_REF} {{ORDER}} and it's already {{DATE}}[!|.|!!]",
    f"{{CARRIER}} marked {_REF} {{ORDER}} as delivered but nothing arrived at {{POSTCODE}}[.|!]",
    "The {PRODUCT} I got was broken, and nobody answers on {phone}.",
    f"This is the [third|second|fourth] time {{CARRIER}} missed the [delivery window|slot] ({{time}} to {{time}}) "
    f"for {_REF} {{ORDER}}.",
    f"You charged me {{price}} twice for {{PRODUCT}} ({_OTHER_REF} {{case}}).",
    "My parcel was sent to {POSTCODE} instead of {POSTCODE}, please fix this[.|!|]",
    f"The box for {_REF} {{ORDER}} was left in the rain by the {{CARRIER}} driver on {{DATE}}.",
    "I ordered {PRODUCT} but received {PRODUCT} instead[.|!|, again.]",
    "Really disappointed: {qty} items missing from [my order|the box|order {case}], and the courier was rude.",
    "[I hope|Hopefully] {CARRIER} [will|can] sort this out, the {PRODUCT} was a gift for {PERSON}.",
    "[The bill|Your bill|The invoice] says {price} but [the website|the app|the checkout] said {price} for {PRODUCT}.",
    "Nobody from {CARRIER} [came|showed up] on {DATE}, I waited in {city} all day.",
    "Parcel {tracking} has been stuck in {city} since {DATE}[.|!|]",
    # confirmations and agent replies
    "Your order {ORDER} has [shipped|gone out] with {CARRIER} and should arrive [by|on|before] {DATE}.",
    f"We have updated the [address|postcode|delivery address] on {_REF} {{ORDER}} to {{POSTCODE}}[ in {{city}}|].",
    "{PERSON} [confirmed|approved|logged] the return of {PRODUCT} on {DATE}; tracking: {tracking}.",
    "Thanks {FIRST}, a replacement {PRODUCT} is on its way via {CARRIER}.",
    f"Good news: {{PRODUCT}} is now dispatched from our {{city}} warehouse under {_REF} {{ORDER}}.",
    f"Refund of {{price}} for {_REF} {{ORDER}} was issued on {{DATE}} ({_OTHER_REF} {{invoice}}).",
    "{CARRIER} will collect the return from {POSTCODE} between {time} and {time} on {DATE}.",
    f"{_REF} {{ORDER}} contains {{qty}} x {{PRODUCT}} and {{qty}} x {{PRODUCT}}.",
    "Confirmed: {PERSON} will sign for the delivery at {POSTCODE}.",
    f"The item {{PRODUCT}} from {_REF} {{ORDER}} was signed for by {{PERSON}}.",
    "[Please|Kindly] mark {PRODUCT} as [a gift|fragile]; {CARRIER} will bring it on {weekday}.",
    f"{{PERSON}} from our team will [call|email] you about {_OTHER_REF} {{case}} by {{DATE}}.",
    # no entities, or distractors only
    "Hi, I haven't heard anything about my delivery, can you help?",
    "Please call me back on {phone} about the damaged parcel[.|!|]",
    "The courier came at {time} but I was at work.",
    "Can I pay the {price} customs fee online?",
    "Thanks for the quick reply, everything arrived fine[.|!|!!]",
    "Is there a way to get deliveries on {weekday} only?",
    "[Invoice|Ticket|Case] {invoice} [was|has been] closed, [we|I] will mark the bill as paid.",
    "Return label {tracking} was printed, it may take {qty} days to reach our {city} depot.",
    "I bought it on {shop}, will it [come by mail|come by post|be sent by mail]?",
)
GREETINGS = ("Hi,", "Hello!", "Dear {PERSON},", "Hi {FIRST},", "Good morning.", "Hey team -", "Hello {FIRST}!",
             "Hi, [this is|it's] {PERSON} [here|].")
CLOSINGS = ("Thanks, {FIRST}", "Regards, {PERSON}", "Thanks!", "Cheers", "- {PERSON}", "Kind regards,\n{PERSON}",
            "[Thanks|Thank you], {PERSON} ({phone})", "Best, {FIRST}")
_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")
_OPENERS = "(\"'"
_CLOSERS = ",.;:?!)\"'"


def _pick(rng: np.random.Generator, pool: tuple[str, ...]) -> str:
    return pool[int(rng.integers(len(pool)))]


def _digits(rng: np.random.Generator, k: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=k))


def _letters(rng: np.random.Generator, k: int, pool: str = string.ascii_uppercase) -> str:
    return "".join(pool[i] for i in rng.integers(0, len(pool), size=k))


def _order(rng: np.random.Generator) -> str:
    """Order ids in the shapes shops use; several overlap invoice, case and product shapes on purpose."""
    forms = (lambda: "#" + _digits(rng, 5), lambda: f"ORD-{_digits(rng, 4)}-{_digits(rng, 2)}",
             lambda: _digits(rng, int(rng.integers(6, 10))), lambda: f"W{_digits(rng, 4)}-{_digits(rng, 4)}",
             lambda: f"{_letters(rng, 2)}{_digits(rng, 6)}")
    return forms[int(rng.integers(len(forms)))]()


def _product(rng: np.random.Generator) -> str:
    """Product ids and SKUs, one token each; "123/4567" and "100234" look like dates and order numbers."""
    forms = (lambda: f"P{_digits(rng, 3)}-{_letters(rng, 1)}", lambda: f"{_letters(rng, 2)}-{_digits(rng, 4)}",
             lambda: f"sku-{_digits(rng, 5)}", lambda: f"{_digits(rng, 5)}-{_letters(rng, 1)}",
             lambda: f"{_letters(rng, 3)}{_digits(rng, 3)}", lambda: f"{_digits(rng, 3)}/{_digits(rng, 4)}",
             lambda: _digits(rng, 6))
    return forms[int(rng.integers(len(forms)))]()


def _date(rng: np.random.Generator) -> str:
    """ISO, day/month/year, and written-out dates (one to three words)."""
    day, month, year = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(2024, 2028))
    name = MONTHS[month - 1]
    forms = (f"{year}-{month:02d}-{day:02d}", f"{name} {day}", f"{day:02d}/{month:02d}/{year}", f"{day} {name}",
             f"{name[:3]} {day}", f"{day} {name} {year}", f"{month}/{day}")
    return _pick(rng, forms)


def _postcode(rng: np.random.Generator) -> str:
    """UK ("SW1A 1AA", two words), US ("94103", "94103-1234") and NL ("1012 AB") postcodes."""
    inward = _digits(rng, 1) + _letters(rng, 2, "ABDEFGHJLNPQRSTUWXYZ")
    district = int(rng.integers(1, 30))  # "SW1A", "M1", "B33": a letter after the digit only when it is one digit
    suffix = _letters(rng, int(rng.integers(0, 2)) if district < 10 else 0)
    uk = _letters(rng, int(rng.integers(1, 3))) + str(district) + suffix
    us = _digits(rng, 5) + (f"-{_digits(rng, 4)}" if rng.random() < 0.2 else "")
    nl = f"{int(rng.integers(1000, 10000))} {_letters(rng, 2)}"
    return _pick(rng, (f"{uk} {inward}", us, nl))


def _person(rng: np.random.Generator) -> str:
    return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"


def _distractor(kind: str, rng: np.random.Generator) -> str:
    """Id-like and number-like words that are not entities: the model must read the context."""
    makers: dict[str, Callable[[], str]] = {
        "tracking": lambda: _pick(rng, ("1Z", "JD", "TRK-")) + _letters(rng, 3, "0123456789ABCDEFGHJK")
        + _digits(rng, 8),
        "invoice": lambda: _pick(rng, ("INV-", "RF-", "")) + f"{_digits(rng, 4)}-{_digits(rng, 2)}",
        "case": lambda: _digits(rng, 5), "qty": lambda: str(int(rng.integers(2, 13))),
        "price": lambda: _pick(rng, ("£", "$", "€")) + f"{int(rng.integers(3, 400))}.{_digits(rng, 2)}",
        "phone": lambda: _pick(rng, ("020 ", "+31 6 ", "(415) ", "0")) + f"{_digits(rng, 4)} {_digits(rng, 4)}",
        "time": lambda: _pick(rng, (f"{int(rng.integers(7, 12))}am", f"{int(rng.integers(1, 9))}pm",
                                    f"{int(rng.integers(8, 19))}:{_pick(rng, ('00', '15', '30', '45'))}")),
        "city": lambda: _pick(rng, CITIES), "weekday": lambda: _pick(rng, WEEKDAYS), "shop": lambda: _pick(rng, SHOPS)}
    return makers[kind]()


def _slot_value(name: str, rng: np.random.Generator) -> tuple[str, str]:
    """(entity type or "O", surface text) for one ``{slot}`` of a template."""
    entity = {"ORDER": _order, "PRODUCT": _product, "DATE": _date, "POSTCODE": _postcode, "PERSON": _person,
              "CARRIER": lambda r: _pick(r, CARRIERS), "FIRST": lambda r: _pick(r, FIRST_NAMES)}
    if name in entity:
        return ("PERSON" if name == "FIRST" else name), entity[name](rng)
    return "O", _distractor(name, rng)


def tokenize(text: str) -> list[str]:
    """CoNLL-style words: split on spaces, peel punctuation off word ends, keep inner ``-``/``/``/``'``.

    Contractions stay whole ("haven't"), and ids keep their inner hyphens and slashes ("ORD-2231-77",
    "04/03/2026"), so one id is one word and one tag.
    """
    words: list[str] = []
    for chunk in text.split():
        head: list[str] = []
        tail: list[str] = []
        while len(chunk) > 1 and chunk[0] in _OPENERS:
            head.append(chunk[0])
            chunk = chunk[1:]
        while len(chunk) > 1 and chunk[-1] in _CLOSERS:
            tail.insert(0, chunk[-1])
            chunk = chunk[:-1]
        words += head + [chunk] + tail
    return words


def _span_tags(label: str, length: int, scheme: str) -> list[str]:
    """The tags of one entity of ``length`` words (or ``O`` words) under ``scheme``."""
    if label == "O":
        return ["O"] * length
    if scheme == "IO":
        return [label] * length
    if scheme == "BIOES" and length == 1:
        return [f"S-{label}"]
    tags = [f"B-{label}"] + [f"I-{label}"] * (length - 1)
    if scheme == "BIOES":
        tags[-1] = f"E-{label}"
    return tags


def _render(template: str, rng: np.random.Generator, scheme: str) -> tuple[list[str], list[str]]:
    """Fill a template's slots and tokenize it; slot values become whole words with their tags."""
    template = _CHOICE.sub(lambda m: _pick(rng, tuple(m.group(1).split("|"))), template)
    tokens: list[str] = []
    tags: list[str] = []
    for i, part in enumerate(_SLOT.split(template)):
        if i % 2 == 0:  # literal text between slots
            words = tokenize(part)
            tokens += words
            tags += ["O"] * len(words)
            continue
        label, value = _slot_value(part, rng)
        words = tokenize(value)  # "(415) 555 0101" -> "(", "415", ")", ...; ids stay whole
        tokens += words
        tags += _span_tags(label, len(words), scheme)
    return tokens, tags


def _message(rng: np.random.Generator, scheme: str) -> tuple[list[str], list[str]]:
    """One message: optional greeting, a body, optional closing, sometimes typed all in lower case."""
    greeting = _pick(rng, GREETINGS) if rng.random() < 0.3 else ""
    tokens, tags = _render(greeting, rng, scheme)
    words, labels = _render(_pick(rng, BODIES), rng, scheme)
    if tokens and tokens[-1] in (",", "-") and labels[0] == "O" and words[0] != "I":
        words[0] = words[0].lower()  # "Hi Tom, where is ...", not "Hi Tom, Where is ..."
    tokens, tags = tokens + words, tags + labels
    if rng.random() < 0.3:
        words, labels = _render(_pick(rng, CLOSINGS), rng, scheme)
        tokens, tags = tokens + words, tags + labels
    if rng.random() < 0.2:  # people type "where is order #12345 from dhl"
        tokens = [t.lower() for t in tokens]
    if len(tokens) > 1 and tokens[-1] in (".", "!") and rng.random() < 0.3:  # ...and skip the full stop
        tokens, tags = tokens[:-1], tags[:-1]
    return tokens, tags


def order_messages(n: int, seed: int = 0, scheme: str = "BIO") -> dict[str, list]:
    """``n`` tagged customer-service messages, the same for the same ``(n, seed, scheme)``.

    Returns ``{"tokens": [[word, ...], ...], "ner_tags": [[tag, ...], ...]}``, the column layout of
    Hugging Face NER datasets. Tags are ``B-X``/``I-X`` (BIO), plus ``E-X``/``S-X`` (BIOES), or the bare
    type (IO), over ORDER, PRODUCT, DATE, POSTCODE, CARRIER and PERSON; other words are ``O``.
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}.{did_you_mean(scheme, SCHEMES)}")
    if n < 0:
        raise ConfigError(f"n is the number of messages and cannot be negative; got {n}.")
    rng = np.random.default_rng(seed)
    tokens, tags = [], []
    for _ in range(n):
        words, labels = _message(rng, scheme)
        tokens.append(words)
        tags.append(labels)
    return {"tokens": tokens, "ner_tags": tags}


def _spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` word spans from BIO, BIOES or IO tags (a stray ``I-X`` starts a span, as seqeval does)."""
    spans: list[tuple[str, int, int]] = []
    current: tuple[str, int] | None = None  # (type, start) of the span being read
    for i, tag in enumerate([*tags, "O"]):
        prefix, label = tag.split("-", 1) if tag[:2] in ("B-", "I-", "E-", "S-") else ("", tag)
        if current and (prefix in ("B", "S") or label != current[0]):
            spans.append((*current, i))
            current = None
        if label != "O" and current is None:
            current = (label, i)
        if current and prefix in ("E", "S"):
            spans.append((*current, i + 1))
            current = None
    return spans


def entities(tokens: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """Gold ``(type, text)`` pairs; each text is a substring of ``detokenize(tokens)``, for checking ``predict()``."""
    return [(label, detokenize(tokens[start:end])) for label, start, end in _spans(tags)]


def detokenize(tokens: list[str]) -> str:
    """The message as a person would type it: no space before ``,.;:?!)`` nor after ``(`` or an opening quote."""
    text = ""
    no_space_next = True
    open_quote = False
    for token in tokens:
        quote = token in ('"', "'")
        closing = len(token) == 1 and token in _CLOSERS and (not quote or open_quote)
        open_quote = open_quote != quote  # a quote toggles between opening and closing
        text += token if (no_space_next or closing) else " " + token
        no_space_next = token == "(" or (quote and open_quote)
    return text


def to_conll(data: dict[str, list], path: str | Path) -> Path:
    """Write ``data`` as CoNLL: ``-DOCSTART-<TAB>O``, then ``token<TAB>tag`` lines, a blank line after each sentence.

    The reader under test should give back exactly ``data``: same sentences, same words, same tags.
    """
    lines = ["-DOCSTART-\tO", ""]
    for words, tags in zip(data["tokens"], data["ner_tags"]):
        if len(words) != len(tags):
            raise DataError(f"a sentence has {len(words)} tokens but {len(tags)} tags: {words!r}; "
                            "give one tag per token.")
        lines += [f"{word}\t{tag}" for word, tag in zip(words, tags)] + [""]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
