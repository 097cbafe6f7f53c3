"""Causal-LM domain adaptation: a decoder LM (GPT-2, Llama-family) keeps learning next tokens on the user's text.

No labels. The texts (a list of strings, a text file, or a dataset's text column) are tokenized,
joined with the end-of-text token between documents and cut into blocks of ``max_length`` tokens
(packing, as transformers' ``run_clm`` does); a share of the blocks is held out. The pretrained
LM head is kept. Evaluation keeps, per block, only its summed negative log-likelihood and token
count, never the block x vocabulary logits, so a set of any size is scored in constant memory.
``evaluate`` reports ``perplexity`` and ``loss`` and the unadapted model's ``base_perplexity`` on
the same text: what adaptation bought. ``Adapted.generate`` continues a prompt.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Examples
from ..errors import ConfigError, DataError
from .base import Task, random_split, register_task

logger = logging.getLogger("transferkit")
IGNORE = -100
MIN_VALIDATION_BLOCKS = 2
TEXT_COLUMNS = ("text", "content", "document", "body", "sentence", "review", "story")


@register_task
class CausalLM(Task):
    name = "causal_lm"
    aliases = ("causal-lm", "clm", "language_modeling", "text_generation", "text-generation")
    head = "causal_lm"
    metric = "perplexity"
    greater_is_better = False
    needs_labels = False
    new_head = False
    min_labels = 0
    default_strategy = "lora"
    strategy_reason = "causal-LM adaptation: LoRA on every layer, the pretrained LM head kept"

    label_word = "block"
    example_word = "blocks"

    # --- data -------------------------------------------------------------------------------------
    def read(self, data, input_column, label_column, require_labels=False):
        texts, column = _texts(data, input_column)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"text {i} is a {type(text).__name__}, not a string: causal-LM data is text.")
            if not text.strip():
                raise DataError(f"text {i} is empty: drop it (an empty text teaches nothing).")
        return Examples(list(texts), None, "text", None, column, None)

    def build_labels(self, examples):
        return []

    def encode(self, examples, labels, what):
        return None

    def model_config(self, labels):
        return {}

    def prepare(self, inputs, y, preprocess, what, training=True):
        """Blocks of ``max_length`` token ids; a last, shorter block is kept for evaluation only."""
        blocks = pack(inputs, preprocess.tokenizer, preprocess.max_length, keep_remainder=not training)
        if not blocks:
            raise DataError(f"the {what} holds too little text for one block of max_length={preprocess.max_length} "
                            f"tokens ({_token_count(inputs, preprocess.tokenizer)} tokens in {len(inputs)} text(s)). Add "
                            "text, or lower max_length=.")
        logger.info("%s: %d block(s) of %d tokens", what, len(blocks), preprocess.max_length)
        return blocks, None

    def split(self, y, n, fraction, seed):
        return random_split(n, fraction, seed, MIN_VALIDATION_BLOCKS)

    def validation_ok(self, y, n, n_labels):
        return n >= MIN_VALIDATION_BLOCKS

    def collate(self, preprocess, inputs, targets, training):
        """Blocks padded on the right to the longest; ``labels`` are the ids, padding ignored (the model shifts them)."""
        pad = preprocess.tokenizer.pad_token_id
        width = max(len(b) for b in inputs)
        ids = torch.full((len(inputs), width), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, block in enumerate(inputs):
            ids[row, :len(block)] = torch.as_tensor(block)
            mask[row, :len(block)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE)}

    # --- model ------------------------------------------------------------------------------------
    def loss(self, logits, targets):
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1),
                               ignore_index=IGNORE)

    def outputs(self, logits, labels):
        """Per block: its summed next-token negative log-likelihood and the number of tokens predicted."""
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=IGNORE,
                              reduction="none")
        counted = (labels[:, 1:] != IGNORE)
        return (torch.stack([(nll * counted).sum(1), counted.sum(1).float()], dim=1).double(),)

    def join(self, parts):
        return torch.cat([p[0] for p in parts]).numpy() if parts else np.zeros((0, 2))

    def score(self, outputs, threshold=None, labels=None):
        loss = float(outputs[:, 0].sum() / max(outputs[:, 1].sum(), 1.0))
        return {"perplexity": math.exp(min(loss, 700.0)), "loss": loss}

    def reference_scores(self, adapted, loader) -> dict[str, float]:
        """``base_perplexity``: the unadapted model on the same blocks."""
        from ..training import collect

        base = adapted.base_model()
        if base is None:
            return {}
        outputs = collect(adapted.backbone.family.logits, base, loader, self, device=next(base.parameters()).device)
        return {"base_perplexity": self.score(outputs)["perplexity"]}

    def check_predict(self):
        raise ConfigError("a causal LM has no labels to predict: use result.generate(prompt) to continue a text, "
                          "or result.evaluate(texts) for its perplexity.")

    def decode(self, outputs, labels, threshold=None, inputs=()):
        self.check_predict()

    def generate(self, backbone, prompts: list[str], max_new_tokens: int, **kwargs) -> list[str]:
        """The continuation of each prompt (prompt excluded), batched with left padding."""
        tokenizer, model = backbone.preprocess.tokenizer, backbone.model
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # a batch of prompts must end where generation starts
        try:
            enc = tokenizer(prompts, return_tensors="pt", padding=True)
        finally:
            tokenizer.padding_side = side
        _check_context(model, enc["input_ids"].shape[1], max_new_tokens)  # padded: the longest prompt's length
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, **kwargs)
        finally:
            model.train(was_training)
        start = enc["input_ids"].shape[1]
        return [tokenizer.decode(row[start:], skip_special_tokens=True) for row in out]


    # --- the model card ---------------------------------------------------------------------------
    def pipeline_tag(self, modality):
        return "text-generation"

    def card_summary(self, record):
        blocks = record["resolved"].get("n_train")
        trained = f": {blocks} blocks of {record['resolved'].get('max_length')} tokens" if blocks else ""
        return f"A causal language model (domain adaptation{trained})"

    def card_example(self, record):
        return "print(model.generate('Your order', max_new_tokens=40))\nprint(model.evaluate(['held-out text ...']))"

    def card_usage(self, record, repo_id):
        return ("Without transferkit, with transformers (the folder is a plain `AutoModelForCausalLM`):\n\n"
                f"```python\nfrom transformers import pipeline\ngenerate = pipeline(\"text-generation\", "
                f"model=\"{repo_id}\")\nprint(generate('Your order', max_new_tokens=40)[0]['generated_text'])\n```")

    def card_limits(self, record):
        return ["It continues text in the style of the text it was adapted on; perplexity measures how well it "
                "predicts such text, not whether what it writes is true.",
                "Adaptation on a narrow domain can make it worse at text outside that domain: compare "
                "`base_perplexity` on text you care about."]

def _check_context(model, longest: int, max_new_tokens: int) -> None:
    """A prompt plus the new tokens must fit the model's positions: past them the embedding lookup fails."""
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if not limit:
        return
    if longest + max_new_tokens > limit:
        raise ConfigError(f"the prompt ({longest} tokens) plus max_new_tokens={max_new_tokens} exceeds this model's "
                          f"{limit} positions: use max_new_tokens <= {max(limit - longest, 0)}, or a shorter prompt.")


