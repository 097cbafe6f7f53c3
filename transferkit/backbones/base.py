"""The one contract every backbone family meets, and the registry that resolves a source to a family.

A strategy only ever sees a :class:`Backbone`: the model (new head included), its layer groups
ordered from input to output, and the names of the head's parameters. "Freeze the lower 4
groups" therefore means the same thing for a ResNet, a BERT and a GPT-2.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ModelNotFoundError

logger = logging.getLogger("transferkit")


@dataclass
class LayerGroup:
    """A unit of freezing and of learning rates: parameter names, in input-to-output order."""

    name: str
    params: list[str]


@dataclass
class Backbone:
    """A pretrained network with its new head, described the same way for every family."""

    family: "Family"
    model: nn.Module
    groups: list[LayerGroup]
    head: list[str]
    num_features: int
    preprocess: Any
    source: str
    details: dict[str, Any] = field(default_factory=dict)
    # The LoRA adapter as trained, kept when the strategy merges it, so the model can still be saved
    # unmerged: {"config": peft.LoraConfig, "lora": weights, "head": the new head's weights}.
    adapter: dict[str, Any] | None = None

    @property
    def modality(self) -> str:
        return self.family.modality

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.family.logits(self.model, batch)

    def module_names(self, groups: list[LayerGroup]) -> set[str]:
        """Names of the modules that own the parameters of ``groups``."""
        return {p.rsplit(".", 1)[0] for g in groups for p in g.params if "." in p}


class Family:
    """One family of backbones (timm, BERT-like encoders, decoder LMs). Subclasses register themselves.

    ``HEADS`` is the family's head mapping: for each head a task may ask for (``Task.head``), what
    the family builds. A task whose head is not in it is refused before anything loads.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    HEADS: ClassVar[dict[str, str]] = {}
    examples: ClassVar[str] = ""  # models of this family, for messages

    def check_task(self, task, source: Any) -> None:
        """A ModelNotFoundError when this family has no head for ``task``, naming families that have one."""
        if task.head in self.HEADS:
            return
        _load_families()
        able = [f"{f.name} ({f.examples})" for f in FAMILIES.values() if task.head in f.HEADS]
        shown = type(source).__name__ if isinstance(source, nn.Module) else str(source)
        article = "an" if self.name[0] in "aeiou" else "a"
        raise ModelNotFoundError(f"task {task.name!r} needs a model with a {task.head} head, and {shown!r} is "
                                 f"{article} {self.name} model, which has none here. Use a model of: {'; '.join(able)}.")

    def accepts_module(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def accepts_folder(self, config: dict[str, Any]) -> bool:
        raise NotImplementedError

    def build(self, source: str | nn.Module, labels: list[str], task, options: dict[str, Any]) -> Backbone:
        """Load the pretrained network from ``source`` with the head ``task`` (a Task) asks for, sized for ``labels``."""
        raise NotImplementedError

    def logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def save(self, backbone: Backbone, directory: Path, labels: list[str]) -> None:
        """Write the model in the family's own layout (safetensors), so plain timm/transformers open it."""
        raise NotImplementedError

    def load(self, directory: Path, options: dict[str, Any], task) -> Backbone:
        """Rebuild a saved, adapted backbone (head included) for ``task`` from ``directory``."""
        raise NotImplementedError


FAMILIES: dict[str, Family] = {}


def register_family(cls: type[Family]) -> type[Family]:
    FAMILIES[cls.name] = cls()
    return cls


def _load_families() -> None:
    # Importing the modules runs their @register_family; families import their libraries lazily.
    from . import decoders, encoders, timm_models  # noqa: F401


def get_family(name: str) -> Family:
    _load_families()
    return FAMILIES[name]


def group_by_index(names: list[str], head: set[str], layer_pattern: str) -> list[LayerGroup]:
    """Groups for stacked-layer models: what comes before the first layer, each layer, what comes after.

    ``names`` must be in the module's registration order (``named_parameters`` order), which
    is input-to-output for every transformer in the transformers library.
    """
    pattern = re.compile(layer_pattern)
    before, after, layers = [], [], {}
    for name in names:
        if name in head:
            continue
        match = pattern.search(name)
        if match:
            layers.setdefault(int(match.group(1)), []).append(name)
        elif layers:
            after.append(name)
        else:
            before.append(name)
    groups = [LayerGroup("embeddings", before)] if before else []
    groups += [LayerGroup(f"layer.{i}", layers[i]) for i in sorted(layers)]
    if after:
        groups.append(LayerGroup("final", after))
    return groups


def _read_folder_config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ModelNotFoundError(
            f"folder {str(path)!r} has no config.json, so it is neither a timm nor a transformers model folder. "
            "Point to the folder written by `save_pretrained` / timm's `save_for_hf` (or by `result.save`)."
        )
    try:
        config = json.loads(cfg.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(f"{str(cfg)!r} is not valid JSON ({exc}); the model folder is damaged. Save the "
                                 "model again, or fetch the file again.") from None
    if not isinstance(config, dict):
        raise ModelNotFoundError(f"{str(cfg)!r} holds a {type(config).__name__}, not a JSON object: the folder is damaged.")
    _check_weights(path)
    return config


def _check_weights(path: Path) -> None:
    """Weights are read from safetensors only: a pickle can run code when it is loaded."""
    if any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for p in path.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
    if pickles:
        raise ModelNotFoundError(
            f"folder {str(path)!r} holds weights only as pickles ({', '.join(pickles[:3])}); transferkit reads "
            "safetensors only, because loading a pickle can run code. If you trust the file, convert it once: "
            "model = AutoModel.from_pretrained(folder, use_safetensors=False); model.save_pretrained(new_folder) "
            "(safetensors is the default), or for timm, timm.models.load_checkpoint then save_for_hf.")


def _known_names() -> list[str]:
    import timm

    from ..assets import PACKAGED_MODELS

    return list(PACKAGED_MODELS) + timm.list_models() + list(COMMON_HUB_IDS)


# A few Hub ids often typed from memory: used only to suggest close matches in errors.
COMMON_HUB_IDS = (
    "bert-base-uncased", "bert-base-cased", "distilbert-base-uncased", "roberta-base", "gpt2", "distilgpt2",
    "sentence-transformers/all-MiniLM-L6-v2", "microsoft/MiniLM-L12-H384-uncased", "google/vit-base-patch16-224",
)


def resolve_family(source: str | nn.Module, trust_remote_code: bool = False) -> tuple[Family, str | nn.Module]:
    """Which family handles ``source``, and the source in the form that family loads.

    Order: a module the user holds; a ``packaged:`` name; a local folder (``local-dir:`` or a path);
    ``hf-hub:`` and timm architecture names; anything else is tried as a transformers Hub id.
    """
    _load_families()
    if isinstance(source, nn.Module):
        for family in FAMILIES.values():
            if family.accepts_module(source):
                return family, source
        raise ModelNotFoundError(
            f"cannot adapt a {type(source).__name__}: transferkit takes a timm model or a transformers "
            "PreTrainedModel. Wrap custom networks in one of those, or pass a model name or folder."
        )
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise ModelNotFoundError(f"model must be a name, a folder or an nn.Module, got {source!r}: e.g. 'resnet50', "
                                 "'bert-base-uncased', 'packaged:all-MiniLM-L6-v2' or the folder of a saved model.")
    name = str(source)
    from ..assets import is_packaged_name, packaged_model_path

    if is_packaged_name(name):
        name = str(packaged_model_path(name))
    local = name[len("local-dir:"):] if name.startswith("local-dir:") else name
    if Path(local).expanduser().is_dir():
        path = Path(local).expanduser().resolve()
        config = _read_folder_config(path)
        for family in FAMILIES.values():
            if family.accepts_folder(config):
                return family, str(path)
        raise ModelNotFoundError(
            f"folder {str(path)!r} has a config.json that is neither timm's (no 'architecture') nor "
            f"transformers' (no 'model_type'); its keys are {sorted(config)[:12]}."
        )
    if Path(local).expanduser().is_file() and local.lower().endswith(".gguf"):  # llama.cpp weights: decoders read them
        return FAMILIES["decoder"], str(Path(local).expanduser().resolve())
    if Path(local).expanduser().is_file():
        raise ModelNotFoundError(f"{local!r} is a file, not a model folder: pass the folder that holds its config.json "
                                 "and weights (a saved transferkit model: use transferkit.load(folder)).")
    if name.startswith("local-dir:"):
        raise ModelNotFoundError(f"no such folder: {local!r}. Check the path (it is resolved from {Path.cwd()}).")
    import timm

    if name.startswith("hf-hub:") or timm.is_model(name):
        return FAMILIES["timm"], name
    config = _hub_config(name, trust_remote_code)
    for family in (FAMILIES["decoder"], FAMILIES["encoder"]):
        if family.accepts_folder(config):
            return family, name
    raise ModelNotFoundError(f"{name!r} is a transformers {config.get('model_type')!r} model, not a text encoder or decoder.")


def _hub_config(name: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """The transformers config of a Hub id, or a ModelNotFoundError with close matches."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code).to_dict()
    except (OSError, ValueError) as exc:
        from ..errors import close_matches

        hits = close_matches(name, _known_names(), n=5, cutoff=0.7)
        hint = f" Close matches: {', '.join(hits)}." if hits else ""
        raise ModelNotFoundError(
            f"unknown model {name!r}: it is not a timm architecture, not a local folder, and not a Hugging Face "
            f"Hub model that could be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).{hint} "
            "Offline? Save the model with `save_pretrained` and pass its folder, or use a `packaged:` model."
        ) from None


def resolve_backbone(source: str | nn.Module, labels: list[str], task, options: dict[str, Any]) -> Backbone:
    """The backbone of ``source`` with the head ``task`` (a :class:`~transferkit.tasks.Task`) needs."""
    if options.get("trust_remote_code"):
        logger.warning("trust_remote_code=True: Python code shipped with %r may run on this machine", str(source))
    from ..tasks import get_task

    task = get_task(task) if isinstance(task, str) else task
    family, loadable = resolve_family(source, bool(options.get("trust_remote_code")))
    family.check_task(task, source)
    try:
        backbone = family.build(loadable, labels, task, options)
    except Exception as exc:  # a damaged weights file surfaces as the reader's own error type
        if not (type(exc).__module__.startswith("safetensors") or isinstance(exc, (EOFError, UnicodeDecodeError))):
            raise
        raise ModelNotFoundError(f"cannot read the weights of {str(loadable)!r} ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}): model.safetensors is damaged or incomplete "
                                 "(an interrupted download or copy?). Fetch or save the model again.") from None
    trainable_total = sum(p.numel() for p in backbone.model.parameters())
    logger.info(
        "backbone %s: family=%s, %d layer groups (%s ... %s), %d features, %.2fM parameters",
        backbone.source, family.name, len(backbone.groups), backbone.groups[0].name, backbone.groups[-1].name,
        backbone.num_features, trainable_total / 1e6,
    )
    return backbone


