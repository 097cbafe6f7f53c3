"""lora: low-rank adapters (peft) on the Linear / Conv2d / GPT-2 Conv1D layers of chosen groups.

The backbone stays frozen; each targeted layer learns ``W + (alpha/r) * B @ A``. The new head
is trained in full. After training the adapters are merged into the weights, so the saved model
is a plain timm / transformers model that needs no peft to run (and the head is never lost on
save, peft#876); a copy of the adapters is kept so ``save(merge_lora=False)`` can still write them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from torch import nn

from ..errors import StrategyError
from .base import Strategy, freeze_all, is_int, is_number, lower_count, register_strategy, require, unfreeze

GROUP_CHOICES = ("all", "upper", "lower")


def _is_target(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv2d):
        return module.groups == 1  # depthwise convolutions have no useful low-rank form
    return type(module).__name__ == "Conv1D"  # transformers.pytorch_utils.Conv1D (GPT-2)


def lora_parameter_count(module: nn.Module, rank: int) -> int:
    """Trainable parameters LoRA adds to one layer: r*(in+out), or r*(in*kh*kw + out) for a conv."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return rank * (module.in_channels * kh * kw + module.out_channels)
    if isinstance(module, nn.Linear):
        return rank * (module.in_features + module.out_features)
    rows, cols = module.weight.shape  # Conv1D stores (in, out)
    return rank * (rows + cols)


@register_strategy
@dataclass
class LoRA(Strategy):
    """LoRA on ``groups`` ("all", "upper", "lower" half, or the upper N groups when an int).

    ``target_modules`` narrows the targets to layers whose name ends with one of the given
    names (e.g. ``["query", "value"]``); ``None`` targets every eligible layer in the groups.
    """

    name = "lora"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    groups: str | int = "all"
    target_modules: list[str] | None = None
    lr_scale: float = 1.0
    targets: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        require(is_int(self.rank) and self.rank >= 1, "LoRA", "rank", self.rank, "an integer >= 1")
        require(is_number(self.alpha) and self.alpha > 0, "LoRA", "alpha", self.alpha, "a number > 0 (often 2 x rank)")
        require(is_number(self.dropout, 0, 1) and self.dropout < 1, "LoRA", "dropout", self.dropout, "in [0, 1)")
        require(is_number(self.lr_scale) and self.lr_scale > 0, "LoRA", "lr_scale", self.lr_scale, "a number > 0")
        if not ((is_int(self.groups) and self.groups >= 1) or self.groups in GROUP_CHOICES):
            raise StrategyError(f"LoRA groups must be one of {GROUP_CHOICES} or an int, got {self.groups!r}.")
        require(self.target_modules is None or (isinstance(self.target_modules, (list, tuple)) and self.target_modules
                and all(isinstance(t, str) for t in self.target_modules)), "LoRA", "target_modules",
                self.target_modules, "None or a list of module names such as ['query', 'value']")

    def chosen_groups(self, backbone):
        n = len(backbone.groups)
        if isinstance(self.groups, int):
            return backbone.groups[n - lower_count(n, self.groups, None):]
        half = n // 2
        return {"all": backbone.groups, "lower": backbone.groups[:half], "upper": backbone.groups[half:]}[self.groups]

    def target_layers(self, backbone) -> dict[str, nn.Module]:
        chosen = self.chosen_groups(backbone)
        owners = backbone.module_names(chosen)
        head_modules = {p.rsplit(".", 1)[0] for p in backbone.head}
        layers = {
            name: m for name, m in backbone.model.named_modules()
            if name in owners and name not in head_modules and _is_target(m)
            and (self.target_modules is None or any(name == t or name.endswith("." + t) for t in self.target_modules))
        }
        if not layers:
            kinds = sorted({type(m).__name__ for n, m in backbone.model.named_modules() if n in owners})
            raise StrategyError(
                f"LoRA found no target layers in groups {[g.name for g in chosen][:6]} "
                f"(target_modules={self.target_modules!r}; layer types there: {kinds[:8]}). LoRA applies to Linear, "
                "Conv2d (not depthwise) and Conv1D layers: choose groups='all', other target_modules, or strategy='freeze'."
            )
        return layers

    def apply(self, backbone, learning_rate):
        import peft

        layers = self.target_layers(backbone)
        self.targets = sorted(layers)
        freeze_all(backbone.model)
        config = peft.LoraConfig(
            r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.targets,
            fan_in_fan_out=any(type(m).__name__ == "Conv1D" for m in layers.values()), bias="none",
        )
        with warnings.catch_warnings():  # peft probes deprecated transformers attributes while wrapping
            warnings.simplefilter("ignore", FutureWarning)
            backbone.model = peft.get_peft_model(backbone.model, config)
        named = dict(backbone.model.named_parameters())
        lora_params = [p for n, p in named.items() if "lora_" in n and p.requires_grad]
        head = unfreeze(backbone.model, [n for n in named if n.split("base_model.model.", 1)[-1] in set(backbone.head)])
        return [{"name": "lora", "params": lora_params, "lr": learning_rate * self.lr_scale},
                {"name": "head", "params": head, "lr": learning_rate}]

    def finalize(self, backbone) -> None:
        """Merge the adapters into the weights, keeping a copy of them for ``save(merge_lora=False)``."""
        merge_keeping_adapter(backbone)

    def to_dict(self):
        out = super().to_dict()
        out.pop("targets", None)
        return out


def merge_keeping_adapter(backbone) -> None:
    """Replace the peft-wrapped ``backbone.model`` by its merged model; keep the adapter in ``backbone.adapter``.

    Kept: the LoRA config, the LoRA weights and the new head's weights (on CPU), which is all a
    peft adapter folder needs besides the base model.
    """
    from peft import get_peft_model_state_dict

    model = backbone.model
    config = model.peft_config["default"]
    lora = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()
            if "lora_" in k}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        backbone.model = model.merge_and_unload()
    head = set(backbone.head)  # read after merging: a loaded adapter's head is wrapped until then
    backbone.adapter = {"config": config, "lora": lora,
                        "head": {n: p.detach().cpu().clone() for n, p in backbone.model.named_parameters() if n in head}}
