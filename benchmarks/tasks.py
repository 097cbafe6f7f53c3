"""Named entities and causal-LM domain adaptation, side by side in one run: what transfer buys, per task.

    .venv/bin/python benchmarks/tasks.py                          # everything (see README for the time)
    .venv/bin/python benchmarks/tasks.py --quick                  # a minute or two: tiny sizes, one seed
    .venv/bin/python benchmarks/tasks.py --parts ner --datasets news --sizes 100 --arms auto,classic
    .venv/bin/python benchmarks/tasks.py --table-from a.json,b.json --output benchmarks/results/tasks.json

A. **NER** (``task="token_classification"``) on all-MiniLM-L6-v2, entity F1 (exact spans, the CoNLL way)
on a fixed test set, at several training sizes and seeds, on two generated datasets:
``orders`` (``transferkit.ner_data.order_messages``, BIO, 6 types) and ``news`` (generated here with
Faker: news and business sentences with PERSON / COMPANY / CITY / DATE in IO tags, names from seven
locales, distractors such as street names, e-mail addresses, sums and roles). Arms: ``auto`` (LoRA,
every default as a user gets it), ``auto-nostop`` (the same, early stopping off, so the whole
default step budget trains), ``full`` and ``full-nostop`` (likewise), ``scratch`` (the same architecture from random init, every
layer at the head's rate: what ``compare=True``'s scratch arm runs), ``lora-lr3e-3`` (one size) and
``classic``: a per-word scikit-learn logistic regression on hand features (word, shape, affixes,
neighbours). Every arm is scored by ``transferkit.tasks.entities.entity_scores`` (the neural arms
through ``evaluate()``, which calls it). Seconds: the whole ``adapt()`` call / the whole fit.

B. **Causal LM** (``task="causal_lm"``) on SmolLM2-135M-Instruct at ``max_length=64``, ``max_steps``
fixed: held-out perplexity before (``base_perplexity``) and after LoRA (default) and ``freeze``, on
two domains: ``shipping`` (``transferkit.testing.shipping_texts``) and ``pydoc`` (Python's reference
documentation as shipped in ``pydoc_data.topics``: prose paragraphs, whole sections held out), plus
the same models on a few paragraphs of general English prose written for this benchmark (does
adaptation hurt text outside the domain?).

Everything goes to JSON after every run (``--output``), with the machine, date and versions.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ENCODER = "packaged:all-MiniLM-L6-v2"
DECODER = "packaged:SmolLM2-135M-Instruct"
NER_TEST_SIZE = 300
NER_ARMS = ("classic", "auto", "auto-nostop", "full", "full-nostop", "scratch", "lora-lr3e-3")
LM_ARMS = ("lora", "freeze")


def log(*parts: Any) -> None:
    print("[tasks]", *parts, file=sys.stderr, flush=True)


# --- the second NER dataset: news / business sentences, generated with Faker --------------------------
# {TYPE} slots are entities, {lowercase} slots are distractors tagged O, [a|b|] picks one phrasing.
NEWS_TEMPLATES = (
    "{PERSON}, [chief executive|finance director|chairman|a spokeswoman|a spokesman] [of|at] {COMPANY}, said on "
    "{DATE} that the [firm|company|group] would [open an office|build a plant|cut {num} jobs] in {CITY}.",
    "{COMPANY} shares [fell|rose|jumped|slid] {pct} after {PERSON} [resigned|stepped down|was named chief "
    "executive] on {DATE}.",
    "Speaking in {CITY} on {DATE}, {PERSON} said {COMPANY} [expects|forecasts|targets] [revenue|sales|profit] of "
    "{money}.",
    "{COMPANY} [agreed to buy|will acquire|is in talks to buy] {COMPANY} for {money}, the companies said[ on {DATE}| "
    "in a statement|].",
    "The {CITY} [plant|office|factory|warehouse] of {COMPANY} will close [by|on|before] {DATE}, [according to|said] "
    "{PERSON}.",
    "{PERSON} [joins|will join|has joined] {COMPANY} as {role} [from|on] {DATE}.",
    "Police in {CITY} said a {age}-year-old [man|woman] was arrested on {DATE}.",
    "{COMPANY} reported a net [loss|profit] of {money} for the quarter [ending|ended|to] {DATE}.",
    "Analysts at {COMPANY} expect [house prices|rents|wages] in {CITY} to [rise|fall] {pct} this year.",
    "{PERSON} and {PERSON} will lead the {CITY} [team|office|project], {COMPANY} [announced|said][ on {DATE}|].",
    "In a letter dated {DATE}, {PERSON} asked {COMPANY} to [pay|refund] {money}.",
    "The meeting between {PERSON} of {COMPANY} and officials in {CITY} was [postponed|moved] to {DATE}.",
    "{COMPANY} is moving its headquarters from {CITY} to {CITY}[, {PERSON} said|].",
    "Asked about the [deal|merger|report], {PERSON} declined to comment.",
    "A court in {CITY} [fined|cleared|ordered] {COMPANY}[ to pay {money}|] on {DATE}.",
    "{PERSON}, {age}, of {CITY}, [won|finished second in|withdrew from] the [marathon|chess open|regional final] "
    "on {DATE}.",
    "[Mr.|Ms.|Dr.] {LAST} told reporters in {CITY} that {COMPANY} had done nothing wrong.",
    "{COMPANY} [hired|appointed|named] {PERSON}, [formerly|previously] of {COMPANY}, as {role}.",
    "Flights from {CITY} to {CITY} were cancelled on {DATE} after a strike at {COMPANY}.",
    "{PERSON} [founded|co-founded|started] {COMPANY} in {CITY} [on {DATE}|with {num} employees].",
    "The new {street} office of {COMPANY} opens on {DATE}.",
    "{PERSON} [lives|grew up|works] on {street} in {CITY}.",
    "[Revenue|Sales|Profit] rose {pct} in the [first|second|third|fourth] quarter, [the company|the group] said.",
    "The [board|committee|council] will meet again [next week|next month|after the summer].",
    "[Investors|Analysts|Unions] [welcomed|criticised] the [plan|decision|offer], which [values|costs] the "
    "[business|project] at {money}.",
    "[The mayor of {CITY}|{CITY} council], {PERSON}, [approved|rejected] the {COMPANY} [proposal|bid] on {DATE}.",
    "\"[We are|I am] [delighted|disappointed|surprised],\" {PERSON} [said|told staff] in {CITY}.",
    "[Call|Contact] {phone} or email {email} for [details|tickets|the full report].",
    "{PERSON} [visited|toured] the {CITY} [site|campus|plant] of {COMPANY}[ on {DATE}| last week].",
    "[Prices|Orders|Exports] at {COMPANY} [fell|rose] {pct} in {month}, [its|the] {role} {PERSON} said.",
    "The {product} from {COMPANY} goes on sale in {CITY} on {DATE} for {money}.",
)
NEWS_DATELINE = 0.15  # share of sentences opened by "CITY, DATE -"
NEWS_LOWERCASE = 0.1  # share typed all in lower case
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
LOCALE_WEIGHTS = (0.35, 0.2, 0.1, 0.1, 0.1, 0.075, 0.075)
ROLES = ("chief executive", "finance director", "head of sales", "CFO", "chairman", "Chief Operating Officer",
         "spokeswoman", "analyst", "Vice President", "general counsel")
NEWS_TYPES = ("PERSON", "COMPANY", "CITY", "DATE")
DATE_RANGE = (datetime.date(2022, 11, 30), datetime.date(2027, 11, 30))  # fixed: Faker's "-4y" moves with today
_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def news_sentences(n: int, seed: int, scheme: str = "IO") -> dict[str, list[list[str]]]:
    """``n`` generated news / business sentences, ``{"tokens": [[...]], "ner_tags": [[...]]}``; same seed, same data.

    Words are split as ``transferkit.tasks.entities.split_words`` splits raw text (what ``predict`` sees).
    ``scheme``: "IO" (plain type names) or "BIO".
    """
    from faker import Faker

    from transferkit.tasks.entities import split_words

    rng = np.random.default_rng(seed)
    fakers = []
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1000 + i)
        fakers.append(fake)

    def faker() -> Any:
        return fakers[int(rng.choice(len(fakers), p=LOCALE_WEIGHTS))]

    def pick(options):
        return options[int(rng.integers(len(options)))]

    def person() -> str:
        f = faker()
        form = rng.random()
        if form < 0.15:
            return f"{f.first_name()} {f.first_name()[0]}. {f.last_name()}"
        return f"{f.first_name()} {f.last_name()}"

    def date() -> str:
        d = faker().date_between(start_date=DATE_RANGE[0], end_date=DATE_RANGE[1])
        return pick((f"{d:%B} {d.day}, {d.year}", f"{d.day} {d:%B} {d.year}", f"{d:%B} {d.day}", f"{d:%Y-%m-%d}",
                     f"{d:%B} {d.year}", f"{d.day}/{d.month}/{d.year}", f"{d:%A}, {d:%B} {d.day}"))

    entity: dict[str, Callable[[], str]] = {
        "PERSON": person, "LAST": lambda: faker().last_name(), "COMPANY": lambda: faker().company(),
        "CITY": lambda: faker().city(), "DATE": date,
    }
    distractor: dict[str, Callable[[], str]] = {
        "num": lambda: str(int(rng.integers(20, 5000))), "pct": lambda: f"{rng.integers(1, 40)}.{rng.integers(10)}%",
        "money": lambda: pick(("$", "€", "£")) + f"{rng.integers(1, 900)} {pick(('million', 'billion'))}",
        "age": lambda: str(int(rng.integers(18, 90))), "role": lambda: pick(ROLES),
        "street": lambda: faker().street_name(), "phone": lambda: faker().phone_number(),
        "email": lambda: faker().email(), "month": lambda: pick(("January", "March", "May", "July", "October")),
        "product": lambda: faker().catch_phrase().lower(),
    }
    tokens, tags = [], []
    for _ in range(n):
        template = pick(NEWS_TEMPLATES)
        if rng.random() < NEWS_DATELINE:
            template = "{CITY}, {DATE} - " + template
        template = _CHOICE.sub(lambda m: pick(m.group(1).split("|")), template)
        words, word_tags = [], []
        lower = rng.random() < NEWS_LOWERCASE
        at = 0
        for match in list(_SLOT.finditer(template)) + [None]:
            text = template[at:match.start() if match else len(template)]
            words += [w for w, _, _ in split_words(text)]
            word_tags += ["O"] * (len(words) - len(word_tags))
            if match is None:
                break
            slot, at = match.group(1), match.end()
            kind = "PERSON" if slot == "LAST" else slot
            value = (entity[slot] if slot in entity else distractor[slot])()
            pieces = [w for w, _, _ in split_words(value)]
            words += pieces
            if slot in entity:
                word_tags += [kind if scheme == "IO" else ("B-" if j == 0 else "I-") + kind for j in range(len(pieces))]
            else:
                word_tags += ["O"] * len(pieces)
        tokens.append([w.lower() for w in words] if lower else words)
        tags.append(word_tags)
    return {"tokens": tokens, "ner_tags": tags}


def ner_dataset(name: str, n: int, seed: int) -> dict[str, list[list[str]]]:
    if name == "orders":
        from transferkit.ner_data import order_messages

        return order_messages(n, seed=seed, scheme="BIO")
    if name == "news":
        return news_sentences(n, seed=seed, scheme="IO")
    raise SystemExit(f"unknown NER dataset {name!r}: choose from orders, news")


NER_DESCRIPTIONS = {
    "orders": "`order_messages`: order / shipping messages, BIO, ORDER / PRODUCT / DATE / POSTCODE / CARRIER / PERSON",
    "news": "Faker news / business sentences (7 locales), IO, PERSON / COMPANY / CITY / DATE",
}


# --- the classic NER baseline -----------------------------------------------------------------------
def _shape(word: str) -> str:
    return re.sub(r"[A-Z]", "X", re.sub(r"[a-z]", "x", re.sub(r"[0-9]", "d", word)))


def word_features(words: list[str], i: int) -> dict[str, Any]:
    """Hand features of word ``i``: itself, its shape, affixes, case, and its neighbours +-1 / +-2."""
    w = words[i]
    shape = _shape(w)
    f: dict[str, Any] = {"bias": 1.0, "w=" + w.lower(): 1.0, "shape=" + shape: 1.0,
                         "short=" + re.sub(r"(.)\1+", r"\1", shape): 1.0, "title": float(w.istitle()),
                         "upper": float(w.isupper()), "digit": float(any(c.isdigit() for c in w)),
                         "first": float(i == 0), "len=" + str(min(len(w), 10)): 1.0}
    for k in (1, 2, 3):
        f[f"p{k}=" + w[:k].lower()] = 1.0
        f[f"s{k}=" + w[-k:].lower()] = 1.0
    for off in (-2, -1, 1, 2):
        j = i + off
        if 0 <= j < len(words):
            f[f"{off}:w=" + words[j].lower()] = 1.0
            f[f"{off}:shape=" + _shape(words[j])] = 1.0
            f[f"{off}:title"] = float(words[j].istitle())
        else:
            f[f"{off}:pad"] = 1.0
    return f


def classic_ner(train: dict, test: dict, seed: int) -> tuple[list[list[str]], float]:
    """Per-word LogisticRegression on DictVectorizer features: predicted tags of ``test`` and the fit's seconds."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    feats = [word_features(ws, i) for ws in train["tokens"] for i in range(len(ws))]
    y = [t for ts in train["ner_tags"] for t in ts]
    vec = DictVectorizer()
    clf = LogisticRegression(max_iter=3000, random_state=seed).fit(vec.fit_transform(feats), y)
    seconds = time.perf_counter() - start
    pred = clf.predict(vec.transform([word_features(ws, i) for ws in test["tokens"] for i in range(len(ws))]))
    out, at = [], 0
    for ws in test["tokens"]:
        out.append(list(pred[at:at + len(ws)]))
        at += len(ws)
    return out, seconds


