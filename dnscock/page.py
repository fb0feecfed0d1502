"""The page (``GET /`` on -http): what it is served, and what it polls (``GET /state``).

The page is one file, ``page.html`` (HTML, CSS and JavaScript, nothing
loaded from elsewhere, no build step). It follows dnscock by polling
``/state`` every second rather than by server-sent events: a poll that
finds the table unchanged (``since`` = the generation it has) costs a few
hundred bytes, needs no connection held open per page in the WSGI server,
and picks up again by itself after dnscock restarts; a second is well
within the 3 s a change must take to show. ``/state`` holds the table
(only when it changed), ``/health``, the query rates of the last minutes,
the queries logged since the page's last poll, the default TTL and whether
the page may offer writes.

``RateHistory`` samples the query counters every ``SAMPLE`` seconds, so
that a page opened now shows the last minutes at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import gevent

from dnscock.stats import CACHED, FORWARDED, LOCAL, QueryStats

if TYPE_CHECKING:
    from dnscock.explain import Explainer
    from dnscock.query_log import QueryLog

SAMPLE = 2.0  # seconds between two samples of the counters
KEEP = 300  # samples kept: ten minutes


@dataclass
class PageParts:
    """What the page and its endpoints read beside the HTTP API's own: the explainer, the query log (None when
    off), the rates."""

    explainer: Explainer
    query_log: QueryLog | None
    rates: RateHistory


def page_html() -> bytes:
    return resources.files("dnscock").joinpath("page.html").read_bytes()


class RateHistory:
    """Replies a second by path (local, cached, forwarded) over the last ``KEEP`` samples."""

    def __init__(self, stats: QueryStats, clock: Callable[[], float] | None = None) -> None:
        self.stats = stats
        self._samples: deque[tuple[float, int, int, int]] = deque(maxlen=KEEP + 1)
        self._clock = clock or (lambda: gevent.get_hub().loop.now())
        self._greenlet: gevent.Greenlet | None = None

    def sample(self) -> None:
        paths = self.stats.paths
        self._samples.append((self._clock(), sum(paths[LOCAL].answers), sum(paths[CACHED].answers),
                              sum(paths[FORWARDED].answers)))

    def rates(self) -> list[dict[str, float]]:
        samples = list(self._samples)
        return [{"t": round(now, 1), "local": (local - was_local) / (now - then),
                 "cached": (cached - was_cached) / (now - then), "forwarded": (forwarded - was_forwarded) / (now - then)}
                for (then, was_local, was_cached, was_forwarded), (now, local, cached, forwarded)
                in zip(samples, samples[1:]) if now > then]

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            self.sample()
            gevent.sleep(SAMPLE)
