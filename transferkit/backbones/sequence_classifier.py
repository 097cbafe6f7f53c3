"""Text models as transformers ``AutoModelForSequenceClassification``: the path decoders take.

Decoder LMs classify from their last non-pad token, which is exactly what the transformers
classifier does once ``pad_token_id`` is set, so they keep that class. Encoders build their own
pooled classifier (``encoders.py``) but still open folders saved by transferkit 0.x, which hold
a plain ``*ForSequenceClassification`` model, through :meth:`SequenceClassifierFamily.load`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelNotFoundError
from ._quiet import quiet_transformers
from .base import Backbone, Family, group_by_index
from .preprocess import TextPreprocess, fitted_max_length

# The numbered stacks of the transformers library: BERT's encoder.layer, GPT-2's h, Llama's layers, T5's block.
LAYER_PATTERN = r"\.(?:layer|layers|h|block|blocks)\.(\d+)\."
CAUSAL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi",
                "phi3", "gemma", "gemma2", "opt", "bloom", "falcon", "smollm3", "olmo", "starcoder2"}


def is_causal_lm_config(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return (config.get("model_type") in CAUSAL_TYPES
            or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures))


def hub_options(options: dict[str, Any]) -> dict[str, Any]:
    """What every transformers load gets: safetensors only (a pickle can run code), remote code only if asked."""
    return {"use_safetensors": True, "trust_remote_code": bool(options.get("trust_remote_code", False))}


def load_tokenizer(source: str, hint: bool = False, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        extra = " Pass it with adapt(..., tokenizer=AutoTokenizer.from_pretrained(...))." if hint else ""
        raise ModelNotFoundError(f"could not load the tokenizer for {source!r}: {str(exc).splitlines()[0][:200]}.{extra}") from None


def label_config(labels: list[str], task: str) -> dict[str, Any]:
    """The transformers config fields that carry the label names, so they travel with a saved folder."""
    problem = "multi_label_classification" if task == "multi_label" else "single_label_classification"
    return dict(id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}, problem_type=problem)


class SequenceClassifierFamily(Family):
    """Shared by the text families: tokenizer loading, held-module round trip, the Auto-class classifier."""

    modality = "text"

    def build(self, source, labels, task, options) -> Backbone:
        tokenizer = options.get("tokenizer")
        if isinstance(source, nn.Module):
            # A module the user holds: save it and load a copy, so training never changes their object.
            with tempfile.TemporaryDirectory() as tmp:
                name = self.save_held_module(source, tmp)
                if tokenizer is None:
                    tokenizer = load_tokenizer(tmp if (Path(tmp) / "tokenizer_config.json").is_file() else name, hint=True)
                return self.from_folder(tmp, name, labels, task, tokenizer, options)
        backbone = self.from_folder(source, source, labels, task, tokenizer or load_tokenizer(
            source, trust_remote_code=hub_options(options)["trust_remote_code"]), options)
        if not Path(source).is_dir():  # a Hub id: named as the base model in the model card
            backbone.details["base_model"] = source
        return backbone

    def save_held_module(self, module: nn.Module, directory: str) -> str:
        """Write ``module`` to ``directory``; return the name it came from (for messages and its tokenizer)."""
        module.save_pretrained(directory)
        return module.config.name_or_path or type(module).__name__

    def from_folder(self, path: str, name: str, labels, task, tokenizer, options) -> Backbone:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        head = dict(num_labels=len(labels), **label_config(labels, task))
        try:
            with quiet_transformers():
                if options.get("pretrained", True):
                    model = AutoModelForSequenceClassification.from_pretrained(
                        path, ignore_mismatched_sizes=True, dtype=torch.float32, **head, **hub_options(options))
                else:  # the same architecture from random initialisation (the from-scratch baseline)
                    config = AutoConfig.from_pretrained(path, **head,
                                                        trust_remote_code=hub_options(options)["trust_remote_code"])
                    model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load {name!r} as a sequence classifier: {str(exc).splitlines()[0][:300]}") from None
        return self.describe(model, tokenizer, name, options)

    def prepare_tokenizer(self, model: nn.Module, tokenizer) -> None:
        """Hook for decoders, which ship without a padding token."""

    def describe(self, model: nn.Module, tokenizer, name: str, options: dict[str, Any]) -> Backbone:
        self.prepare_tokenizer(model, tokenizer)
        prefix = model.base_model_prefix + "."
        names = [n for n, _ in model.named_parameters()]
        head = [n for n in names if not n.startswith(prefix)]
        return Backbone(
            family=self, model=model, groups=group_by_index(names, set(head), LAYER_PATTERN), head=head,
            num_features=int(model.config.hidden_size), source=str(name),
            preprocess=TextPreprocess(tokenizer, max_length=fitted_max_length(int(options.get("max_length", 128)),
                                                                               getattr(model, "config", None))),
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
            model = AutoModelForSequenceClassification.from_pretrained(str(directory), dtype=torch.float32,
                                                                       use_safetensors=True)
        return self.describe(model, load_tokenizer(str(directory)), str(options.get("source", directory)), options)
