"""What a saved folder holds: the merged model in its family's layout, or a peft LoRA adapter.

Merged (the default) is the family's own layout (timm ``save_for_hf``, transformers
``save_pretrained`` or a sentence-transformers folder), which plain timm / transformers open.

Unmerged (``merge_lora=False``) is what peft writes: ``adapter_config.json`` and
``adapter_model.safetensors``, with the new head listed in ``modules_to_save`` so its trained
weights travel with the adapter. ``PeftModel.from_pretrained(base, folder)`` then rebuilds the
trained model from ``base``: the pretrained network with a head of the right size, as
``timm.create_model(name, pretrained=True, num_classes=N)`` or
``AutoModelForSequenceClassification.from_pretrained(name, num_labels=N)`` give it. The folder also
keeps the tokenizer (text) and ``transferkit.json``, so ``transferkit.load`` rebuilds the base
itself from the source it records.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def write_model(backbone, folder: Path, labels: list[str], merge_lora: bool = True) -> None:
    if merge_lora or backbone.adapter is None:
        backbone.family.save(backbone, folder, labels)
        return
    _write_adapter(backbone, folder)


def _head_modules(head: dict[str, Any]) -> list[str]:
    return sorted({name.rsplit(".", 1)[0] for name in head})


def _write_adapter(backbone, folder: Path) -> None:
    from safetensors.torch import save_file

    adapter = backbone.adapter
    config = copy.deepcopy(adapter["config"])
    config.modules_to_save = _head_modules(adapter["head"])
    config.base_model_name_or_path = backbone.details.get("base_model")  # a Hub id, never a local path
    config.inference_mode = True
    config.save_pretrained(str(folder))
    weights = dict(adapter["lora"])
    weights.update({f"base_model.model.{name}": value for name, value in adapter["head"].items()})
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    tokenizer = getattr(backbone.preprocess, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))


def load_adapter(folder: Path, config, options: dict[str, Any]):
    """The trained model from an adapter folder: the base rebuilt from its recorded source, the adapter merged."""
    import warnings

    from peft import PeftModel

    from ..backbones import resolve_family
    from ..backbones.sequence_classifier import load_tokenizer
    from ..strategies.lora import merge_keeping_adapter

    family, loadable = resolve_family(config.model)
    options = dict(options, pretrained=True)
    if family.modality == "text":
        options["tokenizer"] = load_tokenizer(str(folder))
    from ..tasks import get_task

    backbone = family.build(loadable, list(config.labels), get_task(config.task), options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        backbone.model = PeftModel.from_pretrained(backbone.model, str(folder))
    merge_keeping_adapter(backbone)  # kept, so the loaded model can be saved as an adapter again
    backbone.model.eval()
    return backbone
