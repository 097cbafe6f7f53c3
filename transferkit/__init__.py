"""transferkit: transfer a pretrained image or text backbone to a new task in one call.

>>> from transferkit import adapt
>>> result = adapt("resnet18", train_ds, strategy="lora", epochs=3)
"""
__version__ = "0.1.0"

from ._logging import setup_logging as _setup_logging  # noqa: E402
from .adapted import Adapted, load  # noqa: E402
from .config import RunConfig, TrainingConfig  # noqa: E402
from .errors import TransferkitError  # noqa: E402
from .strategies import Auto, Contrastive, Freeze, Full, LinearProbe, LoRA  # noqa: E402
from .api import adapt  # noqa: E402
from .hub import push_to_hub  # noqa: E402

_setup_logging()

__all__ = ["Adapted", "Auto", "Contrastive", "Freeze", "Full", "LinearProbe", "LoRA", "RunConfig", "TrainingConfig",
           "TransferkitError", "adapt", "load", "push_to_hub", "__version__"]
