"""Strategies: how much of the backbone is trained, and how. Each module registers one."""
from .auto import Auto
from .base import STRATEGIES, Strategy, count_parameters, frozen_modules, set_train_mode, strategy_from
from .contrastive import Contrastive
from .freeze import Freeze
from .full import Full
from .linear_probe import LinearProbe
from .lora import LoRA, lora_parameter_count

__all__ = ["STRATEGIES", "Auto", "Contrastive", "Freeze", "Full", "LinearProbe", "LoRA", "Strategy", "count_parameters",
           "frozen_modules", "lora_parameter_count", "set_train_mode", "strategy_from"]
