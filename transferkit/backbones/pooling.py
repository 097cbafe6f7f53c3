"""How an encoder turns its token vectors into one vector per text, and the classifier built on it.

A sentence-embedding model (all-MiniLM-L6-v2, mpnet, e5, ...) was trained to be read through one
particular pooling, which its folder names (``modules.json`` + ``1_Pooling/config.json``, and a
``Normalize`` module when the embedding is L2-normalised). Probing it through anything else, such
as BERT's tanh pooler on [CLS] that ``*ForSequenceClassification`` uses, throws accuracy away. So
encoders classify from the model's own pooling, computed with sentence-transformers' arithmetic
(the poolers below follow ``sentence_transformers.sentence_transformer.modules.pooling`` v6.2 on
padded batches), and the saved model is a sentence-transformers folder whose last module is the
head (``sentence_folder.py``).

A plain BERT-family folder names no pooling; it gets **mean pooling**, because that probes
better. Measured with ``benchmarks/pooling_probe.py`` (2 CPU cores, torch 2.14.1): all-MiniLM-L6-v2
read as a plain ``BertModel`` (its sentence-transformers files ignored), logistic regression
(scikit-learn, C=1) on k tweets per class, accuracy on the same 1,000 held-out tweets (3 classes,
128 tokens); mean ± sd over seeds, and mean pooling minus the pooler on the same training tweets:

=====  =====  =====================  ================  =========================
k      seeds  [CLS] + tanh pooler    mean over tokens  mean - pooler (wins)
=====  =====  =====================  ================  =========================
10     10     49.9 ± 5.1             54.3 ± 4.4        +4.4 points (8 of 10)
50     5      59.7 ± 1.7             63.1 ± 1.9        +3.4 points (5 of 5)
=====  =====  =====================  ================  =========================

With features standardised first (``--standardize``, as the convex probe in ``training/probe.py``
does) the gap widens: 47.4 vs 52.8 (+5.4, 9 of 10) at k=10 and 53.6 vs 61.9 (+8.3, 5 of 5) at
k=50. The first 3 seeds alone give 49.8 vs 53.5 and 59.1 vs 62.0; macro-F1 moves the same way; the
raw [CLS] vector without the pooler is no better than the pooler. L2-normalising the mean adds
+0.9 / +0.5 points with raw features and -0.1 / -0.5 with standardised ones, within the spread,
on a model trained for cosine similarity; so the default for plain folders does not normalise.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
DEFAULT_ORIGIN = "default for encoders without sentence-transformers files"


def register_pooler(name: str):
    """Add a pooling mode; ``name`` is sentence-transformers' own name for it."""
    def add(fn):
        POOLERS[name] = fn
        return fn
    return add


def _accumulation_dtype(hidden: torch.Tensor) -> torch.dtype:
    # sentence-transformers sums half-precision embeddings in float32; we do the same
    return torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype


