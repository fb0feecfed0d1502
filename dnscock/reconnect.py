"""The watchers' reconnect loop, written once: backoff, one warning per outage, one line when back.

A watcher runs sessions (connect, list, follow) one after another. When one
fails or ends, the first line of the outage is a warning and the retries
after it are debug lines; the session that connects again says so in one
info line, with how long the engine was away; the wait between two tries
doubles from ``BACKOFF_FIRST`` up to ``BACKOFF_MAX`` and starts again at the
first after a connect.
"""

from __future__ import annotations

import logging
import time

import gevent

# Reconnect within a second of the engine coming back: trying a closed socket each second costs nothing.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 1.0


class Outage:
    """The reconnect state of one watcher."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.delay = BACKOFF_FIRST
        self.since: float | None = None  # when the current outage began (monotonic); None: connected

    def failed(self, message: str, *args: object) -> None:
        """A session failed or ended: a warning when this begins an outage, else a debug line."""
        if self.since is None:
            self.since = time.monotonic()
            self.logger.warning(message, *args)
        else:
            self.logger.debug(message, *args)

    def back(self, message: str, *args: object) -> None:
        """A session is connected: one info line (saying how long the outage lasted, after one)."""
        if self.since is not None:
            message += " (back after %.1fs)"
            args += (time.monotonic() - self.since,)
        self.connected()
        self.logger.info(message, *args)

    def connected(self) -> None:
        """Connected again, with nothing to say: the outage is over and the backoff starts again."""
        self.since = None
        self.delay = BACKOFF_FIRST

    def pause(self) -> None:
        """Waits before the next try, longer each time up to ``BACKOFF_MAX``."""
        self.logger.debug("trying again in %.1fs", self.delay)
        gevent.sleep(self.delay)
        self.delay = min(self.delay * 2, BACKOFF_MAX)
