"""``FakeEngine``: the container table, the swarm it may manage, and the hub of its events.

``start()`` builds every container's inspect document and the listing once,
before listening (they are kept as bytes and reused, so answering an
inspect is a dictionary look-up), then serves on a unix socket
(``server.Service``). ``add_container`` and ``remove_container`` may be
called from any thread: they hand their events to the server's loop.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.fake_engine.filters import BadRequest, list_filter_matches
from tests.support.fake_engine.fixtures import (
    FakeContainer,
    Image,
    Json,
    container_event,
    custom_image,
    info_document,
    json_bytes,
    make_container,
    make_image,
)
from tests.support.fake_engine.protocol import Response, listing_response
from tests.support.fake_engine.server import Service, listening_socket
from tests.support.fake_engine.swarm import FakeSwarm


class FakeEngine:
    """The container table and event hub; ``start()`` serves it on ``socket_path``."""

    def __init__(self, socket_path: str | os.PathLike[str], containers: int = 0, images: int = 50,
                 swarm_tasks: int = 0, swarm_services: int = 0) -> None:
        if images < 1:
            raise ValueError("images must be at least 1")
        self.socket_path = Path(socket_path)
        # A swarm manager (``/info`` says so; ``/services``, ``/tasks``, ``/nodes`` answer) when either is given.
        self.swarm = FakeSwarm(swarm_tasks, swarm_services) if swarm_tasks or swarm_services else None
        self.images = [make_image(number) for number in range(1, images + 1)]
        self._lock = threading.Lock()  # the table is read by the loop and changed from any thread
        self._by_id: dict[str, FakeContainer] = {}
        self._by_name: dict[str, FakeContainer] = {}
        self._generation = 0  # bumped by every change of the table
        self._list_json: tuple[int, bytes] | None = None  # the unfiltered listing and its generation
        self._next_index = 1
        self._service: Service | None = None
        self._swarm_responses: dict[str, Response] = {}
        for _ in range(containers):
            self._insert(self._new_container(None, None, None))

    @property
    def url(self) -> str:
        """The docker-py ``base_url``."""
        return f"unix://{self.socket_path}"

    @property
    def connections_accepted(self) -> int:
        return self._service.accepted if self._service else 0

    @property
    def subscriber_count(self) -> int:
        """Open ``/events`` streams."""
        return len(self._service.streams) if self._service else 0

    # Serving

    def __enter__(self) -> FakeEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Builds every response body, listens on the socket (replacing a stale socket file), serves in a thread."""
        if self._service is not None:
            raise RuntimeError("the fake engine is already serving")
        self._build_documents()
        service = Service(self)
        service.start(listening_socket(self.socket_path))
        self._service = service

    def stop(self) -> None:
        """Ends every event stream and connection, stops serving and removes the socket (not from the loop)."""
        service, self._service = self._service, None
        if service is None:
            return
        try:
            service.stop()
        finally:
            self.socket_path.unlink(missing_ok=True)

    def _build_documents(self) -> None:
        """Every container's inspect document and the listing, so that no request waits for them."""
        for container in self.containers:
            container.inspect_json()
        self.list_json({}, -1, False)
        if self.swarm is not None:
            for name in self.swarm.bodies():
                self.swarm_response(name)

    # The container table

    @property
    def containers(self) -> list[FakeContainer]:
        with self._lock:
            return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, ref: str) -> FakeContainer:
        """By full id, then name, then unique id prefix, as Docker looks up; KeyError or BadRequest."""
        with self._lock:
            found = self._by_id.get(ref) or self._by_name.get(ref.removeprefix("/"))
            if found is not None:
                return found
            matches = [container for id_, container in self._by_id.items() if ref and id_.startswith(ref)]
        if len(matches) > 1:
            raise BadRequest(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise KeyError(ref)
        return matches[0]

    def add_container(
        self, name: str | None = None, *, image: str | None = None, env: Sequence[str] | None = None,
        emit: bool = True,
    ) -> FakeContainer:
        """Adds a running container (next index; its default name, image and env unless given); emits ``start``.

        ``emit=False`` loses the event, as a dropped stream would: only a re-listing sees the change.
        """
        with self._lock:
            container = self._new_container(name, image, env)
            if container.name in self._by_name:
                raise ValueError(f"the container name /{container.name} is already in use")
            self._insert(container)
        if emit:
            self._emit(container_event("start", container))
        return container

    def remove_container(self, ref: str, *, emit: bool = True) -> FakeContainer:
        """Stops and removes a container (id, name or prefix); emits ``die``, ``stop``, ``destroy`` (unless not ``emit``)."""
        container = self.find(ref)
        with self._lock:
            del self._by_id[container.id]
            del self._by_name[container.name]
            self._generation += 1
        if emit:
            self._emit(container_event("die", container, {"exitCode": "137"}))
            self._emit(container_event("stop", container))
            self._emit(container_event("destroy", container))
        return container

    def _new_container(self, name: str | None, image: str | None, env: Sequence[str] | None) -> FakeContainer:
        index = self._next_index
        self._next_index += 1
        chosen = self.images[(index - 1) % len(self.images)] if image is None else self._image(image)
        return make_container(index, chosen, name, env)

    def _image(self, reference: str) -> Image:
        return next((image for image in self.images if image.reference == reference), None) or custom_image(reference)

    def _insert(self, container: FakeContainer) -> None:
        self._by_id[container.id] = container
        self._by_name[container.name] = container
        self._generation += 1

    def list_json(self, filters: Mapping[str, list[str]], limit: int, size: bool) -> bytes:
        """The ``GET /containers/json`` body: newest first, like Docker."""
        plain = not filters and limit <= 0 and not size
        with self._lock:
            generation = self._generation
            if plain and self._list_json is not None and self._list_json[0] == generation:
                return self._list_json[1]
            newest_first = list(reversed(self._by_id.values()))
        selected = [container for container in newest_first if list_filter_matches(filters, container)]
        if limit > 0:
            selected = selected[:limit]
        if size:
            items = [json.dumps(container.summary(size=True), separators=(",", ":")).encode() for container in selected]
        else:
            items = [container.summary_json() for container in selected]
        body = b"[" + b",".join(items) + b"]\n"
        if plain:
            with self._lock:
                self._list_json = (generation, body)
        return body

    def info_json(self) -> bytes:
        """The ``GET /info`` body: the container counts now; a swarm manager's ``Swarm`` part in swarm mode."""
        if self.swarm is None:
            return json_bytes(info_document(len(self)))
        return json_bytes(info_document(len(self), self.swarm.swarm_info(), self.swarm.hostnames[0]))

    def swarm_response(self, name: str) -> Response:
        """The swarm's listing ``name`` (of ``FakeSwarm.bodies()``) as a manager sends it, built once."""
        assert self.swarm is not None
        response = self._swarm_responses.get(name)
        if response is None:
            response = self._swarm_responses[name] = listing_response(self.swarm.bodies()[name])
        return response

    def _emit(self, event: Json) -> None:
        service = self._service
        if service is not None:
            service.publish(event)
