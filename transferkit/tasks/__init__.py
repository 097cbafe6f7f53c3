"""Tasks: everything that differs between kinds of prediction (see ``base`` for the contract).

Registered: ``single_label`` and ``multi_label`` classification, ``token_classification`` (NER)
and ``causal_lm`` (domain adaptation of a decoder LM).
"""
from .base import ALIASES, TASKS, Task, detect_task, get_task, read_for, register_task, task_names

__all__ = ["ALIASES", "TASKS", "Task", "detect_task", "get_task", "read_for", "register_task", "task_names"]
