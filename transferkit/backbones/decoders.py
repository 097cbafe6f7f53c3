"""Decoder language models (GPT-2, Llama, SmolLM...) as sequence classifiers.

A decoder's last token is the only one that has read the whole text, so it classifies from there:
the transformers ``*ForSequenceClassification`` classes do exactly that once ``pad_token_id`` is
set. Decoders ship without a padding token; we pad with the end-of-text token and record it as
``pad_token_id``, which makes the classifier pool the last non-pad token of each (right-padded)
sequence.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .base import register_family
from .sequence_classifier import SequenceClassifierFamily, is_causal_lm_config


@register_family
class DecoderFamily(SequenceClassifierFamily):
    name = "decoder"
    modality = "text"

    def accepts_module(self, module: nn.Module) -> bool:
        from transformers import PreTrainedModel

        return isinstance(module, PreTrainedModel) and is_causal_lm_config(module.config.to_dict())

    def accepts_folder(self, config: dict[str, Any]) -> bool:
        return is_causal_lm_config(config)

    def prepare_tokenizer(self, model: nn.Module, tokenizer) -> None:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token is None:
            from ..errors import ModelNotFoundError

            raise ModelNotFoundError("this decoder's tokenizer has no padding, end-of-text or unknown token to pad with; "
                                     "set tokenizer.pad_token and pass tokenizer=... to adapt().")
        tokenizer.padding_side = "right"
        model.config.pad_token_id = tokenizer.pad_token_id
