"""Warnings that may come once per query, logged at most once per interval per kind.

Under an outage (every upstream down, a full forward pool) each query would
otherwise log a line: a thundering log that hides everything else. The
first warning of a kind is logged at once; later ones within the interval
are counted and reported with the next line of that kind.
"""

from __future__ import annotations

import logging
import time

INTERVAL = 5.0  # seconds between two lines of one kind


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval: float = INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (and %d more like it since the last such line)"
            args += (suppressed,)
        self.logger.warning(message, *args)