# --- NER arms -----------------------------------------------------------------------------------------
def ner_options(arm: str) -> dict[str, Any]:
    """``adapt()`` keyword arguments of a neural arm (beyond model, data, task, seed)."""
    from transferkit.strategies import Full

    return {
        "auto": {},
        "auto-nostop": {"early_stopping_patience": None},
        "full": {"strategy": "full"},
        "full-nostop": {"strategy": "full", "early_stopping_patience": None},
        # what compare=True's scratch arm runs: every layer at the head's rate (discriminative rates
        # exist to protect pretrained features; a random network has none)
        "scratch": {"strategy": Full(top_lr_scale=1.0, lowest_lr_scale=1.0), "pretrained": False},
        "lora-lr3e-3": {"learning_rate": 3e-3},
    }[arm]


def run_ner(arm: str, dataset: str, train: dict, test: dict, seed: int, extra: dict | None = None) -> dict[str, Any]:
    from transferkit.tasks.entities import entity_scores

    row: dict[str, Any] = {"part": "ner", "dataset": dataset, "arm": arm, "n_train": len(train["tokens"]),
                           "seed": seed}
    if arm == "classic":
        pred, seconds = classic_ner(train, test, seed)
        return row | {"metrics": entity_scores(test["ner_tags"], pred), "train_seconds": seconds}
    from transferkit import adapt

    start = time.perf_counter()
    result = adapt(ENCODER, train, task="token_classification", seed=seed, progress_bar=False,
                   **ner_options(arm) | (extra or {}))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = result.evaluate(test)  # entity_scores on the word tags (TokenClassification.score)
    resolved = result.config.resolved
    history = result.history or [{}]
    return row | {
        "metrics": {k: float(v) for k, v in metrics.items()}, "train_seconds": seconds,
        "eval_seconds": time.perf_counter() - start, "strategy": result.config.strategy["name"],
        "learning_rates": resolved.get("learning_rates"), "trainable_parameters": resolved.get("trainable_parameters"),
        "steps_run": history[-1].get("step"), "steps_planned": resolved.get("schedule", {}).get("steps"),
        "epochs_run": resolved.get("epochs_run"), "best_epoch": resolved.get("best_epoch"),
        "per_type": (result.evaluations[-1].get("per_class") if getattr(result, "evaluations", None) else None),
    }


