"""Hugging Face text encoders (BERT, DistilBERT, RoBERTa, MiniLM, ...) through the Auto classes.

The classification model is ``AutoModelForSequenceClassification`` with a fresh head; the
layer groups are the embeddings, each transformer layer, and what follows (e.g. the pooler).
Saved folders are plain ``save_pretrained`` folders with ``id2label`` and the tokenizer.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelNotFoundError
from ._quiet import quiet_transformers
from .base import Backbone, Family, group_by_index, register_family
from .preprocess import TextPreprocess

# The numbered stacks of the transformers library: BERT's encoder.layer, GPT-2's h, Llama's layers, T5's block.
LAYER_PATTERN = r"\.(?:layer|layers|h|block|blocks)\.(\d+)\."
CAUSAL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi",
                "phi3", "gemma", "gemma2", "opt", "bloom", "falcon", "smollm3", "olmo", "starcoder2"}


def is_causal_lm_config(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return (config.get("model_type") in CAUSAL_TYPES
            or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures))


@register_family
class EncoderFamily(Family):
    name = "encoder"
    modality = "text"

    def accepts_module(self, module: nn.Module) -> bool:
        from transformers import PreTrainedModel

        return isinstance(module, PreTrainedModel) and not is_causal_lm_config(module.config.to_dict())

    def accepts_folder(self, config: dict[str, Any]) -> bool:
        return "model_type" in config and not is_causal_lm_config(config)

    def build(self, source, labels, task, options) -> Backbone:
        tokenizer = options.get("tokenizer")
        if isinstance(source, nn.Module):
            # The Auto class builds the right head for any base model: round-trip through a folder.
            with tempfile.TemporaryDirectory() as tmp:
                source.save_pretrained(tmp)
                name = source.config.name_or_path or type(source).__name__
                if tokenizer is None:
                    tokenizer = self._tokenizer(name, hint=True)
                return self._from_pretrained(tmp, name, labels, task, tokenizer, options)
        return self._from_pretrained(source, source, labels, task, tokenizer or self._tokenizer(source), options)

    def _tokenizer(self, source: str, hint: bool = False):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError, TypeError) as exc:
            extra = " Pass it with adapt(..., tokenizer=AutoTokenizer.from_pretrained(...))." if hint else ""
            raise ModelNotFoundError(f"could not load the tokenizer for {source!r}: {str(exc).splitlines()[0][:200]}.{extra}") from None

    def _from_pretrained(self, path: str, name: str, labels, task, tokenizer, options) -> Backbone:
        from transformers import AutoModelForSequenceClassification

        from transformers import AutoConfig

        problem = "multi_label_classification" if task == "multi_label" else "single_label_classification"
        head = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={l: i for i, l in enumerate(labels)}, problem_type=problem)
        try:
            with quiet_transformers():
                if options.get("pretrained", True):
                    model = AutoModelForSequenceClassification.from_pretrained(
                        path, ignore_mismatched_sizes=True, dtype=torch.float32, **head)
                else:  # the same architecture from random initialisation (the from-scratch baseline)
                    config = AutoConfig.from_pretrained(path, **head)
                    model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load {name!r} as a sequence classifier: {str(exc).splitlines()[0][:300]}") from None
        return self._describe(model, tokenizer, name, options)

    def prepare_tokenizer(self, model: nn.Module, tokenizer) -> None:
        """Hook for decoders, which ship without a padding token."""

    def _describe(self, model: nn.Module, tokenizer, name: str, options: dict[str, Any]) -> Backbone:
        self.prepare_tokenizer(model, tokenizer)
        prefix = model.base_model_prefix + "."
        names = [n for n, _ in model.named_parameters()]
        head = [n for n in names if not n.startswith(prefix)]
        return Backbone(
            family=self, model=model, groups=group_by_index(names, set(head), LAYER_PATTERN), head=head,
            num_features=int(model.config.hidden_size), source=str(name),
            preprocess=TextPreprocess(tokenizer, max_length=int(options.get("max_length", 128))),
            details={"model_type": model.config.model_type},
        )

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).logits

    def save(self, backbone: Backbone, directory: Path, labels: list[str]) -> None:
        with quiet_transformers():
            backbone.model.save_pretrained(str(directory))
        backbone.preprocess.tokenizer.save_pretrained(str(directory))

    def load(self, directory: Path, options: dict[str, Any]) -> Backbone:
        from transformers import AutoModelForSequenceClassification

        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(str(directory), dtype=torch.float32)
        return self._describe(model, self._tokenizer(str(directory)), str(options.get("source", directory)), options)