def pack(texts, tokenizer, block: int, keep_remainder: bool) -> list[list[int]]:
    """Token ids of every text, end-of-text between documents, cut into ``block``-long pieces."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for start in range(0, len(texts), 512):
        for row in tokenizer(list(texts[start:start + 512]), add_special_tokens=False, verbose=False)["input_ids"]:
            ids += row + ([eos] if eos is not None else [])
    blocks = [ids[i:i + block] for i in range(0, len(ids), block)]
    if blocks and len(blocks[-1]) < block and not (keep_remainder and len(blocks[-1]) >= 2):
        blocks.pop()
    return blocks


def _token_count(texts, tokenizer) -> int:
    return sum(len(r) for r in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"])


def _texts(data: Any, input_column: str | None) -> tuple[list[Any], str | None]:
    """The texts of any form causal-LM data comes in, and the column they came from."""
    if isinstance(data, (str, Path)):
        path = Path(data).expanduser()
        if not path.is_file():
            raise DataError(f"{str(data)[:80]!r} is not a file. Causal-LM data is a list of texts, a text file, or "
                            "a dataset with a text column; to adapt on one string, pass [text].")
        if path.suffix.lower() in (".csv", ".jsonl", ".json"):
            from ..data.sources import _read_rows

            return _column(_read_rows(path), input_column)
        try:
            return [path.read_text(encoding="utf-8-sig")], None
        except UnicodeDecodeError as exc:
            raise DataError(f"{str(path)!r} is not UTF-8 (offset {exc.start}): re-save it as UTF-8.") from None
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("the dataset is empty (an empty list): no text to adapt on.")
        return list(data), None
    if isinstance(data, dict) or type(data).__name__ in ("Dataset", "DataFrame"):
        return _column(data, input_column)
    raise DataError(f"cannot read a {type(data).__name__} as text: pass a list of strings, a text file, or a dataset "
                    "with a text column.")


def _column(table: Any, input_column: str | None) -> tuple[list[Any], str]:
    from ..errors import did_you_mean

    columns = list(table.column_names) if hasattr(table, "column_names") else [str(c) for c in (
        table.columns if type(table).__name__ == "DataFrame" else table)]
    if input_column is not None and input_column not in columns:
        raise DataError(f"text column {input_column!r} not found; the columns are {columns}."
                        f"{did_you_mean(input_column, columns)}")
    lowered = {c.lower(): c for c in columns}
    column = input_column or next((lowered[n] for n in TEXT_COLUMNS if n in lowered), None)
    if column is None:
        raise DataError(f"no text column found among {columns}; name it with input_column=...")
    return list(table[column]), column
