"""The swarm side: follow a swarm's services and tasks through its managers' Engine API, or a worker's networks.

dnscock keeps no cluster state of its own: the managers hold the truth
(raft), and dnscock reads it. Each engine watcher tells ``Swarms`` what its
engine is (``GET /info``): a manager of a swarm, a worker, or neither.

**Manager mode.** One ``SwarmWatcher`` per swarm reads one of its managers,
the first that answers, and moves on to the next when that one fails (it is
unreachable, or lost quorum and answers 503): the last table is kept
meanwhile, with one log line. Docker has no task events (moby #37403), so
the tasks are polled (``GET /tasks`` of desired state running) every
``-swarm-poll`` seconds, every 0.2 s while some task is on its way to
running (a scale-up, a replacement: it answers soon after it runs); the
manager's service, node and network events are triggers for a poll soon
after. A listing is compared by task ID and
version with the last one, and the table is touched only when something
changed. Services, nodes and networks are listed again at start, after a
reconnect, after an event, and when a task names one not known.

**Worker mode** (no manager among the engines): a worker's API refuses
services, tasks and nodes, but ``GET /networks/<id>?verbose=true`` on a
swarm network present on the node lists every service's VIP and tasks, with
addresses, across all nodes; those are polled instead (names only: see
``swarm.worker_records``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event

from dnscock import swarm
from dnscock.docker_watcher import CONNECTION_ERRORS, short_error
from dnscock.engine import EngineClient, TlsSettings
from dnscock.errors import EngineError
from dnscock.naming import DEFAULT_OPTIONS, NamingOptions
from dnscock.options import default
from dnscock.reconnect import Outage
from dnscock.records import RecordStore

log = logging.getLogger("dnscock.swarm")

MANAGER, WORKER = "manager", "worker"
# After an event, wait this long before polling: a service create or update is followed by its
# tasks' start within a few hundred milliseconds, and by more events.
EVENT_SETTLE = 0.1
# A task meant to run that is not running yet runs within a second or so: while there is one, the tasks
# are listed this often, so that it answers soon after it runs (not up to -swarm-poll later).
STARTING_STATES = frozenset({"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"})
STARTING_INTERVAL = 0.2


class EngineGone(EngineError):
    """The manager's event stream ended (an engine restart ends it without an error)."""


@dataclass(frozen=True)
class SwarmOptions:
    naming: NamingOptions = DEFAULT_OPTIONS
    poll_interval: float = default("swarm-poll")  # seconds between two task listings
    tls: TlsSettings | None = None


