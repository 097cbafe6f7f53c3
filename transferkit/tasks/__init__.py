"""Tasks: the loss, the probabilities, the metrics and the prediction format of a head."""
from .classification import MultiLabel, SingleLabel, Task

TASKS: dict[str, Task] = {"single_label": SingleLabel(), "multi_label": MultiLabel()}


def get_task(name: str) -> Task:
    return TASKS[name]


__all__ = ["TASKS", "MultiLabel", "SingleLabel", "Task", "get_task"]
