"""The engine side: follow the Docker Engine API and keep the record store up to date.

One greenlet runs a session after another. A session opens the event
stream first (replaying what happened since the last event seen) and lists
the running containers second, so that nothing is missed in between; the
listing replaces the whole table, so no stale record survives a reconnect.
Then each event is applied as it comes. An event is only a hint: the
container is inspected again and the inspect data decides, so replayed or
out-of-date events cannot undo newer facts. A periodic resync re-lists and
corrects any drift.

A container that stops keeps its names for ``grace`` seconds, answering
NOERROR with no records and TTL 0, so that clients of a restarting
container never cache NXDOMAIN (or an upstream's answer for its alias).

When the engine cannot be reached or the stream ends (an engine restart
ends it without an error), the last known table keeps being served and the
watcher reconnects with capped exponential backoff, forever.

docker-py is blocking code; ``python -m dnscock`` monkey-patches the
standard library first, so its sockets yield to the DNS greenlets.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors
import gevent
import requests.exceptions
import urllib3.exceptions

from dnscock.addresses import PUBLISHED
from dnscock.engine import EngineClient, PodMember, TlsSettings, is_rootless
from dnscock.errors import EngineError
from dnscock.naming import (
    DEFAULT_OPTIONS,
    NamingOptions,
    container_addresses,
    network_mode,
    record_from_inspect,
    split_addresses,
)
from dnscock.options import default
from dnscock.reconnect import Outage
from dnscock.records import Record, RecordStore
from dnscock.sockets import primary_address

log = logging.getLogger("dnscock.docker")

CONNECTION_ERRORS = (
    docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
    EngineError, OSError,
)
# Container events that may change what a container is served as (others, like exec_*, cannot).
# Not "kill": it only sends a signal, and inspecting a container while the engine tears it
# down waits for the teardown, holding up the "die" event behind it.
_CONTAINER_ACTIONS = frozenset({
    "start", "restart", "unpause", "pause", "rename", "update", "die", "stop", "destroy", "health_status",
})
_NETWORK_ACTIONS = frozenset({"connect", "disconnect"})
_STOP_ACTIONS = frozenset({"die", "stop", "destroy"})



@dataclass(frozen=True)
class WatchOptions:
    naming: NamingOptions = DEFAULT_OPTIONS
    serve_unhealthy: bool = default("serve-unhealthy")  # serve containers whose healthcheck says unhealthy
    grace: float = default("grace")  # seconds a stopped container's names answer NOERROR with no records
    resync_interval: float = default("resync-interval")  # seconds between full re-listings; 0: never
    tls: TlsSettings | None = None  # TLS to the engine (-tlsverify); None: plain HTTP or a unix socket
    # <host_name>.<domain>: the host's address as containers see it. "": none, unlike -host-name, whose default
    # the app passes: a watcher alone (a test, a tool) makes no name of its own.
    host_name: str = ""


class DockerWatcher:
    def __init__(self, url: str, store: RecordStore, zone: str, options: WatchOptions = WatchOptions(),
                 on_info: Callable[[str, Mapping[str, Any]], None] | None = None) -> None:
        self.url = url
        self.on_info = on_info  # told what GET /info says at each connect (the swarm side listens)
        self.on_bridge: Callable[[str], None] | None = None  # told the default bridge's gateway (-dns=bridge)
        self.source = options.naming.engine
        self.store = store
        store.expect(self.source)
        self.zone = zone
        self.options = options
        self._greenlet: gevent.Greenlet | None = None
        self._last_event_time: int | None = None  # seconds, from the engine's own clock
        self._live_since = 0.0  # events from this time on are live, not replayed
        self._warned_host_mode: set[str] = set()
        # Containers in network mode "container:<ref>", by id -> <ref> (the id or name of the one whose
        # network they share): when that one's networks change, so do theirs.
        self._sharing: dict[str, str] = {}
        self._pods: dict[str, PodMember] = {}  # Podman: the pod of each container in one, by id
        self._told_rootless = False
        self._told_pods = False
        self._naming = self._naming_for(None)  # this session's (published-address mode on a rootless engine)
        self.product = ""  # "Docker 28.2.2", "Podman 4.3.1": what the engine said it is, once connected
        self._outage = Outage(log)
        # For /metrics and /health.
        self.connected = False
        self.events: Counter[tuple[str, str]] = Counter()  # (type, action) -> events applied
        self.resyncs: Counter[str] = Counter()  # "done" or "skipped" -> periodic resyncs

    def start(self) -> gevent.Greenlet:
        self._greenlet = gevent.spawn(self.run)
        return self._greenlet

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1)

    def run(self) -> None:
        while True:
            try:
                self._session()
                self._outage.failed("lost the Docker engine at %s: the event stream ended", self.url)
            except CONNECTION_ERRORS as error:
                self._outage.failed("cannot reach the Docker engine at %s: %s; retrying", self.url,
                                    short_error(error))
            except Exception:
                log.exception("unexpected error while watching the Docker engine at %s", self.url)
            self.connected = False
            self.store.set_reachable(self.source, False)
            self._outage.pause()

    # -- a session: subscribe, list, follow --

    def _session(self) -> None:
        client = EngineClient(self.url, tls=self.options.tls)
        events = None
        resyncer = None
        try:
            # Subscribe first, then list: an event in between is not lost. Events older than
            # now (by the engine's clock, which on one host is ours) are replays of the past.
            self._live_since = time.time() - 1
            events = client.events(since=self._last_event_time)
            self.product = client.product
            info = self._info(client)
            self._naming = self._naming_for(info)
            self._sync(client, initial=True)
            self.connected = True
            self._outage.back("connected to the Docker engine at %s (API %s, %s), %d containers served", self.url,
                              client.api_version, client.product,
                              sum(1 for record in self.store if record.source == self.source))
            if self.on_info is not None and info is not None:
                self.on_info(self.url, info)
            if self.options.resync_interval > 0:
                resyncer = gevent.spawn(self._resync_every, client, self.options.resync_interval)
            for event in events:
                self._apply(client, event)
        finally:
            if resyncer is not None:
                resyncer.kill(block=False)
            if events is not None:
                events.close()
            client.close()

    def _info(self, client: EngineClient) -> Mapping[str, Any] | None:
        """``GET /info`` (is the engine rootless, in a swarm?); a refusal is logged, not fatal."""
        try:
            return client.info()
        except CONNECTION_ERRORS as error:
            log.warning("cannot read /info from the Docker engine at %s: %s; taken as rootful, its swarm, if any, not "
                        "followed", self.url, short_error(error))
            return None

    def _naming_for(self, info: Mapping[str, Any] | None) -> NamingOptions:
        """The naming options for this session: published-address mode when asked for, or when the engine is
        rootless and no ?address= says otherwise (its containers' own addresses reach no one)."""
        naming = self.options.naming
        asked = naming.engine_address == PUBLISHED
        if not asked and (naming.engine_address or info is None or not is_rootless(info)):
            return naming
        if not asked and not self._told_rootless:
            log.info("the engine at %s is rootless: its containers answer the host addresses they publish ports on "
                     "(and no address when they publish none)", self.url)
            self._told_rootless = True
        return dataclasses.replace(naming, engine_address="", published=True,
                                   host_address=naming.host_ip or primary_address() or "127.0.0.1")

    def _sync(self, client: EngineClient, initial: bool = False) -> bool:
        """Makes the table equal the engine's running containers; False when an event came meanwhile."""
        generation = self.store.generation
        ids = client.running_container_ids()
        self._pods = self._read_pods(client) if client.is_podman else {}
        records = [record for record in client.inspect_many(ids, lambda inspect: self._record(client, inspect))
                   if record is not None]
        self.store.release_all_but(self.source, ids)
        if not initial and self.store.generation != generation:
            return False  # an event changed the table while we listed: our listing may be older
        records += self._host_records(self._bridge_gateways(client))
        fresh = {record.id for record in records}
        # Containers stopped within their grace window stay, as their empty answer.
        records += [record for record in self.store
                    if record.stopped and record.source == self.source and record.id not in fresh]
        added, removed = self.store.replace_all(records, self.source)
        for record in removed:
            self._log_removed(record, "gone from the engine" if not initial else "")
        for record in added:
            self._log_added(record)
        return True

    def _bridge_gateways(self, client: EngineClient) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The default bridge's gateways (IPv4, IPv6), told to ``on_bridge`` (-dns=bridge) when they change."""
        if self.on_bridge is None and (not self.options.host_name or self._naming.published):
            return (), ()  # nobody asks, or the host's name answers the host's own address
        try:
            configs = (client.default_bridge().get("IPAM") or {}).get("Config") or []
        except CONNECTION_ERRORS as error:
            log.debug("cannot read the default bridge of %s: %s", self.url, short_error(error))
            return (), ()
        gateways = split_addresses(str(config.get("Gateway") or "") for config in configs)
        if self.on_bridge is not None and gateways[0]:
            self.on_bridge(gateways[0][0])
        return gateways

    def _host_records(self, gateways: tuple[tuple[str, ...], tuple[str, ...]]) -> list[Record]:
        """``<host-name>.<domain>``: -host-ip, else the gateway of the engine's default bridge (IPv4 and IPv6)."""
        if not self.options.host_name:
            return []
        naming = self._naming
        if naming.published:  # the rootless bridge's gateway reaches no one: the host's own address does
            ipv4, ipv6 = split_addresses([naming.host_address])
        else:
            ipv4, ipv6 = split_addresses([naming.host_ip]) if naming.host_ip else gateways
        if not ipv4 and not ipv6:
            return []
        # Its one name, as an alias: no container, so never one of the records ``*.<domain>`` lists.
        name = f"{self.options.host_name}.{self.zone}"
        return [Record(id=f"host:{self.url}", container="(the host)", labels=(), aliases=(name,), fqdn=name,
                       ipv4=ipv4, ipv6=ipv6, name=self.options.host_name, source=self.source, kind="host")]

    def _resync_every(self, client: EngineClient, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            try:
                if self._sync(client):
                    self.resyncs["done"] += 1
                else:
                    self.resyncs["skipped"] += 1
                    log.debug("resync skipped: the table changed while listing")
            except CONNECTION_ERRORS as error:
                log.debug("resync failed: %s", short_error(error))

    def _apply(self, client: EngineClient, event: Mapping[str, Any]) -> None:
        self._last_event_time = int(event.get("time") or 0) or self._last_event_time
        kind = event.get("Type") or "container"
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if kind == "network" and action in _NETWORK_ACTIONS:
            container_id = attributes.get("container")
        elif kind == "container" and action in _CONTAINER_ACTIONS:
            container_id = (event.get("Actor") or {}).get("ID") or event.get("id")
        else:
            return
        if not container_id:
            return
        if attributes.get("podId") and str(container_id) not in self._pods and client.is_podman:
            self._pods = self._read_pods(client)  # a container of a pod not seen yet: which pod, is it the infra?
        self.events[(kind, action)] += 1
        if action in _STOP_ACTIONS and kind == "container" and float(event.get("time") or 0) >= self._live_since:
            # A live "die": the container is gone. Inspecting it now would wait for the
            # engine to finish tearing it down (about 100 ms); a replayed one is inspected.
            self._stopped(str(container_id))
        else:
            self._refresh(client, str(container_id))
            for sharer in self._sharers_of(str(container_id)):
                self._refresh(client, sharer)

    def _sharers_of(self, container_id: str) -> list[str]:
        """The containers that share the network of ``container_id`` (network mode container:<it>)."""
        if not self._sharing:
            return []
        record = self.store.get(container_id)
        names = {record.container} if record is not None else set()
        return [sharer for sharer, ref in self._sharing.items()
                if sharer != container_id and (container_id.startswith(ref) or ref in names)]

    def _refresh(self, client: EngineClient, container_id: str) -> None:
        """Inspects the container and puts what it says in the table."""
        inspect = client.inspect(container_id)
        if inspect is None or not (inspect.get("State") or {}).get("Running"):
            self.store.release(container_id)  # not running: no longer withheld either
        record = self._record(client, inspect)
        if record is not None:
            old = self.store.put(record)
            if old != record:
                self._log_added(record)
            return
        self._stopped(container_id)

    def _stopped(self, container_id: str) -> None:
        """The container no longer runs: its names answer empty for the grace window, then go."""
        old = self.store.get(container_id)
        if old is None or old.stopped or old.manual:  # a manual service is the HTTP API's, not the engine's
            return
        if self.options.grace > 0:
            self.store.put(dataclasses.replace(old, ipv4=(), ipv6=(), ports=(), published=(), metadata=(), ttl=0,
                                                stopped=True))
            log.info("container %s %s stopped: its names answer empty for %gs", old.container, old.short_id,
                     self.options.grace)
            gevent.spawn_later(self.options.grace, self._expire, self.store.get(container_id))
        else:
            self._remove(container_id)

    def _expire(self, ghost: Record) -> None:
        # The very record this stop made: a later stop makes an equal one, with a window of its own.
        if self.store.get(ghost.id) is ghost:
            self._remove(ghost.id)

    def _record(self, client: EngineClient, inspect: Mapping[str, Any] | None) -> Record | None:
        """The record to serve for a container; None when stopped, gone, ignored or withheld (unhealthy: kept
        aside in the store, so that /explain can tell why its names do not answer)."""
        if inspect is None or not (inspect.get("State") or {}).get("Running"):
            return None
        record = self._named(client, inspect)
        if record is not None and record.health == "unhealthy" and not self.options.serve_unhealthy:
            self.store.withhold(record)
            return None
        self.store.release(str(inspect.get("Id") or ""))
        return record

    def _read_pods(self, client: EngineClient) -> dict[str, PodMember]:
        """Podman's pods (libpod's listing); an answer that cannot be read is logged once and taken as none."""
        try:
            return client.pods()
        except (*CONNECTION_ERRORS, ValueError, TypeError, AttributeError) as error:
            if not self._told_pods:
                log.warning("cannot read the pods of the Podman engine at %s: %s; pod names are not answered and "
                            "infra containers are served like others", self.url, short_error(error))
                self._told_pods = True
            return {}

    def _named(self, client: EngineClient, inspect: Mapping[str, Any]) -> Record | None:
        """A running container's record; None when ignored, in the host's network without -host-ip, or a Podman
        pod's infra (pause) container, whose address its members answer with."""
        member = self._pods.get(str(inspect.get("Id") or ""))
        if member is not None and member.infra:
            return None
        mode = network_mode(inspect)
        source = None
        container_id = str(inspect.get("Id") or "")
        if mode.startswith("container:"):
            self._sharing[container_id] = mode.split(":", 1)[1]
            source = client.inspect(self._sharing[container_id])
        elif member is not None and member.infra_id and container_addresses(inspect) == ((), ()):
            # Some Podman versions show a pod member's network settings empty (podman #8073, #21340): the pod's
            # network is its infra container's.
            self._sharing[container_id] = member.infra_id
            source = client.inspect(member.infra_id)
        elif mode == "host" and not self._naming.host_ip:
            name = str(inspect.get("Name") or "").lstrip("/")
            if name not in self._warned_host_mode:
                self._warned_host_mode.add(name)
                log.info("container %s uses the host's network: skipped (set -host-ip to serve it)", name)
            return None
        return record_from_inspect(inspect, self._naming, source, pod=member.pod if member else "")

    def _remove(self, container_id: str) -> None:
        self._sharing.pop(container_id, None)
        self.store.release(container_id)
        record = self.store.remove(container_id)
        if record is not None:
            self._log_removed(record)

    # -- logs --

    def _log_added(self, record: Record) -> None:
        addresses = ", ".join(record.ipv4 + record.ipv6) or "no address"
        aliases = f" (aliases {', '.join(record.aliases)})" if record.aliases else ""
        log.info("container %s %s: %s -> %s%s", record.container, record.short_id, record.canonical_name(self.zone),
                 addresses, aliases)

    def _log_removed(self, record: Record, why: str = "") -> None:
        log.info("container %s %s removed: %s%s", record.container, record.short_id, record.canonical_name(self.zone),
                 f" ({why})" if why else "")


def short_error(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:300]
