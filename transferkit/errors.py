"""Errors that say what went wrong, what value was seen, and how to fix it.

Every check in transferkit raises one of these instead of letting a bad input travel
down into torch, where it would surface as a shape mismatch with no hint of its cause.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class TransferkitError(ValueError):
    """Base class: a problem with what the user passed in, with the fix in the message."""


class ModelNotFoundError(TransferkitError):
    """The model name, folder or object could not be resolved to a backbone."""


class DataError(TransferkitError):
    """The dataset is empty, malformed, or its columns / labels cannot be used."""


class StrategyError(TransferkitError):
    """A strategy (or its options) cannot be applied to this backbone."""


class ConfigError(TransferkitError):
    """A configuration value is out of range or of the wrong kind."""


def close_matches(value: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The few choices that look most like ``value`` (case-insensitive)."""
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(str(value).lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]


def did_you_mean(value: str, choices: Iterable[str], n: int = 3) -> str:
    """`` Did you mean 'x'?`` or an empty string when nothing is close."""
    hits = close_matches(value, choices, n=n)
    if not hits:
        return ""
    return " Did you mean " + " or ".join(repr(h) for h in hits) + "?"