# --- the causal-LM domains ------------------------------------------------------------------------------
GENERAL_ENGLISH = [
    "The path behind the old mill follows the river for about two miles before it climbs into the woods. In "
    "autumn the beech trees turn a deep copper colour, and on a still morning you can hear the water long before "
    "you see it. Most walkers stop at the stone bridge, where a bench looks down on a pool that has never been "
    "known to freeze.",
    "Bread needs only four things: flour, water, salt and time. The yeast feeds on the sugars in the flour and "
    "gives off gas, which the gluten traps in a web of small bubbles. A slow rise in a cool kitchen gives the "
    "loaf more flavour than a quick one in a warm place, which is why many bakers leave their dough overnight.",
    "Every spring, millions of small birds cross the sea on their way north. They fly mostly at night, when the "
    "air is calm and there are fewer predators about, and they find their way using the stars, the setting sun "
    "and the earth's magnetic field. Some of them weigh less than a letter and still cover thousands of miles.",
    "The town grew up around a market that was first held in the twelfth century. Farmers brought sheep and "
    "wool down from the hills, and merchants came from the coast to buy them. When the railway arrived, the "
    "market moved to a larger square near the station, and the old market hall became a library.",
    "My grandmother kept a notebook of every meal she cooked for guests, with the date, the names of the people "
    "who came and what they thought of the food. Reading it now, I can follow the years through the recipes: "
    "rationing, then the first holidays abroad, then a long fondness for anything made with lemons.",
    "A good night's sleep matters more than most people think. Adults who sleep fewer than six hours a night "
    "find it harder to concentrate, catch colds more easily and are more likely to feel low. Keeping the "
    "bedroom dark and cool, and going to bed at the same time each night, helps more than any pill.",
]