class SwarmWatcher:
    """Keeps one swarm's services and tasks in the store, read from whichever of its engines answers."""

    def __init__(self, key: str, mode: str, store: RecordStore, options: SwarmOptions) -> None:
        self.key = key  # the swarm's cluster ID, or the worker engine's URL
        self.mode = mode
        self.source = f"swarm:{key}"
        self.store = store
        self.options = options
        self.engines: list[str] = []  # candidate engines, in the order they were found
        self.reading: str | None = None  # the engine read now
        self.failure = ""  # why the last session ended, for /health
        self._outage = Outage(log)
        self.polls = 0  # task listings, and the ones that changed the table: for /metrics
        self.changes = 0
        self._greenlet: gevent.Greenlet | None = None
        self._wake = gevent.event.Event()
        self._tasks_seen: frozenset[tuple[str, int]] | None = None
        self._state: swarm.SwarmState | None = None
        self._stale = True  # services, nodes and networks to be listed again
        self._starting = False  # the last listing had tasks meant to run that do not run yet

    def add_engine(self, url: str) -> None:
        if url not in self.engines:
            self.engines.append(url)
        if self._greenlet is None:
            self.store.expect(self.source)
            self._greenlet = gevent.spawn(self.run)

    def stop(self, remove: bool = False) -> None:
        """Stops following; with ``remove``, takes its records out of the table too."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)
            self._greenlet = None
        if remove:
            self.store.replace_all([], self.source)

    @property
    def connected(self) -> bool:
        return self.reading is not None

    def run(self) -> None:
        turn = 0
        while True:
            url = self.engines[turn % len(self.engines)]
            try:
                if self.mode == MANAGER:
                    self._follow_manager(url)
                else:
                    self._follow_worker(url)
            except (*CONNECTION_ERRORS, KeyError, TypeError) as error:
                self.failure = f"{url}: {short_error(error)}"
                self._outage.failed("swarm %s: cannot read %s from %s: %s; serving the last known table%s", self.key,
                                    "its services and tasks" if self.mode == MANAGER else "the networks", url,
                                    short_error(error), " and trying another manager" if len(self.engines) > 1 else "")
            except Exception:
                self.failure = f"{url}: unexpected error (see the log)"
                log.exception("swarm %s: unexpected error while reading %s", self.key, url)
            self.reading = None
            self.store.set_reachable(self.source, False)
            turn += 1
            if turn % len(self.engines) == 0:  # every candidate tried once: wait before the next round
                self._outage.pause()

    # -- a manager --

    def _follow_manager(self, url: str) -> None:
        client = EngineClient(url, tls=self.options.tls)
        events = None
        triggers = None
        try:
            events = client.swarm_events()  # subscribe first: nothing that happens while listing is missed
            self._stale = True
            self._poll_manager(client)
            self._now_reading(url)
            triggers = gevent.spawn(self._wake_on_events, events)
            while True:
                # Tasks on their way to running (a scale-up, a replacement) are listed again soon.
                interval = STARTING_INTERVAL if self._starting else self.options.poll_interval
                if self._wake.wait(min(interval, self.options.poll_interval)):
                    gevent.sleep(EVENT_SETTLE)
                    self._wake.clear()
                if triggers.dead:  # the event stream ended: the manager went away
                    triggers.get()
                    raise EngineGone("the event stream ended")
                self._poll_manager(client)
        finally:
            if triggers is not None:
                triggers.kill(block=False)
            if events is not None:
                events.close()
            client.close()

    def _wake_on_events(self, events: Any) -> None:
        for event in events:
            if event.get("Type") in ("service", "node", "network"):
                self._stale = True
                self._wake.set()

    def _poll_manager(self, client: EngineClient) -> None:
        tasks = client.running_tasks()
        self.polls += 1
        self._starting = any(((task.get("Status") or {}).get("State")) in STARTING_STATES for task in tasks)
        seen = frozenset((str(task.get("ID")), int((task.get("Version") or {}).get("Index") or 0)) for task in tasks)
        state = self._state
        if not self._stale and state is not None and seen == self._tasks_seen:
            return
        known_services = {str(service.get("ID")) for service in state.services} if state is not None else set()
        if self._stale or state is None or any(
            str(task.get("ServiceID")) not in known_services or str(task.get("NodeID")) not in state.nodes
            for task in tasks
        ):
            self._stale = False
            state = swarm.SwarmState(services=client.services(), nodes=swarm.node_names(client.nodes()),
                                     networks=swarm.network_names(client.swarm_networks()))
        self._state = swarm.SwarmState(state.services, tasks, state.nodes, state.networks)
        self._tasks_seen = seen
        self._store(swarm.manager_records(self._state, self.options.naming, self.source))

    # -- a worker --

    def _follow_worker(self, url: str) -> None:
        client = EngineClient(url, tls=self.options.tls)
        try:
            self._poll_worker(client)
            self._now_reading(url)
            while True:
                gevent.sleep(self.options.poll_interval)
                self._poll_worker(client)
        finally:
            client.close()

    def _poll_worker(self, client: EngineClient) -> None:
        self.polls += 1
        networks = [client.network_in_detail(str(network.get("Id") or network.get("ID")))
                    for network in client.swarm_networks() if not network.get("Ingress")]
        self._store(swarm.worker_records(networks, self.options.naming, self.source))

    # -- both --

    def _now_reading(self, url: str) -> None:
        if self.reading != url:
            self._outage.back("swarm %s: reading %s from %s (%s mode), %d tasks", self.key,
                              "services and tasks" if self.mode == MANAGER else "the swarm networks", url, self.mode,
                              sum(1 for record in self.store if record.source == self.source and record.kind == "task"))
        self.reading = url
        self.failure = ""

    def _store(self, records: list) -> None:
        added, removed = self.store.replace_all(records, self.source)
        if added or removed:
            self.changes += 1
            for record in added:
                log.debug("swarm %s: %s %s -> %s", self.key, record.kind, ".".join(record.labels),
                          ", ".join(record.ipv4 + record.ipv6) or "no address")
            for record in removed:
                if not any(fresh.id == record.id for fresh in added):
                    log.debug("swarm %s: %s %s removed", self.key, record.kind, ".".join(record.labels))


class Swarms:
    """The swarms the engines belong to, each followed once (``-swarm=auto``), whatever number of engines."""

    def __init__(self, store: RecordStore, options: SwarmOptions, enabled: bool = True) -> None:
        self.store = store
        self.options = options
        self.enabled = enabled
        self.watchers: dict[str, SwarmWatcher] = {}
        self.engine_modes: dict[str, str] = {}  # engine URL -> "manager", "worker" or "" (not in a swarm)

    def engine_info(self, url: str, info: Mapping[str, Any]) -> None:
        """What an engine's ``GET /info`` says, at each connect: starts following its swarm when new."""
        state = info.get("Swarm") or {}
        active = state.get("LocalNodeState") == "active"
        manager = active and bool(state.get("ControlAvailable"))
        mode = MANAGER if manager else WORKER if active else ""
        if self.engine_modes.get(url) != mode:
            log.info("the engine at %s is %s%s", url,
                     {MANAGER: "a swarm manager", WORKER: "a swarm worker", "": "not in a swarm"}[mode],
                     "" if not mode else ": its swarm is not followed (-swarm=off)" if not self.enabled else
                     ": swarm services are read from it" if manager else
                     ": swarm services are read from its swarm networks, unless a manager is among the engines")
        self.engine_modes[url] = mode
        if not active or not self.enabled:
            return
        if manager:
            cluster = str((state.get("Cluster") or {}).get("ID") or state.get("NodeID") or url)
            watcher = self.watchers.get(cluster)
            if watcher is None:
                watcher = self.watchers[cluster] = SwarmWatcher(cluster, MANAGER, self.store, self.options)
                for key, worker in list(self.watchers.items()):  # a manager knows more than any worker
                    if worker.mode == WORKER:
                        worker.stop(remove=True)
                        del self.watchers[key]
            watcher.add_engine(url)
        elif not any(watcher.mode == MANAGER for watcher in self.watchers.values()):
            if url not in self.watchers:
                self.watchers[url] = SwarmWatcher(url, WORKER, self.store, self.options)
            self.watchers[url].add_engine(url)

    def status(self) -> list[dict[str, Any]]:
        """For /health: each swarm followed, how and from where."""
        return [{"swarm": watcher.key, "mode": watcher.mode, "engines": list(watcher.engines),
                 "reading": watcher.reading, "synced": self.store.has_synced(watcher.source),
                 **({"failure": watcher.failure} if watcher.failure else {})}
                for watcher in self.watchers.values()]

    def stop(self) -> None:
        for watcher in self.watchers.values():
            watcher.stop()

