"""What the transformers text families share: tokenizers, the held-module round trip, and the head mapping.

A text family builds each task's head through a transformers Auto class (``HEADS``): decoder LMs
classify from their last non-pad token, which ``AutoModelForSequenceClassification`` does once
``pad_token_id`` is set; token classification is ``AutoModelForTokenClassification``; causal-LM
adaptation keeps the pretrained model and its LM head (``AutoModelForCausalLM``). The label
fields of the model's config come from the task (``Task.model_config``), so a saved folder opens
in transformers with its label names. Encoders build their own pooled sequence classifier
(``encoders.py``) but still open folders saved by transferkit 0.x, which hold a plain
``*ForSequenceClassification`` model, through :meth:`SequenceClassifierFamily.load`.
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
    """What every transformers load gets: safetensors only (a pickle can run code), remote code only if asked.

    A GGUF file (llama.cpp's format, no pickle) is read with ``gguf_file=`` instead of safetensors.
    """
    if options.get("gguf_file"):
        return {"gguf_file": options["gguf_file"], "trust_remote_code": False}
    return {"use_safetensors": True, "trust_remote_code": bool(options.get("trust_remote_code", False))}


def load_tokenizer(source: str, hint: bool = False, trust_remote_code: bool = False, gguf_file: str | None = None):
    from transformers import AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, TypeError) as exc:
        extra = " Pass it with adapt(..., tokenizer=AutoTokenizer.from_pretrained(...))." if hint else ""
        raise ModelNotFoundError(f"could not load the tokenizer for {source!r}: {str(exc).splitlines()[0][:200]}.{extra}") from None


def auto_class(name: str):
    import transformers

    return getattr(transformers, name)


class SequenceClassifierFamily(Family):
    """Shared by the text families: tokenizer loading, held-module round trip, the Auto-class heads."""

    modality = "text"
    HEADS = {"sequence": "AutoModelForSequenceClassification"}

    def build(self, source, labels, task, options) -> Backbone:
        tokenizer = options.get("tokenizer")
        if isinstance(source, nn.Module):
            # A module the user holds: save it and load a copy, so training never changes their object.
            with tempfile.TemporaryDirectory() as tmp:
                name = self.save_held_module(source, tmp)
                if tokenizer is None:
                    tokenizer = load_tokenizer(tmp if (Path(tmp) / "tokenizer_config.json").is_file() else name, hint=True)
                return self.from_folder(tmp, name, labels, task, tokenizer, options)
        path, options = self.loadable(source, options)
        backbone = self.from_folder(path, source, labels, task, tokenizer or load_tokenizer(
            path, trust_remote_code=hub_options(options)["trust_remote_code"], gguf_file=options.get("gguf_file")),
            options)
        if not Path(source).exists():  # a Hub id: named as the base model in the model card
            backbone.details["base_model"] = source
        return backbone

    def loadable(self, source: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Where transformers reads ``source`` from, and the options it needs (decoders: GGUF files)."""
        return source, options

    def save_held_module(self, module: nn.Module, directory: str) -> str:
        """Write ``module`` to ``directory``; return the name it came from (for messages and its tokenizer)."""
        module.save_pretrained(directory)
        return module.config.name_or_path or type(module).__name__

    def from_folder(self, path: str, name: str, labels, task, tokenizer, options) -> Backbone:
        from transformers import AutoConfig

        auto = self.head_class(task)
        head = task.model_config(labels)
        try:
            with quiet_transformers():
                if options.get("pretrained", True):
                    model = auto.from_pretrained(path, ignore_mismatched_sizes=bool(head), dtype=torch.float32,
                                                 **head, **hub_options(options))
                else:  # the same architecture from random initialisation (the from-scratch baseline)
                    config = AutoConfig.from_pretrained(path, **head, **hub_options(options))
                    model = auto.from_config(config, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load {name!r} as {auto.__name__}: {str(exc).splitlines()[0][:300]}") from None
        _drop_quantizer(model)
        return self.describe(model, tokenizer, name, options, task)

    def prepare_tokenizer(self, model: nn.Module, tokenizer) -> None:
        """Hook for decoders, which ship without a padding token."""

    def describe(self, model: nn.Module, tokenizer, name: str, options: dict[str, Any], task=None) -> Backbone:
        """The backbone of a built model: the new head is what lies outside the pretrained body.

        A causal LM keeps its pretrained LM head, so nothing is new: its parameters stay in the
        layer groups (the ``final`` group when the LM head is not tied to the embeddings).
        """
        self.prepare_tokenizer(model, tokenizer)
        prefix = model.base_model_prefix + "."
        names = [n for n, _ in model.named_parameters()]
        keeps_head = task is not None and not task.new_head
        head = [] if keeps_head else [n for n in names if not n.startswith(prefix)]
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

    def head_class(self, task):
        """The transformers Auto class that builds ``task``'s head (the family's ``HEADS`` mapping)."""
        return auto_class(self.HEADS[task.head])

    def load(self, directory: Path, options: dict[str, Any], task) -> Backbone:
        auto = self.head_class(task)
        with quiet_transformers():
            model = auto.from_pretrained(str(directory), dtype=torch.float32, use_safetensors=True)
        return self.describe(model, load_tokenizer(str(directory)), str(options.get("source", directory)), options, task)


def _drop_quantizer(model: nn.Module) -> None:
    """A model read from a GGUF file is de-quantised to float32, but keeps a quantizer that refuses to save it."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
