"""Class extension: ``adapt(previous, new_data, extend=True)`` adds classes to a trained classifier.

``run`` grows the head and trains (head only by default), ``config`` holds the ``Protection``
options, ``memory`` what a classifier keeps for later extensions (class means, exemplars),
``scores`` the old / new / forgetting metrics, ``compare`` the four-arm table.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .config import Protection, check_keep_exemplars

__all__ = ["Protection", "adapt_extension", "check_keep_exemplars"]
logger = logging.getLogger("transferkit")


def adapt_extension(model: Any, train: Any, extend: Any, rehearsal: Any, keep_exemplars: int, output_dir: Path | None,
                    given: dict[str, Any], options: dict[str, Any]):
    """``adapt()``'s path for ``extend=...`` (``given``: adapt's arguments): the options that apply to an
    extension, checked; then extend (or compare the four arms), score the test set, save."""
    from ..api import _training_config
    from ..errors import ConfigError
    from ..processes import on_main_process
    from ..training import check_precision

    if extend is False:
        raise ConfigError("rehearsal= gives old examples to rehearse while adding classes; it needs extend=True.")
    refused = [k for k in ("eval_dataset", "tokenizer", "resume") if given[k] not in (None, False)]
    refused += [k for k in ("pretrained", "trust_remote_code") if given[k] is not (k == "pretrained")]
    if refused or options.get("save_every"):
        raise ConfigError(f"extend=True does not take {(refused or ['save_every'])[0]}=: the previous model fixes the "
                          "backbone, tokenizer and weights, and an extension holds its own validation split out.")
    cfg = _training_config(dict(epochs=given["epochs"], batch_size=given["batch_size"],
                                learning_rate=given["learning_rate"], seed=given["seed"],
                                mixed_precision=given["mixed_precision"], **options))
    check_precision(cfg)
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    test_dataset = given["test_dataset"]
    kwargs = dict(strategy=given["strategy"], task=given["task"], rehearsal=rehearsal, keep_exemplars=keep_exemplars,
                  cfg=cfg, input_column=given["input_column"], label_column=given["label_column"])
    if given["compare"]:
        from .compare import compare_extension

        adapted = compare_extension(model, train, extend, given["compare"], test_dataset=test_dataset, **kwargs)
    else:
        from .run import extend as run_extension

        adapted = run_extension(model, train, extend, test_dataset=test_dataset, **kwargs)
        if test_dataset is not None:
            scores = adapted.evaluate(test_dataset, name="the test set given to adapt()")
            logger.info("test_dataset: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
    if output_dir is not None:
        on_main_process(lambda: adapted._save(output_dir, overwrite=given["overwrite"]))
        adapted.origin = str(Path(output_dir).expanduser().resolve())
    return adapted
