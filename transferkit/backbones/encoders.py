"""Hugging Face text encoders (BERT, DistilBERT, RoBERTa, MiniLM, mpnet, ...) classifying from their own pooling.

The classification model is a :class:`~.pooling.PooledTextClassifier`: the ``AutoModel`` body,
the pooling the model was trained with (read from its sentence-transformers files; mean pooling
for a plain BERT-family folder, see ``pooling.py`` for the measurement behind that default), and
one ``nn.Linear`` head named ``classifier``. Layer groups are the embeddings, each transformer
layer, and what follows the last layer when the architecture has anything there.

Saved folders are sentence-transformers folders (``sentence_folder.py``): ``AutoModel`` opens the
body, ``SentenceTransformer(folder).encode(texts)`` returns the logits; and they carry the
classifier as a transformers class (``remote_classifier.py``), so ``pipeline("text-classification",
model=folder, trust_remote_code=True)`` gives the same predictions. Folders saved by
transferkit 0.x (plain ``*ForSequenceClassification``) still load, through the Auto class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelNotFoundError
from . import sentence_folder
from ._quiet import quiet_transformers
from .base import Backbone, group_by_index, register_family
from .pooling import Pooling, PooledTextClassifier, detach_unused_pooler
from .preprocess import TextPreprocess, fitted_max_length
from .sequence_classifier import LAYER_PATTERN, SequenceClassifierFamily, hub_options, is_causal_lm_config, load_tokenizer


def _is_sentence_transformer(module: nn.Module) -> bool:
    return type(module).__module__.startswith("sentence_transformers") and hasattr(module, "encode")


@register_family
class EncoderFamily(SequenceClassifierFamily):
    name = "encoder"
    modality = "text"
    # "sequence": the pooled classifier built here (PooledTextClassifier); "token": one label per sub-word
    HEADS = {"sequence": "PooledTextClassifier", "token": "AutoModelForTokenClassification"}
    examples = "bert-base-uncased, roberta-base, packaged:all-MiniLM-L6-v2"

    def accepts_module(self, module: nn.Module) -> bool:
        from transformers import PreTrainedModel

        if isinstance(module, PreTrainedModel):
            return not is_causal_lm_config(module.config.to_dict())
        return isinstance(module, PooledTextClassifier) or _is_sentence_transformer(module)

    def accepts_folder(self, config: dict[str, Any]) -> bool:
        return "model_type" in config and not is_causal_lm_config(config)

    def save_held_module(self, module: nn.Module, directory: str) -> str:
        if _is_sentence_transformer(module):  # its own save writes modules.json, the pooling and the tokenizer
            module.save(directory)
            return type(module).__name__
        if isinstance(module, PooledTextClassifier):  # a model adapted before: its body and pooling, a new head
            sentence_folder.write_body(Path(directory), module)
            sentence_folder.write_pipeline(Path(directory), module.pooling, int(module.config.hidden_size))
            return module.config.name_or_path or type(module).__name__
        name = super().save_held_module(module, directory)
        # a model loaded from a sentence-transformers folder or Hub id keeps the pooling declared there
        pooling = sentence_folder.read_pooling(module.config.name_or_path) if module.config.name_or_path else None
        if pooling is not None:
            sentence_folder.write_pipeline(Path(directory), pooling, int(module.config.hidden_size))
        return name

    def from_folder(self, path: str, name: str, labels, task, tokenizer, options) -> Backbone:
        from transformers import AutoConfig, AutoModel

        if task.head != "sequence":  # the Auto-class heads (token classification)
            return super().from_folder(path, name, labels, task, tokenizer, options)

        pooling = sentence_folder.read_pooling(path)
        try:
            with quiet_transformers():
                if options.get("pretrained", True):
                    body = AutoModel.from_pretrained(path, dtype=torch.float32, **hub_options(options))
                else:  # the same architecture from random initialisation (the from-scratch baseline)
                    config = AutoConfig.from_pretrained(path, trust_remote_code=hub_options(options)["trust_remote_code"])
                    body = AutoModel.from_config(config, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load {name!r} as a transformers encoder: {str(exc).splitlines()[0][:300]}") from None
        body.config.update(task.model_config(labels))
        model = PooledTextClassifier(body, pooling or Pooling(), len(labels), detach_unused_pooler(body))
        return self.describe(model, tokenizer, name, options)

    def head_class(self, task):
        """Folders without a pooled head: token classifiers, and transferkit 0.x's *ForSequenceClassification."""
        from .sequence_classifier import auto_class

        return auto_class("AutoModelForSequenceClassification" if task.head == "sequence" else self.HEADS[task.head])

    def describe(self, model: nn.Module, tokenizer, name: str, options: dict[str, Any], task=None) -> Backbone:
        if not isinstance(model, PooledTextClassifier):  # a token classifier, or a transferkit 0.x folder
            return super().describe(model, tokenizer, name, options, task)
        names = [n for n, _ in model.named_parameters()]
        head = [f"classifier.{n}" for n, _ in model.classifier.named_parameters()]
        return Backbone(
            family=self, model=model, groups=group_by_index(names, set(head), LAYER_PATTERN), head=head,
            num_features=model.classifier.in_features, source=str(name),
            preprocess=TextPreprocess(tokenizer, max_length=fitted_max_length(int(options.get("max_length", 128)),
                                                                               getattr(model, "config", None))),
            details={"model_type": model.config.model_type, "pooling": model.pooling.describe()},
        )

    def save(self, backbone: Backbone, directory: Path, labels: list[str]) -> None:
        if not isinstance(backbone.model, PooledTextClassifier):
            return super().save(backbone, directory, labels)
        from . import remote_classifier

        head = sentence_folder.write(directory, backbone.model, backbone.preprocess.tokenizer,
                                     backbone.preprocess.max_length)
        remote_classifier.write(directory, backbone.model.pooling, head)

    def load(self, directory: Path, options: dict[str, Any], task) -> Backbone:
        from transformers import AutoModel

        saved = sentence_folder.read_head(directory)
        if saved is None:  # a token classifier, or a plain *ForSequenceClassification folder (transferkit 0.x)
            return super().load(directory, options, task)
        pooling, head = saved
        with quiet_transformers():
            body = AutoModel.from_pretrained(str(directory), dtype=torch.float32, use_safetensors=True)
        model = PooledTextClassifier(body, pooling, int(head["weight"].shape[0]), detach_unused_pooler(body))
        model.classifier.load_state_dict(head)
        return self.describe(model, load_tokenizer(str(directory)), str(options.get("source", directory)), options)
