"""Tiny offline fixtures: models built from configs and saved like a user's download, and toy data.

Shipped in the package (as accelerate ships its RegressionModel) so tests, recipes and users
can exercise every code path without a network: each ``tiny_*`` writes a folder that
``adapt()`` loads through exactly the path a Hub name or local folder takes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"red": (0,), "green": (1,), "blue": (2,)}
TOPICS = {
    "sports": "goal match team score coach league",
    "food": "pizza pasta salad bread cheese soup",
    "music": "guitar song drums album band piano",
}
SENTIMENT = {"positive": "good great wonderful excellent love happy", "negative": "bad awful terrible poor hate sad"}
FILLER = "the a is was this that it very and of to".split()


def tiny_timm(directory: str | Path, arch: str = "test_resnet", image_size: int = 32, seed: int = 0) -> Path:
    """A randomly initialised timm test model saved with ``save_for_hf`` (loads via ``local-dir:``)."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(seed)
    kwargs = {"img_size": image_size} if "vit" in arch else {}
    model = timm.create_model(arch, pretrained=False, num_classes=10, **kwargs)
    directory = Path(directory)
    save_for_hf(model, str(directory), safe_serialization=True, data_config={"input_size": (3, image_size, image_size)})
    return directory


def _words() -> list[str]:
    words = set(FILLER)
    for text in list(TOPICS.values()) + list(SENTIMENT.values()):
        words.update(text.split())
    return sorted(words)


