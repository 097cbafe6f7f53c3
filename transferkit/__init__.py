"""transferkit: transfer a pretrained image or text backbone to a new task in one call.

>>> from transferkit import adapt
>>> result = adapt("resnet18", train_ds, strategy="lora", epochs=3)

The public names load on first use (PEP 562), so ``import transferkit`` and ``transferkit --help``
do not pay for torch, timm and transformers until something needs them.
"""
__version__ = "0.1.0"

from ._logging import setup_logging as _setup_logging  # noqa: E402
from .errors import TransferkitError  # noqa: E402

_setup_logging()

_PUBLIC = {"Adapted": "adapted", "load": "adapted", "RunConfig": "config", "TrainingConfig": "config",
           "Auto": "strategies", "Contrastive": "strategies", "Freeze": "strategies", "Full": "strategies",
           "LinearProbe": "strategies", "LoRA": "strategies", "adapt": "api", "push_to_hub": "hub",
           "Protection": "extension"}

__all__ = sorted(_PUBLIC) + ["TransferkitError", "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
