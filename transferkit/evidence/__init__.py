"""Evidence: transfer vs from-scratch vs classic ML on the user's data, learning curves, the report."""
from .compare import CompareConfig, Comparison
from .curve import LearningCurve, compare_on, learning_curve

__all__ = ["CompareConfig", "Comparison", "LearningCurve", "compare_on", "learning_curve"]
