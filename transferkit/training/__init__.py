"""Training: the Accelerate loop and batched inference."""
from .inference import collect
from .loop import FitResult, check_precision, fit, make_accelerator

__all__ = ["FitResult", "check_precision", "collect", "fit", "make_accelerator"]
