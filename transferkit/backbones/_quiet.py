"""Silence transformers' per-load report and progress bars while transferkit loads and saves.

transferkit already logs what it resolved, including that the new head is freshly initialised,
so transformers' "MISSING: score.weight" table would only alarm users. Their settings are restored.
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def quiet_transformers():
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
