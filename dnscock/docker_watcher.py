"""The engine side: follow the Docker Engine API and keep the record store up to date.

One greenlet runs a session after another. A session opens the event
stream first and lists the running containers second, so that nothing that
happens in between is missed; the listing replaces the whole table (so no
stale record survives a reconnect), then each event is applied as it comes.
When the engine cannot be reached or the stream ends (an engine restart
ends it without an error), the last known table keeps being served and the
watcher reconnects with exponential backoff.

docker-py is blocking code; ``python -m dnscock`` monkey-patches the
standard library first, so its sockets yield to the DNS greenlets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import docker.errors
import gevent
import requests.exceptions
import urllib3.exceptions

from dnscock.engine import EngineClient
from dnscock.errors import EngineError
from dnscock.naming import record_from_inspect
from dnscock.records import Record, RecordStore

log = logging.getLogger("dnscock.docker")

# Events after which the container is inspected again; "kill" only sends a signal.
_REFRESH_ACTIONS = frozenset({"start", "restart", "unpause", "rename", "kill", "update"})
_REMOVE_ACTIONS = frozenset({"die", "stop", "destroy"})
_CONNECTION_ERRORS = (
    docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
    EngineError, OSError,
)

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0


class DockerWatcher:
    def __init__(self, url: str, store: RecordStore, zone: str) -> None:
        self.url = url
        self.store = store
        self.zone = zone
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> gevent.Greenlet:
        self._greenlet = gevent.spawn(self.run)
        return self._greenlet

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)

    def run(self) -> None:
        delay = BACKOFF_FIRST
        failing = False  # warn once per outage, not once per retry
        while True:
            try:
                self._session()
                log.warning("lost the Docker engine at %s: the event stream ended", self.url)
                delay, failing = BACKOFF_FIRST, True
            except _CONNECTION_ERRORS as error:
                level = logging.DEBUG if failing else logging.WARNING
                log.log(level, "cannot reach the Docker engine at %s: %s; retrying", self.url, _short(error))
                failing = True
            except Exception:
                log.exception("unexpected error while watching the Docker engine at %s", self.url)
            self.store.unavailable = True
            log.debug("reconnecting to the Docker engine in %.1fs", delay)
            gevent.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _session(self) -> None:
        client = EngineClient(self.url)
        events = None
        try:
            # Subscribe first, then list: an event in between is not lost.
            events = client.events()
            self._sync(client)
            log.info(
                "connected to the Docker engine at %s (API %s), %d containers served",
                self.url, client.api_version, len(self.store),
            )
            for event in events:
                self._apply(client, event)
        finally:
            if events is not None:
                events.close()
            client.close()

    def _sync(self, client: EngineClient) -> None:
        ids = client.running_container_ids()
        records = [record for record in client.inspect_many(ids, _record_of_running) if record is not None]
        added, removed = self.store.replace_all(records)
        self.store.unavailable = False
        for record in removed:
            self._log_removed(record)
        for record in added:
            self._log_added(record)

    def _inspect(self, client: EngineClient, container_id: str) -> Record | None:
        return _record_of_running(client.inspect(container_id))

    def _apply(self, client: EngineClient, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
        container_id = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not container_id:
            return
        if action in _REMOVE_ACTIONS:
            self._remove(container_id)
        elif action in _REFRESH_ACTIONS:
            record = self._inspect(client, container_id)
            if record is None:
                self._remove(container_id)
            else:
                old = self.store.put(record)
                if old != record:
                    self._log_added(record)

    def _remove(self, container_id: str) -> None:
        record = self.store.remove(container_id)
        if record is not None:
            self._log_removed(record)

    def _name(self, record: Record) -> str:
        return ".".join(record.labels + ((self.zone,) if self.zone else ()))

    def _log_added(self, record: Record) -> None:
        addresses = ", ".join(record.ipv4 + record.ipv6) or "no address"
        aliases = f" (aliases {', '.join(record.aliases)})" if record.aliases else ""
        log.info("container %s %s: %s -> %s%s", record.container, record.short_id, self._name(record), addresses, aliases)

    def _log_removed(self, record: Record) -> None:
        log.info("container %s %s removed: %s", record.container, record.short_id, self._name(record))


def _record_of_running(inspect: Mapping[str, Any] | None) -> Record | None:
    """The record for a running container; None when stopped, gone or ignored."""
    if inspect is None or not (inspect.get("State") or {}).get("Running"):
        return None
    return record_from_inspect(inspect)


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:300]