def tiny_bert(directory: str | Path, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """A 2-layer, 32-wide ``BertModel`` with a word-level tokenizer, saved like a Hub download."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + _words())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                        sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=64, pad_token_id=0,
                        initializer_range=0.2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    # wide init gives input-dependent features, as pretrained ones are; no dropout gives a clean loss trend
    directory = Path(directory)
    BertModel(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def tiny_sentence_transformer(directory: str | Path, pooling: str | tuple[str, ...] = "mean", normalize: bool = True,
                              seed: int = 0) -> Path:
    """:func:`tiny_bert` plus the files of a sentence-transformers download: ``modules.json``, the
    ``1_Pooling/config.json`` that names ``pooling`` (legacy ``pooling_mode_*`` keys, as the Hub
    copies of all-MiniLM-L6-v2 and most other models carry), and a ``2_Normalize`` module if ``normalize``."""
    import json

    from .backbones.pooling import Pooling
    from .backbones.sentence_folder import pooling_config

    directory = tiny_bert(directory, seed=seed)
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")] + ([("2_Normalize", "Normalize")] if normalize else [])
    (directory / "1_Pooling").mkdir()
    hidden = json.loads((directory / "config.json").read_text())["hidden_size"]
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config(Pooling(modes), hidden), indent=2))
    if normalize:
        (directory / "2_Normalize").mkdir()  # sentence-transformers < 6 saves this module as an empty folder
    (directory / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
         for i, (path, kind) in enumerate(modules)], indent=2))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (directory / "config_sentence_transformers.json").write_text(json.dumps(
        {"__version__": {"sentence_transformers": "2.0.0", "transformers": "4.6.1", "pytorch": "1.8.1"}}))
    return directory


def tiny_gpt2(directory: str | Path, seed: int = 0, n_embd: int = 32, layers: int = 2) -> Path:
    """A 2-layer, 32-wide GPT-2 LM (no pad token, as the real one) with a byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(_words())] * 4, trainer)
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=eos, unk_token=eos)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=n_embd, n_layer=layers, n_head=2, n_positions=64,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, initializer_range=0.2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    directory = Path(directory)
    GPT2LMHeadModel(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def toy_images(n_per_class: int = 8, multi_label: bool = False, size: int = 32, seed: int = 0):
    """Separable colour images as ``[(PIL image, label), ...]``: the label is the dominant colour.

    Multi-label: each image lights one or two colour channels, labelled with their names.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    names = list(COLORS)
    out = []
    for k in range(n_per_class * len(names)):
        if multi_label:
            first = names[k % 3]
            chosen = sorted({first, names[(k // 3) % 3]}) if k % 2 else [first]
        else:
            chosen = [names[k % 3]]
        img = rng.integers(0, 60, size=(size, size, 3))
        for name in chosen:
            img[..., COLORS[name][0]] += 170
        out.append((Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), chosen if multi_label else chosen[0]))
    return out


def toy_texts(n_per_class: int = 8, multi_label: bool = False, seed: int = 0):
    """Separable sentences as ``[(text, label), ...]``: sentiment words, or one/two topics for multi-label."""
    rng = np.random.default_rng(seed)
    classes = TOPICS if multi_label else SENTIMENT
    names = list(classes)
    out = []
    for k in range(n_per_class * len(names)):
        chosen = [names[k % len(names)]]
        if multi_label and k % 2:
            chosen = sorted({chosen[0], names[(k // len(names)) % len(names)]})
        words = [str(w) for name in chosen for w in rng.choice(classes[name].split(), 2)]
        words += [str(w) for w in rng.choice(FILLER, 3)]
        rng.shuffle(words)
        out.append((" ".join(words), chosen if multi_label else chosen[0]))
    return out


# Parts of the order/shipping support messages: real-looking enough that a pretrained LM finds them
# plausible English, regular enough (a dozen templates, fixed formats) that adapting to them is learnable.
_PRODUCTS = ("USB-C cable", "wireless mouse", "laptop stand", "mechanical keyboard", "HDMI adapter", "desk lamp",
             "phone case", "power bank", "noise-cancelling headphones", "webcam", "external SSD", "monitor arm",
             "coffee grinder", "water bottle", "yoga mat", "backpack", "running shoes", "wall charger")
_CARRIERS = ("DHL", "UPS", "FedEx", "Royal Mail", "DPD", "Evri", "USPS", "GLS")
_STREETS = ("Baker Street", "High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue",
            "Victoria Road", "Queen Street", "Elm Grove", "King's Road", "Market Place", "Chapel Street")
_CITIES = (("London", "SW1A"), ("Manchester", "M1"), ("Bristol", "BS1"), ("Leeds", "LS2"), ("Glasgow", "G1"),
           ("Cardiff", "CF10"), ("Brighton", "BN1"), ("Oxford", "OX1"), ("York", "YO1"), ("Bath", "BA1"))
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_SHIPPING_TEMPLATES = (
    "Order #{order} for {qty} x {product} (SKU {sku}) shipped with {carrier} on {date}; tracking {tracking}, "
    "delivery to {address} expected by {weekday}.",
    "Hi, my order #{order} ({qty} x {product}) still shows 'label created' with {carrier} since {date}. "
    "Tracking {tracking}. Can you check?",
    "Your parcel with the {product} (SKU {sku}) from order #{order} was delivered by {carrier} on {date} "
    "and left at {address}.",
    "{carrier} attempted delivery of order #{order} on {date} but nobody was home at {address}; "
    "a second attempt is planned for {weekday}.",
    "Return approved for order #{order}: {qty} x {product} (SKU {sku}). Drop the parcel at any {carrier} point "
    "before {date} using return code {tracking}.",
    "Refund of {price} for {qty} x {product} (order #{order}) was issued on {date} and should reach your card "
    "within 5 working days.",
    "The {product} (SKU {sku}) in order #{order} is back-ordered; we expect to ship it with {carrier} on {date}.",
    "Please change the delivery address of order #{order} to {address}. It has not shipped yet, "
    "I ordered {qty} x {product} on {date}.",
    "Order #{order} is held at customs; {carrier} needs an import fee of {price} before it can be delivered "
    "to {address}. Tracking {tracking}.",
    "Order #{order} confirmed: {qty} x {product} (SKU {sku}), {price} in total. It will ship with {carrier} "
    "by {weekday}.",
    "The parcel for order #{order} arrived damaged on {date}: there is a crack in the {product} (SKU {sku}). "
    "Could you send a replacement to {address}?",
    "Tracking {tracking} ({carrier}) for order #{order}: out for delivery on {date}, "
    "expected between 9am and 1pm at {address}.",
)


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _letters(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(65 + c) for c in rng.integers(0, 26, n))


def _tracking(carrier: str, rng: np.random.Generator) -> str:
    """A tracking number in the carrier's usual shape (UPS 1Z..., Royal Mail AB123456789GB, digits otherwise)."""
    if carrier == "UPS":
        return "1Z" + _letters(rng, 3) + _digits(rng, 13)
    if carrier == "Royal Mail":
        return _letters(rng, 2) + _digits(rng, 9) + "GB"
    return _digits(rng, {"DHL": 10, "FedEx": 12, "USPS": 22}.get(carrier, 14))


def shipping_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short order/shipping support messages, the same for the same ``seed``: domain text for causal-LM tests.

    Twelve templates (shipped, delayed, delivered, failed delivery, return, refund, back-order, address
    change, customs, confirmation, damaged, out for delivery) filled with order numbers, products, SKUs,
    carriers with their tracking-number formats, 2026 dates, prices and UK addresses with postcodes.
    """
    rng = np.random.default_rng(seed)

    def pick(options: tuple):
        return options[int(rng.integers(len(options)))]

    out = []
    for _ in range(n):
        carrier = pick(_CARRIERS)
        city, area = pick(_CITIES)
        fields = {
            "order": int(rng.integers(10_000, 100_000)),
            "qty": int(rng.integers(1, 5)),
            "product": pick(_PRODUCTS),
            "sku": f"{_letters(rng, 2)}-{_digits(rng, 4)}",
            "carrier": carrier,
            "tracking": _tracking(carrier, rng),
            "date": f"2026-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
            "weekday": pick(_WEEKDAYS),
            "address": f"{int(rng.integers(1, 200))} {pick(_STREETS)}, {city} {area} {_digits(rng, 1)}"
                       f"{_letters(rng, 2)}",
            "price": f"£{int(rng.integers(300, 25_000)) / 100:.2f}",
        }
        out.append(pick(_SHIPPING_TEMPLATES).format(**fields))
    return out


def tiny_llama(directory: str | Path, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """A 2-layer, 32-wide Llama LM (RMSNorm, rotary positions, gated MLP, an LM head not tied to the embeddings)
    with a byte-level BPE tokenizer that starts every text with ``<s>``; no pad token, as the real ones."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bos, eos = "<s>", "</s>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[bos, eos],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(_words())] * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=eos)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, initializer_range=0.2, tie_word_embeddings=False)
    directory = Path(directory)
    LlamaForCausalLM(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


# Six colour classes (channels lit) and five word classes: enough to train on some and extend to the others.
MANY_COLORS = {"red": (0,), "green": (1,), "blue": (2,), "yellow": (0, 1), "cyan": (1, 2), "magenta": (0, 2)}
MANY_TOPICS = {**TOPICS, **SENTIMENT}


def toy_classes(classes: list[str], n_per_class: int = 8, modality: str = "image", size: int = 32, seed: int = 0):
    """``[(input, label), ...]`` for the named classes only, ``n_per_class`` each, in turn: colour images
    (``MANY_COLORS``) or sentences (``MANY_TOPICS``). For extension tests: train on some classes, add the rest."""
    from PIL import Image

    table = MANY_COLORS if modality == "image" else MANY_TOPICS
    unknown = [c for c in classes if c not in table]
    if unknown:
        raise ValueError(f"unknown toy classes {unknown}; choose from {list(table)}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_per_class * len(classes)):
        name = classes[k % len(classes)]
        if modality == "image":
            img = rng.integers(0, 60, size=(size, size, 3))
            for channel in table[name]:
                img[..., channel] += 170
            out.append((Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), name))
        else:
            words = [str(w) for w in rng.choice(table[name].split(), 2)] + [str(w) for w in rng.choice(FILLER, 3)]
            rng.shuffle(words)
            out.append((" ".join(words), name))
    return out
