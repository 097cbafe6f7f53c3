"""Training: the Accelerate loop and batched inference."""
from .inference import collect_logits
from .loop import FitResult, check_precision, fit, make_accelerator

__all__ = ["FitResult", "check_precision", "collect_logits", "fit", "make_accelerator"]
