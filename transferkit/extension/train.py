"""The body-training extension: the grown model in the usual loop, with distillation and rehearsal.

The loop, its validation split, early stopping and the best epoch are ``adapt()``'s own
(``api._split``, ``runner.train``); what differs is the task object (:class:`.distill.Distilling`
when distillation is on) and the head, which starts grown rather than solved (``head_init="given"``:
the probe must not replace the old rows).
"""
from __future__ import annotations

import dataclasses
import logging

from ..data import Examples
from ..tasks import get_task
from .distill import Distilling, teacher_logits, with_teacher

logger = logging.getLogger("transferkit")


def train_body(chosen, grown, previous, data, labels: list[str], n_old: int, protection, cfg):
    """(history, details, backbone) after training ``grown`` with ``chosen`` on the extension's examples."""
    from .. import runner
    from ..api import _Data, _Loaders, _split

    task = (Distilling(n_old, protection.temperature, protection.distillation_weight) if protection.distillation
            else get_task("single_label"))
    cfg = dataclasses.replace(cfg, head_init="given")
    run_data = _Data(Examples(list(data.inputs), None, data.modality), task, labels, data.y.copy())
    _split(run_data, grown, cfg)
    if protection.distillation:
        teacher = teacher_logits(previous, run_data.examples.inputs, data.modality, cfg.batch_size)
        run_data.y = with_teacher(run_data.y, teacher)  # the validation targets stay plain class ids
        logger.info("distillation: the previous model's logits recorded on %d training examples (T=%g, weight %g)",
                    len(teacher), protection.temperature, protection.distillation_weight)
    loaders = _Loaders(run_data, grown, task, cfg)
    run = runner.train(chosen, grown, task, loaders, run_data, cfg)
    run.strategy.finalize(grown)
    details = {"strategy": chosen.name, "distilled": protection.distillation, "best_epoch": run.result.best_epoch,
               "n_validation": run_data.n_validation}
    return run.result.history, details, grown