def _masked_sum(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the unmasked token vectors and their count (clamped so an empty text divides by 1e-9)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    acc = _accumulation_dtype(hidden)
    return (hidden * weights).sum(dim=1, dtype=acc), torch.clamp(weights.sum(dim=1, dtype=acc), min=1e-9)


@register_pooler("cls")
def cls_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first unmasked token (the [CLS] token when padding is on the right), without BERT's pooler."""
    first = mask.to(torch.int).argmax(dim=1)
    index = first.unsqueeze(-1).unsqueeze(1).expand(-1, 1, hidden.shape[-1])
    return torch.gather(hidden, 1, index).squeeze(1)


@register_pooler("max")
def max_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keep = mask.unsqueeze(-1).expand_as(hidden).to(hidden.dtype)
    return hidden.masked_fill(keep == 0, float("-inf")).max(dim=1).values


@register_pooler("mean")
def mean_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total, count = _masked_sum(hidden, mask)
    return (total / count).to(hidden.dtype)


@register_pooler("mean_sqrt_len_tokens")
def mean_sqrt_len_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total, count = _masked_sum(hidden, mask)
    return (total / torch.sqrt(count)).to(hidden.dtype)


@register_pooler("weightedmean")
def weighted_mean_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token i of a text weighs i (counted from its first unmasked token): later tokens count more."""
    acc = _accumulation_dtype(hidden)
    positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=acc).view(1, -1, 1)
    weights = mask.unsqueeze(-1).to(acc) * (positions - mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1))
    return ((hidden * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)).to(hidden.dtype)


@register_pooler("lasttoken")
def last_token_pooling(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    length = hidden.shape[1]
    found, from_end = mask.flip(1).max(1)
    from_end = torch.where(found == 0, length - 1, from_end)
    index = (length - from_end - 1).unsqueeze(-1).unsqueeze(1).expand(-1, 1, hidden.shape[-1])
    keep = mask.unsqueeze(-1).expand_as(hidden).to(hidden.dtype)
    return torch.gather(hidden * keep, 1, index).squeeze(1)


@dataclass(frozen=True)
class Pooling:
    """Which poolers to apply (their outputs concatenated, in this order) and whether to L2-normalise.

    ``origin`` says where the choice came from (a file, or the default); ``ignored`` names the
    sentence-transformers modules of the source folder that the features do not reproduce.
    """

    modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    origin: str = DEFAULT_ORIGIN
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in POOLERS]
        if not self.modes or unknown:
            raise ValueError(f"unknown pooling mode(s) {unknown or list(self.modes)}; transferkit reproduces "
                             f"sentence-transformers' {sorted(POOLERS)}.")

    def width(self, hidden_size: int) -> int:
        return len(self.modes) * hidden_size

    def __call__(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([POOLERS[m](hidden, mask) for m in self.modes], dim=-1)
        return nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    def describe(self) -> str:
        name = "+".join(self.modes) + ("+normalize" if self.normalize else "")
        skipped = f"; not reproduced: {', '.join(self.ignored)}" if self.ignored else ""
        return f"{name} ({self.origin}{skipped})"


def detach_unused_pooler(body: nn.Module) -> dict[str, torch.Tensor]:
    """Take BERT-style ``pooler`` layers out of ``body``; return their weights to save with it.

    Pooling reads the last hidden states, never the tanh pooler, so its parameters would get no
    gradient and only inflate the trainable count. Models whose constructor takes
    ``add_pooling_layer`` run with ``pooler = None``; their weights are kept aside so the saved
    body is the complete checkpoint that ``AutoModel`` and sentence-transformers open silently.
    """
    pooler = getattr(body, "pooler", None)
    if not isinstance(pooler, nn.Module) or "add_pooling_layer" not in inspect.signature(type(body).__init__).parameters:
        return {}
    body.pooler = None
    return {f"pooler.{k}": v.detach() for k, v in pooler.state_dict().items()}


class PooledTextClassifier(nn.Module):
    """Encoder body -> pooling (-> L2 normalisation) -> one ``nn.Linear`` head named ``classifier``.

    This is the computation of a sentence-transformers pipeline Transformer -> Pooling ->
    [Normalize] -> Dense(identity), as one plain module: ``forward(**batch).logits`` like a
    transformers classifier, ``forward_features(**batch)`` for the pooled vectors the head reads.
    """

    def __init__(self, body: nn.Module, pooling: Pooling, num_labels: int,
                 spare_weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.body = body
        self.pooling = pooling
        self.spare_weights = dict(spare_weights or {})  # not parameters: see detach_unused_pooler
        self.classifier = nn.Linear(pooling.width(int(body.config.hidden_size)), num_labels)
        # transformers' classifier initialisation: small weights, zero bias, so the first logits are near zero
        nn.init.normal_(self.classifier.weight, std=float(getattr(body.config, "initializer_range", 0.02)))
        nn.init.zeros_(self.classifier.bias)

    @property
    def config(self):
        """The body's transformers config (it carries ``id2label``)."""
        return self.body.config

    def forward_features(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs) -> torch.Tensor:
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs)
        hidden = self.body(**{k: v for k, v in inputs.items() if v is not None}).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return self.pooling(hidden, attention_mask)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        features = self.forward_features(input_ids, attention_mask, token_type_ids, **kwargs)
        return SequenceClassifierOutput(logits=self.classifier(features))
