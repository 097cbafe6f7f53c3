"""The encoder classifier as a transformers model class, shipped inside every saved encoder folder.

Why: an encoder classifies from the pooling its base model was trained with (mean pooling for
MiniLM; see ``pooling.py`` for the measurement), and no built-in transformers class pools that
way (``BertForSequenceClassification`` reads BERT's tanh pooler on [CLS]). So the folder carries
``modeling_transferkit.py`` (``pooling.py`` followed by the class below, nothing else) and an
``auto_map`` entry in ``config.json``. Then
``pipeline("text-classification", model=folder_or_repo, trust_remote_code=True)`` and
``AutoModelForSequenceClassification.from_pretrained(..., trust_remote_code=True)`` compute exactly
what transferkit computes. Without running any shipped code, ``SentenceTransformer(folder).encode``
returns the same logits through the sentence-transformers pipeline the folder also describes.

The class keeps :class:`~.pooling.PooledTextClassifier`'s parameter names (``body.*`` and
``classifier.*``), so a peft adapter trained on one applies to the other. The body's weights are
the folder's root ``model.safetensors`` (transformers adds the ``body.`` prefix when it loads a
base checkpoint into a model with a head); the head's are the sentence-transformers ``Dense``
module's, read by ``from_pretrained`` from the path the config names.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .pooling import Pooling

MODULE_FILE = "modeling_transferkit.py"
CLASS_NAME = "TransferkitTextClassifier"
CONFIG_KEY = "transferkit_classifier"


class TransferkitTextClassifier(PreTrainedModel):
    """Encoder body -> the base model's pooling (-> L2 normalisation) -> a linear head, as one transformers model."""

    config_class = PretrainedConfig
    base_model_prefix = "body"
    _keys_to_ignore_on_load_missing = [r"^classifier\."]  # read from the Dense module by from_pretrained

    def __init__(self, config):
        super().__init__(config)
        spec = getattr(config, CONFIG_KEY)
        self.pooling = Pooling(tuple(spec["modes"]), bool(spec["normalize"]))
        self.body = AutoModel.from_config(config)
        self.classifier = nn.Linear(self.pooling.width(int(config.hidden_size)), int(config.num_labels))
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        from safetensors.torch import load_file
        from transformers.utils import cached_file

        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        where = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        path = cached_file(pretrained_model_name_or_path, getattr(model.config, CONFIG_KEY)["head"], **where)
        head = load_file(path)
        with torch.no_grad():
            model.classifier.weight.copy_(head["linear.weight"])
            if "linear.bias" in head:
                model.classifier.bias.copy_(head["linear.bias"])
        return model

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs)
        inputs.pop("return_dict", None)
        hidden = self.body(**{k: v for k, v in inputs.items() if v is not None}).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        logits = self.classifier(self.pooling(hidden, attention_mask))
        loss = None
        if labels is not None:
            multi = self.config.problem_type == "multi_label_classification"
            loss = (nn.functional.binary_cross_entropy_with_logits(logits, labels.float()) if multi
                    else nn.functional.cross_entropy(logits, labels))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def module_source() -> str:
    """``pooling.py`` then this class: one file with no import from transferkit."""
    from . import pooling

    own = inspect.getsource(TransferkitTextClassifier)
    header = ("# Written by transferkit: the encoder classifier (pooling + linear head) as a transformers model.\n"
              "# Load with AutoModelForSequenceClassification.from_pretrained(..., trust_remote_code=True).\n")
    imports = ("from transformers import AutoModel, PretrainedConfig, PreTrainedModel\n"
               "from transformers.modeling_outputs import SequenceClassifierOutput\n\n"
               f"CONFIG_KEY = {CONFIG_KEY!r}\n\n\n")
    return header + inspect.getsource(pooling) + "\n\n" + imports + own


def write(directory: Path, pooling: Pooling, head_file: str) -> None:
    """Add the module file and point ``config.json``'s ``auto_map`` at it."""
    (directory / MODULE_FILE).write_text(module_source())
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": f"{MODULE_FILE[:-3]}.{CLASS_NAME}"}
    config[CONFIG_KEY] = {"modes": list(pooling.modes), "normalize": pooling.normalize, "head": head_file}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
