"""An in-memory Docker engine behind the ``EngineClient`` API, for the watcher's unit tests.

No Docker, no sockets: ``FakeEngine`` holds the containers (inspect documents
by id), keeps the event log, and records every call made to it in order;
``FakeEngine.client`` stands in for ``EngineClient(url, tls=...)``, so a test
patches ``dnscock.docker_watcher.EngineClient`` with it and each watcher
session gets its own ``FakeEngineClient`` on the same engine.

The test plays the engine's part by hand:

* ``run`` / ``set_running`` / ``connect_network`` / ``remove`` change the
  containers and emit no event; ``emit`` sends one (to the open event stream,
  if any, and to the log that ``events(since=...)`` replays), so a test may
  change the engine silently, as a restarted engine that forgot its event
  log does;
* ``end_stream`` ends the open stream (as an engine restart does), and
  ``break_stream`` makes it raise a connection error;
* ``fail(call, times)`` makes the next ``times`` calls of ``connect`` (the
  client's constructor), ``events``, ``list`` or ``inspect`` raise a connection
  error (``times=math.inf``: until ``heal``);
* ``during_list`` runs inside ``running_container_ids``, after the listing's
  snapshot was taken: what it changes is not in that listing;
* ``settle`` waits until the watcher has applied every event sent so far and
  is waiting for the next one.

It is all gevent and in one thread, as the watcher: nothing here blocks
except on a gevent queue.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gevent
import gevent.queue
import requests.exceptions

from dnscock.engine import PodMember
from dnscock.errors import EngineError

IMAGE_ID = "sha256:" + "ab" * 32
_END = object()


def container_id(name: str) -> str:
    """A stable 64-hex-digit id for a container name."""
    return hashlib.sha256(name.encode()).hexdigest()


def inspect_document(
    name: str, ip: str | None = "172.17.0.2", *, image: str = "redis:latest", running: bool = True,
    health: str = "", network_mode: str = "bridge", networks: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What ``GET /containers/{id}/json`` says of a container, reduced to what dnscock reads.

    ``networks`` maps network names to the container's address on each; by default
    it is on "bridge" with ``ip`` (or on no network, for ``ip=None``).
    """
    if networks is None:
        networks = {"bridge": ip} if ip else {}
    state: dict[str, Any] = {"Running": running, "Status": "running" if running else "exited"}
    if health:
        state["Health"] = {"Status": health}
    return {
        "Id": container_id(name),
        "Name": "/" + name,
        "Image": IMAGE_ID,
        "Config": {"Image": image, "Env": [f"{key}={value}" for key, value in (env or {}).items()],
                   "Labels": dict(labels or {})},
        "State": state,
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {"IPAddress": "", "Networks": {
            network: {"IPAddress": address} for network, address in networks.items()}},
    }


def connection_error(what: str) -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(f"fake engine: {what}: connection refused")


class FakeEventStream:
    """One subscription: what docker-py's ``events(decode=True)`` returns, fed by the engine."""

    def __init__(self) -> None:
        self._queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.sent = 0  # items put in the queue
        self.taken = 0  # items the reader took out of it
        self.waiting = False  # the reader is blocked waiting for the next item
        self.closed = False

    def send(self, item: Any) -> None:
        self.sent += 1
        self._queue.put(item)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return self

    def __next__(self) -> Mapping[str, Any]:
        if self.closed:
            raise StopIteration
        self.waiting = True
        try:
            item = self._queue.get()
        finally:
            self.waiting = False
        self.taken += 1
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.closed = True

    @property
    def idle(self) -> bool:
        """Every item sent was taken and handled: the reader is back for the next one."""
        return self.waiting and self.taken == self.sent