def pydoc_split(n_train: int, n_test: int, seed: int = 0) -> tuple[list[str], list[str], dict[str, Any]]:
    """Prose paragraphs of Python's reference topics; the test paragraphs come from sections never trained on."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    names = sorted(topics)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    held = {names[i] for i in order[: max(1, len(names) // 5)]}

    def paragraphs(name: str) -> list[str]:
        out = []
        for block in re.split(r"\n\s*\n", topics[name]):
            lines = block.split("\n")
            if not lines or lines[0].startswith((" ", "\t")) or block.lstrip().startswith((">>>", "*", "+", "=")):
                continue  # code, grammar rules, tables, bullet lists: keep running prose only
            text = " ".join(line.strip() for line in lines)
            if len(text.split()) >= 15:
                out.append(text)
        return out

    train_pool = [p for name in names if name not in held for p in paragraphs(name)]
    test_pool = [p for name in names if name in held for p in paragraphs(name)]
    train = [train_pool[i] for i in sorted(rng.permutation(len(train_pool))[:n_train])]
    test = [test_pool[i] for i in sorted(rng.permutation(len(test_pool))[:n_test])]
    info = {"sections": len(names), "held_out_sections": sorted(held), "train_pool": len(train_pool),
            "test_pool": len(test_pool)}
    return train, test, info


def lm_domain(name: str, n_train: int, n_test: int) -> tuple[list[str], list[str], dict[str, Any]]:
    if name == "shipping":
        from transferkit.testing import shipping_texts

        return shipping_texts(n_train, seed=0), shipping_texts(n_test, seed=1), {}
    if name == "pydoc":
        return pydoc_split(n_train, n_test)
    raise SystemExit(f"unknown LM domain {name!r}: choose from shipping, pydoc")


LM_DESCRIPTIONS = {
    "shipping": "`shipping_texts`: generated order / shipping support messages (train seed 0, test seed 1)",
    "pydoc": "Python's reference documentation (`pydoc_data.topics`): prose paragraphs, 1 in 5 sections held out",
}


def run_lm(arm: str, domain: str, train: list[str], test: list[str], general: list[str], max_steps: int,
           max_length: int, batch_size: int) -> dict[str, Any]:
    from transferkit import adapt

    start = time.perf_counter()
    result = adapt(DECODER, train, task="causal_lm", strategy=arm, max_length=max_length, max_steps=max_steps,
                   batch_size=batch_size, seed=0, progress_bar=False)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    on_domain = result.evaluate(test)
    on_general = result.evaluate(general)
    resolved = result.config.resolved
    history = result.history or [{}]
    return {"part": "lm", "dataset": domain, "arm": arm, "n_train_texts": len(train), "n_test_texts": len(test),
            "n_train_blocks": resolved.get("n_train"), "n_validation_blocks": resolved.get("n_validation"),
            "max_length": max_length, "batch_size": batch_size, "max_steps": max_steps,
            "steps_run": history[-1].get("step"), "train_seconds": seconds, "eval_seconds": time.perf_counter() - start,
            "learning_rates": resolved.get("learning_rates"),
            "trainable_parameters": resolved.get("trainable_parameters"),
            "domain": {k: float(v) for k, v in on_domain.items()},
            "general": {k: float(v) for k, v in on_general.items()}}


# --- tables -------------------------------------------------------------------------------------------
def _mean_sd(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def ner_tables(rows: list[dict]) -> str:
    out = []
    rows = [r for r in rows if r.get("part") == "ner" and "metrics" in r]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        sizes = sorted({r["n_train"] for r in mine})
        arms = [a for a in NER_ARMS if any(r["arm"] == a for r in mine)]
        out.append(f"\n#### NER, {dataset}: {NER_DESCRIPTIONS.get(dataset, dataset)}; test {NER_TEST_SIZE} "
                   "sentences; entity F1 % (mean ± sd over seeds), train seconds\n")
        head = ["arm"] + [f"F1 n={n}" for n in sizes] + [f"s n={n}" for n in sizes] + ["steps run / planned"]
        out += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for arm in arms:
            cells, secs, steps = [], [], []
            for n in sizes:
                runs = [r for r in mine if r["arm"] == arm and r["n_train"] == n]
                cells.append(_mean_sd([100 * r["metrics"]["entity_f1"] for r in runs]))
                secs.append(_mean_sd([r["train_seconds"] for r in runs], "{:.0f}" if arm != "classic" else "{:.1f}"))
                if runs and runs[0].get("steps_run") is not None:
                    steps.append(f"n={n}: " + ", ".join(f"{r['steps_run']}/{r['steps_planned']}" for r in runs))
            out.append("| " + " | ".join([arm] + cells + secs + ["; ".join(steps) or "—"]) + " |")
        paired = _paired(mine, sizes)
        if paired:
            out.append(f"\nPaired differences on {dataset}, entity-F1 points per seed (same training sentences):\n")
            out += ["| difference | " + " | ".join(f"n={n}" for n in sizes) + " |", "|" + " --- |" * (len(sizes) + 1)]
            out += paired
    return "\n".join(out)


def _paired(rows: list[dict], sizes: list[int]) -> list[str]:
    lines = []
    for a, b in (("full", "auto"), ("full-nostop", "auto-nostop"), ("auto-nostop", "auto"), ("full-nostop", "full"),
                 ("auto", "classic"), ("auto-nostop", "classic"), ("full", "classic"), ("full-nostop", "classic"),
                 ("auto", "scratch"), ("full", "scratch"),
                 ("lora-lr3e-3", "auto"), ("lora-lr3e-3", "auto-nostop")):
        cells, any_cell = [], False
        for n in sizes:
            by_seed = {r["seed"]: r for r in rows if r["arm"] == b and r["n_train"] == n}
            diffs = [100 * (r["metrics"]["entity_f1"] - by_seed[r["seed"]]["metrics"]["entity_f1"])
                     for r in rows if r["arm"] == a and r["n_train"] == n and r["seed"] in by_seed]
            if diffs:
                any_cell = True
                cells.append(f"{statistics.mean(diffs):+.1f} (" + ", ".join(f"{d:+.1f}" for d in diffs) + ")")
            else:
                cells.append("—")
        if any_cell:
            lines.append(f"| {a} minus {b} | " + " | ".join(cells) + " |")
    return lines


def lm_tables(rows: list[dict]) -> str:
    rows = [r for r in rows if r.get("part") == "lm" and "domain" in r]
    if not rows:
        return ""
    out = ["\n#### Causal LM, SmolLM2-135M-Instruct: held-out perplexity before and after adaptation\n",
           "| domain | strategy | train texts / blocks | steps x batch | train s | trainable params | "
           "domain ppl: base | domain ppl: adapted | change | general-English ppl: base | adapted | change |",
           "|" + " --- |" * 12]
    for r in rows:
        d, g = r["domain"], r["general"]
        out.append(f"| {r['dataset']} | {r['arm']} | {r['n_train_texts']} / {r['n_train_blocks']} | "
                   f"{r['steps_run']} x {r['batch_size']} | {r['train_seconds']:.0f} | {r['trainable_parameters']:,} | "
                   f"{d['base_perplexity']:.2f} | {d['perplexity']:.2f} | "
                   f"{100 * (d['perplexity'] / d['base_perplexity'] - 1):+.0f}% | {g['base_perplexity']:.2f} | "
                   f"{g['perplexity']:.2f} | {100 * (g['perplexity'] / g['base_perplexity'] - 1):+.0f}% |")
    return "\n".join(out)


def environment_line(env: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    return f"{env.get('date')}, {env.get('machine')}, Python {env.get('python')}, {versions}"


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    from transferkit.evidence.compare import environment as tk_environment

    env = tk_environment()
    for pkg in ("faker",):
        try:
            env["versions"][pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        env["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return env


# --- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--parts", default="ner,lm", help="ner, lm, or both (default)")
    parser.add_argument("--datasets", default="orders,news", help="NER datasets: orders, news")
    parser.add_argument("--sizes", default="50,100,300", help="NER training sizes (sentences)")
    parser.add_argument("--seeds", default="0,1", help="NER seeds (each draws its own training sentences)")
    parser.add_argument("--arms", default=",".join(NER_ARMS), help=f"NER arms among {', '.join(NER_ARMS)}")
    parser.add_argument("--lr-size", type=int, default=100, help="the one size the lora-lr3e-3 arm runs at")
    parser.add_argument("--lr-seeds", default="0", help="seeds of the lora-lr3e-3 arm")
    parser.add_argument("--domains", default="shipping,pydoc", help="causal-LM domains: shipping, pydoc")
    parser.add_argument("--lm-arms", default=",".join(LM_ARMS), help="causal-LM strategies")
    parser.add_argument("--lm-train", type=int, default=400, help="causal-LM training texts (paragraphs for pydoc)")
    parser.add_argument("--lm-test", type=int, default=50, help="held-out causal-LM texts")
    parser.add_argument("--lm-steps", type=int, default=40, help="max_steps of each causal-LM run")
    parser.add_argument("--lm-batch", type=int, default=8, help="batch size of each causal-LM run")
    parser.add_argument("--max-length", type=int, default=64, help="causal-LM block length")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one seed, a few steps (a smoke run)")
    parser.add_argument("--output", default=str(HERE / "results" / "tasks.json"))
    parser.add_argument("--table-from", default=None, help="comma-separated JSON files: merge them and print tables")
    args = parser.parse_args(argv)

    if args.table_from:
        runs, envs = [], []
        for path in args.table_from.split(","):
            data = json.loads(Path(path).read_text())
            runs += data["runs"]
            envs.append({"file": path, **data["environment"]})
        merged = {"environment": envs[0], "parts": envs, "runs": runs}
        Path(args.output).write_text(json.dumps(merged, indent=1, default=str))
        print("\n".join(f"Environment ({e['file']}): {environment_line(e)}" for e in envs))
        print(ner_tables(runs))
        print(lm_tables(runs))
        return 0

    if args.quick:
        args.sizes, args.seeds, args.lm_steps, args.lm_train, args.lm_test = "20", "0", 3, 40, 10
        args.lr_size = 20
    parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(NER_ARMS)
    if unknown:
        raise SystemExit(f"unknown NER arm(s) {sorted(unknown)}: choose from {NER_ARMS}")
    record: dict[str, Any] = {"environment": environment(), "argv": sys.argv[1:], "runs": []}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def save(row: dict[str, Any]) -> None:
        record["runs"].append(row)
        record["total_seconds"] = time.perf_counter() - started
        out.write_text(json.dumps(record, indent=1, default=str))

    if "ner" in parts:
        for dataset in args.datasets.split(","):
            test = ner_dataset(dataset, NER_TEST_SIZE if not args.quick else 50, seed=1000)
            for seed in seeds:
                pool = ner_dataset(dataset, max(sizes), seed=seed)  # nested: the n=50 draw is inside the n=100 draw
                for n in sizes:
                    train = {k: v[:n] for k, v in pool.items()}
                    for arm in arms:
                        if arm == "lora-lr3e-3" and (n != args.lr_size or str(seed) not in args.lr_seeds.split(",")):
                            continue
                        log(f"ner {dataset} n={n} seed={seed} {arm} ({time.perf_counter() - started:.0f} s in)")
                        try:
                            row = run_ner(arm, dataset, train, test, seed, {"max_steps": 4} if args.quick else None)
                        except Exception as exc:  # one failing arm must not lose the others
                            traceback.print_exc()
                            row = {"part": "ner", "dataset": dataset, "arm": arm, "n_train": n, "seed": seed,
                                   "error": repr(exc)}
                        save(row)
                        if "metrics" in row:
                            log(f"  entity_f1={100 * row['metrics']['entity_f1']:.1f} in {row['train_seconds']:.0f} s "
                                f"(steps {row.get('steps_run')}/{row.get('steps_planned')})")

    if "lm" in parts:
        for domain in args.domains.split(","):
            train, test, info = lm_domain(domain, args.lm_train, args.lm_test)
            record.setdefault("lm_domains", {})[domain] = info | {"train_texts": len(train), "test_texts": len(test)}
            for arm in args.lm_arms.split(","):
                log(f"lm {domain} {arm} ({time.perf_counter() - started:.0f} s in)")
                try:
                    row = run_lm(arm, domain, train, test, GENERAL_ENGLISH, args.lm_steps, args.max_length,
                                 args.lm_batch)
                except Exception as exc:
                    traceback.print_exc()
                    row = {"part": "lm", "dataset": domain, "arm": arm, "error": repr(exc)}
                save(row)
                if "domain" in row:
                    log(f"  ppl {row['domain']['base_perplexity']:.2f} -> {row['domain']['perplexity']:.2f}; general "
                        f"{row['general']['base_perplexity']:.2f} -> {row['general']['perplexity']:.2f} "
                        f"in {row['train_seconds']:.0f} s")

    record["total_seconds"] = time.perf_counter() - started
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"Environment: {environment_line(record['environment'])}; total {record['total_seconds']:.0f} s")
    print(ner_tables(record["runs"]))
    print(lm_tables(record["runs"]))
    errors = [r for r in record["runs"] if "error" in r]
    for r in errors:
        print(f"FAILED: {r['part']} {r['dataset']} {r['arm']}: {r['error']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
