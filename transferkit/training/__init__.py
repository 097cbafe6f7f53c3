"""Training: the Accelerate loop and batched inference."""
from .inference import collect_logits
from .loop import FitResult, fit, make_accelerator

__all__ = ["FitResult", "collect_logits", "fit", "make_accelerator"]