class FakeEngine:
    """The engine: containers, event log, failures to inject, and the calls made, in order."""

    api_version = "1.43"

    def __init__(self, product: str = "Docker 24.0.7") -> None:
        self.product = product  # what /version says: "Podman 4.3.1" makes it a Podman
        self.info: dict[str, Any] = {"Swarm": {"LocalNodeState": "inactive"}}  # what /info says
        self.pods: dict[str, PodMember] = {}  # Podman: the pod of each container in one, by id
        self.containers: dict[str, dict[str, Any]] = {}  # id -> inspect document
        self.log: list[dict[str, Any]] = []  # every event emitted, for replays
        self.calls: list[str] = []  # "connect", "events", "list", "inspect <name>", "close"
        self.since: list[int | None] = []  # ``since`` of each successful events() call
        self.streams: list[FakeEventStream] = []  # one per successful events() call
        self.clients: list[FakeEngineClient] = []
        self.during_list: Callable[[], None] | None = None
        self._failures: dict[str, float] = {}

    # -- what the watcher sees --

    def client(self, url: str, tls: Any = None) -> FakeEngineClient:
        """Stands in for ``EngineClient(url, tls=...)``: connects, or raises EngineError when told to fail."""
        self._call("connect", EngineError(f"fetching the engine's API version: {connection_error(url)}"))
        client = FakeEngineClient(self)
        self.clients.append(client)
        return client

    def _call(self, call: str, error: BaseException | None = None, detail: str = "") -> None:
        if self._failures.get(call, 0) > 0:
            self._failures[call] -= 1
            self.calls.append(f"{call} failed")
            raise error if error is not None else connection_error(call)
        self.calls.append(f"{call} {detail}".rstrip())

    # -- the test's controls --

    def run(self, name: str, ip: str | None = "172.17.0.2", **fields: Any) -> str:
        """Adds (or replaces) a container, running unless told otherwise; emits nothing. Returns its id."""
        document = inspect_document(name, ip, **fields)
        self.containers[document["Id"]] = document
        return document["Id"]

    def set_running(self, cid: str, running: bool) -> None:
        self.containers[cid]["State"]["Running"] = running

    def connect_network(self, cid: str, network: str, ip: str | None) -> None:
        """Attaches the container to ``network`` with ``ip``, or detaches it (``ip=None``)."""
        networks = self.containers[cid]["NetworkSettings"]["Networks"]
        if ip is None:
            networks.pop(network, None)
        else:
            networks[network] = {"IPAddress": ip}

    def remove(self, cid: str) -> None:
        del self.containers[cid]

    def emit(self, action: str, cid: str, *, kind: str = "container", when: float | None = None,
             attributes: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Sends an event (engine time ``when``, default now) to the open stream and the log.

        A network event's actor is the network, with the container in its attributes.
        """
        moment = time.time() if when is None else when
        if kind == "network":
            actor = {"ID": "n" * 64, "Attributes": {"container": cid, "name": "backend", **(attributes or {})}}
        else:
            actor = {"ID": cid, "Attributes": dict(attributes or {})}
        event = {"Type": kind, "Action": action, "Actor": actor, "scope": "local",
                 "time": int(moment), "timeNano": int(moment * 1e9)}
        if kind == "container":
            event.update(status=action, id=cid)
        self.log.append(event)
        for stream in self._open_streams():
            stream.send(event)
        return event

    def end_stream(self) -> None:
        """The engine ends the event stream without an error (as dockerd does when it stops)."""
        for stream in self._open_streams():
            stream.send(_END)

    def break_stream(self) -> None:
        """The event stream's connection breaks: reading it raises a connection error."""
        for stream in self._open_streams():
            stream.send(connection_error("events stream"))

    def fail(self, call: str, times: float = 1) -> None:
        """The next ``times`` calls of ``connect``, ``events``, ``list`` or ``inspect`` raise a connection error."""
        self._failures[call] = times

    def heal(self) -> None:
        self._failures.clear()

    @property
    def stream(self) -> FakeEventStream:
        """The newest subscription."""
        return self.streams[-1]

    def settle(self, timeout: float = 1.0) -> None:
        """Waits until a session is subscribed and has applied every event sent to it."""
        until(lambda: bool(self.streams) and not self.stream.closed and self.stream.idle, timeout,
              "the watcher to be following the event stream with nothing left to apply")

    def _open_streams(self) -> list[FakeEventStream]:
        return [stream for stream in self.streams if not stream.closed]


class FakeEngineClient:
    """``EngineClient``'s API over a ``FakeEngine``."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.closed = False

    @property
    def api_version(self) -> str:
        return self.engine.api_version

    @property
    def product(self) -> str:
        return self.engine.product

    @property
    def is_podman(self) -> bool:
        return self.engine.product.startswith("Podman")

    def pods(self) -> dict[str, PodMember]:
        self.engine._call("pods")
        return dict(self.engine.pods)

    def info(self) -> dict[str, Any]:
        self.engine._call("info")
        return dict(self.engine.info)

    def events(self, since: int | None = None) -> FakeEventStream:
        self.engine._call("events", detail="" if since is None else f"since={since}")
        stream = FakeEventStream()
        if since is not None:  # the engine replays what happened from that second on
            for event in self.engine.log:
                if event["time"] >= since:
                    stream.send(event)
        self.engine.since.append(since)
        self.engine.streams.append(stream)
        return stream

    def running_container_ids(self) -> list[str]:
        self.engine._call("list")
        ids = [cid for cid, document in self.engine.containers.items() if document["State"]["Running"]]
        if self.engine.during_list is not None:
            self.engine.during_list()
        return ids

    def inspect(self, cid: str) -> dict[str, Any] | None:
        document = self.engine.containers.get(cid)
        self.engine._call("inspect", detail=document["Name"].lstrip("/") if document else cid[:12])
        return copy.deepcopy(document)

    def inspect_many(self, ids: list[str], convert: Callable[[dict[str, Any] | None], Any]) -> Iterator[Any]:
        for cid in ids:
            yield convert(self.inspect(cid))

    def close(self) -> None:
        self.closed = True
        self.engine.calls.append("close")


def until(predicate: Callable[[], bool], timeout: float = 1.0, what: str = "") -> None:
    """Lets the other greenlets run until ``predicate()`` holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        gevent.sleep(0.001)

