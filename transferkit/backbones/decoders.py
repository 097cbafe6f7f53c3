"""Decoder language models (GPT-2, Llama, SmolLM...): sequence classifiers, or adapted as language models.

Classification: a decoder's last token is the only one that has read the whole text, so it
classifies from there: the transformers ``*ForSequenceClassification`` classes do exactly that
once ``pad_token_id`` is set. Decoders ship without a padding token; we pad with the end-of-text
token and record it as ``pad_token_id``, which makes the classifier pool the last non-pad token
of each (right-padded) sequence.

Causal-LM adaptation (``task="causal_lm"``) keeps ``*ForCausalLM`` whole, LM head included.

A ``.gguf`` file (llama.cpp's format, as the packaged SmolLM2 ships) is read by transformers
with ``gguf_file=`` and de-quantised to float32 on loading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .base import register_family
from .sequence_classifier import SequenceClassifierFamily, is_causal_lm_config


@register_family
class DecoderFamily(SequenceClassifierFamily):
    name = "decoder"
    modality = "text"
    HEADS = {"sequence": "AutoModelForSequenceClassification", "causal_lm": "AutoModelForCausalLM"}
    examples = "gpt2, distilgpt2, HuggingFaceTB/SmolLM2-135M, a .gguf file"

    def accepts_module(self, module: nn.Module) -> bool:
        from transformers import PreTrainedModel

        return isinstance(module, PreTrainedModel) and is_causal_lm_config(module.config.to_dict())

    def accepts_folder(self, config: dict[str, Any]) -> bool:
        return is_causal_lm_config(config)

    def loadable(self, source: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if str(source).lower().endswith(".gguf") and Path(source).is_file():
            return str(Path(source).parent), dict(options, gguf_file=Path(source).name)
        return source, options

    def save_held_module(self, module: nn.Module, directory: str) -> str:
        """A module read from a GGUF file keeps a quantizer that refuses to save; it is set aside meanwhile."""
        quantizer = getattr(module, "hf_quantizer", None)
        quantization = getattr(module.config, "quantization_config", None)
        if quantizer is None:
            return super().save_held_module(module, directory)
        module.hf_quantizer = None
        del module.config.quantization_config
        try:
            return super().save_held_module(module, directory)
        finally:
            module.hf_quantizer = quantizer
            if quantization is not None:
                module.config.quantization_config = quantization

    def prepare_tokenizer(self, model: nn.Module, tokenizer) -> None:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token is None:
            from ..errors import ModelNotFoundError

            raise ModelNotFoundError("this decoder's tokenizer has no padding, end-of-text or unknown token to pad with; "
                                     "set tokenizer.pad_token and pass tokenizer=... to adapt().")
        tokenizer.padding_side = "right"  # the classifier pools the last non-pad token; generate() pads left
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
