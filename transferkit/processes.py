"""Work that one process does for all: under ``accelerate launch`` / ``torchrun`` every process runs the
user's script, so a save or an upload called everywhere must happen once.

``on_main_process(fn)`` is a collective call: every process must reach it (as every process reaches
``result.save(...)`` in a script), the main one runs ``fn``, and all return its result or raise its
error. Calling it from the main process alone (``if accelerator.is_main_process: result.save()``)
would wait for the others forever; the README says to call ``save`` / ``push_to_hub`` everywhere.
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import TransferkitError


def on_main_process(fn: Callable[[], Any]) -> Any:
    """``fn()`` on the main process only; every process returns its result, or raises its error."""
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return fn()
    from accelerate.utils import broadcast_object_list

    box, error = [None], None
    if state.is_main_process:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # every process must learn of it, or the others wait forever
            box[0], error = ("error", f"{type(exc).__name__}: {exc}"), exc
    broadcast_object_list(box)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "error":
        raise TransferkitError(f"the main process failed: {value}")
    return value
