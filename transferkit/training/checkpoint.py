"""Checkpoints of the training loop, resume, and a clean stop on Ctrl-C.

``adapt(..., output_dir=D, save_every=N)`` keeps, beside ``D`` in ``.D.checkpoint/``, the state of
the loop every N optimizer steps: trainable weights and buffers, the best epoch's weights,
optimizer, scheduler, every process's random generators, the epoch, the batches done in it, the
running loss, early-stopping state and history. It is written like a model folder
(:func:`transferkit.storage.write_folder`: beside, then swapped in), so a kill at any instant
leaves the previous checkpoint or the new one, whole. ``resume=True`` continues from it: the
epoch's order is a function of (seed, epoch) (:class:`~transferkit.data.loaders.EpochSampler`),
the batches already done are skipped without being loaded, and the generators are restored, so
the final weights equal those of a run that was never stopped. The folder goes when the model is
saved.

Ctrl-C (SIGINT) is taken at the next step boundary: a checkpoint is written (when there is an
``output_dir``), one line says how to resume, and the process exits with code 130 and no
traceback. Several processes agree on the stop before any of them writes.

Only the gradient loop is checkpointed: a solved probe and the contrastive phase take seconds to
minutes and are re-run.

Why not Accelerate's ``save_state`` / ``load_state``: they write one file per object into a folder
in place (a kill mid-write leaves a mixed folder), save the whole model rather than what trains,
and do not record the position inside an epoch or the loop's own state (best weights, patience,
history); the pieces they do save are saved here the same way (state dicts, generators per
process), with weights as safetensors and everything read back with ``weights_only=True``.
"""
from __future__ import annotations

import json
import logging
import random
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

logger = logging.getLogger("transferkit")
VERSION = 1
MARKER = "transferkit.json"  # written last by storage.write_folder: its presence means a whole checkpoint


def checkpoint_folder(output_dir: Path) -> Path:
    return output_dir.parent / f".{output_dir.name}.checkpoint"


@dataclass
class Checkpointing:
    """Where the checkpoint lives, how often it is written, whether to resume, and what a resume must match."""

    folder: Path
    every: int | None
    resume: bool
    fingerprint: dict[str, Any]
    output_dir: Path
    written: int = field(default=0, init=False)

    @property
    def last(self) -> Path:
        return self.folder / "last"

    def restore(self) -> dict[str, Any] | None:
        """The saved loop state, if resuming and one exists; a ConfigError if it belongs to another run."""
        from .. import storage

        storage.recover(self.last)
        if not (self.last / MARKER).is_file():
            if self.resume:
                logger.info("resume=True: no checkpoint in %s yet; starting from the beginning", self.folder)
            return None
        state = json.loads((self.last / MARKER).read_text())
        if not self.resume:
            logger.warning("%s holds the checkpoint of an interrupted run (step %d); starting over, and it will be "
                           "replaced. Pass resume=True to continue it instead.", self.folder, state["step"])
            return None
        differs = {k: (state["fingerprint"].get(k), v) for k, v in self.fingerprint.items()
                   if state["fingerprint"].get(k) != v}
        if state.get("version") != VERSION or differs:
            shown = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in list(differs.items())[:4])
            raise ConfigError(f"the checkpoint in {str(self.folder)!r} is from another run ({shown or 'other version'}). "
                              "Resume with the same model, data and options, or pass resume=False to start over.")
        logger.info("resuming from the checkpoint at step %d (epoch %d, %d batches into it)", state["step"],
                    state["epoch"], state["batch"])
        return state

    def tensors(self, name: str) -> dict[str, torch.Tensor] | None:
        from safetensors.torch import load_file

        path = self.last / name
        return load_file(str(path)) if path.is_file() else None

    def torch_file(self, name: str) -> Any:
        return torch.load(self.last / name, weights_only=True)  # our own file; weights_only refuses code anyway

    def save(self, accelerator, model, optimizer, scheduler, state: dict[str, Any], best: dict | None,
             local: dict[str, Any]) -> None:
        """Write the checkpoint (main process), every process's generators and ``local`` state included."""
        from accelerate.utils import gather_object
        from safetensors.torch import save_file

        from .. import storage

        generators = gather_object([{**rng_state(), **local}])
        if accelerator.is_main_process:
            weights = {n: t.detach().cpu().contiguous() for n, t in trainable_state(accelerator.unwrap_model(model)).items()}

            def write(folder: Path) -> None:
                save_file(weights, str(folder / "weights.safetensors"))
                if best is not None:
                    save_file({n: t.cpu().contiguous() for n, t in best.items()}, str(folder / "best.safetensors"))
                torch.save(optimizer.state_dict(), folder / "optimizer.pt")
                torch.save(scheduler.state_dict(), folder / "scheduler.pt")
                torch.save(generators, folder / "rng.pt")

            def marker(folder: Path) -> None:
                payload = {"version": VERSION, "fingerprint": self.fingerprint, **state}
                (folder / MARKER).write_text(json.dumps(payload))

            self.folder.mkdir(parents=True, exist_ok=True)
            storage.write_folder(self.last, write, marker)
        accelerator.wait_for_everyone()
        self.written += 1

    def discard(self) -> None:
        """After the model is saved: the checkpoint has served."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: trainable parameters and every buffer (BatchNorm statistics)."""
    state = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    state.update({n: b.detach() for n, b in model.named_buffers()})
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch generators, in a form ``torch.load(weights_only=True)`` reads back."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    out = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
           "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopRequest:
    """Ctrl-C noted, acted on at the next step boundary (a handler only in the main thread)."""

    def __init__(self) -> None:
        self.asked, self._previous = False, None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.asked:  # a second Ctrl-C: the user wants out now
            raise KeyboardInterrupt
        self.asked = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def agreed(self, accelerator) -> bool:
        """True on every process once any of them was asked to stop."""
        if accelerator.num_processes == 1:
            return self.asked
        flag = torch.tensor([1.0 if self.asked else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, "sum").item() > 0)


def stop(checkpointing: Checkpointing | None, step: int, accelerator) -> None:
    """The one line, then exit code 130 (the shell's code for Ctrl-C), without a traceback."""
    if accelerator.is_main_process:
        if checkpointing is not None:
            how = (f"checkpoint written at step {step}; resume with adapt(..., output_dir="
                   f"{str(checkpointing.output_dir)!r}, resume=True)")
        else:
            how = "nothing saved: pass output_dir= to be able to resume"
        print(f"transferkit: interrupted; {how}", file=sys.stderr, flush=True)
    raise SystemExit(130)
