"""transferkit logs what it resolved (family, groups, strategy, every learning rate) at INFO.

A handler is added only if the application configured none for "transferkit", and records
from processes other than rank 0 are dropped so a multi-process run logs once.
"""
from __future__ import annotations

import logging
import os


class _MainProcessOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return os.environ.get("RANK", "0") == "0"


def setup_logging() -> None:
    logger = logging.getLogger("transferkit")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[transferkit] %(message)s"))
    handler.addFilter(_MainProcessOnly())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
