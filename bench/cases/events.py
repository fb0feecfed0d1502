"""The ``events`` case: ``docker run`` / ``docker stop`` on the private engine, ``--events`` times.

From the engine's ``start`` / ``die`` event, as the bench receives it, to
dnscock answering the container's name / no longer giving it an address
(NXDOMAIN, or NODATA while dnscock keeps a stopped container's names).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import docker

from bench.dnsclient import Poller
from bench.dnsperf import percentile
from bench.errors import BenchError
from bench.processes import LOAD_CPU, threads_on
from bench.session import Session

log = logging.getLogger(__name__)

EVENT_DEADLINE = 5.0  # seconds after the event within which the answer must change


class EventWatcher:
    """The engine's container events, each with the time the bench received it."""

    def __init__(self, client: docker.APIClient) -> None:
        self.client = client
        self.stream = client.events(decode=True, filters={"type": "container"})
        self.seen: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed
            for event in self.stream:
                now = time.monotonic()
                action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
                container = (event.get("Actor") or {}).get("ID") or event.get("id")
                with self._changed:
                    self.seen.setdefault((container, action), now)
                    self._changed.notify_all()

    def wait(self, container: str, action: str, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (container, action) not in self.seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"no {action!r} event for container {container[:12]} within {timeout:.0f}s")
                self._changed.wait(remaining)
            return self.seen[(container, action)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.client.close()


def run(session: Session) -> None:
    main, engine = session.require_main(), session.require_engine()
    starts: list[float] = []
    stops: list[float] = []
    stop_rcodes: dict[str, int] = {}
    watcher = EventWatcher(docker.APIClient(base_url=engine.url, version="auto", timeout=60))
    try:
        with threads_on(LOAD_CPU):
            for index in range(session.options.events):
                name = f"ev{index}"
                qname = f"{name}.web.docker"
                poller = Poller(main.port, qname, want_answer=True)
                container = engine.run("web:latest", name=name)
                started = watcher.wait(container.id, "start")
                answered = poller.finish(started + EVENT_DEADLINE)
                if answered is None:
                    raise BenchError(f"{qname} did not answer within {EVENT_DEADLINE}s of its start event")
                starts.append((answered - started) * 1000)
                poller = Poller(main.port, qname, want_answer=False)
                container.stop(timeout=5)
                died = watcher.wait(container.id, "die")
                gone = poller.finish(died + EVENT_DEADLINE)
                if gone is None:
                    raise BenchError(f"{qname} still had an address {EVENT_DEADLINE}s after its die event")
                stops.append((gone - died) * 1000)
                stop_rcodes[poller.rcode] = stop_rcodes.get(poller.rcode, 0) + 1
                container.remove(force=True)
                log.info("events: %s: start->answer %.1f ms, die->no address (%s) %.1f ms", qname, starts[-1],
                         poller.rcode, stops[-1])
    finally:
        watcher.close()
    session.results["events"] = {
        "iterations": len(starts),
        "start_ms": _figures(starts),
        "stop_ms": {**_figures(stops), "rcodes": stop_rcodes},
    }


def _figures(samples: list[float]) -> dict[str, Any]:
    return {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99), "samples": samples}
