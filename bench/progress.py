"""Progress on stderr: every ``bench.*`` logger's records as ``[  12.3s] message``, timed from ``show()``."""

from __future__ import annotations

import logging
import sys
import time


class _Elapsed(logging.Formatter):
    """The seconds since the run started, then the message (and the traceback, if any)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.time()

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"[{record.created - self.started:7.1f}s] {record.message}"


def show(level: int = logging.INFO) -> None:
    """Sends the ``bench`` loggers' records to stderr from now on (once, whoever calls it again)."""
    logger = logging.getLogger("bench")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Elapsed())
        logger.addHandler(handler)
        logger.propagate = False
