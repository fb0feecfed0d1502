"""tests/support/fake_engine: docker-py talks to it as to a Docker 20.10 engine (in-process, over its unix socket)."""

from __future__ import annotations

import http.client
import io
import json
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.support.fake_engine import PATH_ENV, FakeEngine

pytestmark = pytest.mark.timeout(10)

N = 50
WAIT = 2.0  # seconds for an event to arrive


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    # A short directory: unix socket paths are limited to 108 bytes, pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="fake-engine-"))
    fake = FakeEngine(directory / "docker.sock", containers=N)
    fake.start()
    yield fake
    fake.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client(engine: FakeEngine) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=engine.url, version="auto", timeout=10)
    yield api
    api.close()


class EventReader:
    """Reads a docker-py event stream in a thread, so the test can wait with a timeout."""

    def __init__(self, client: docker.APIClient) -> None:
        self.stream = client.events(decode=True, filters={"type": "container"})
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for event in self.stream:
            self.events.put(event)
        self.events.put(None)  # the stream ended

    def next(self) -> dict[str, Any] | None:
        return self.events.get(timeout=WAIT)

    def close(self) -> None:
        self.stream.close()
        self.thread.join(timeout=WAIT)


@pytest.fixture
def reader(client: docker.APIClient) -> Iterator[EventReader]:
    events = EventReader(client)
    yield events
    events.close()


def test_version_negotiation_and_ping(client: docker.APIClient) -> None:
    assert client.api_version == "1.41"
    assert client.ping() is True
    version = client.version()
    assert (version["Version"], version["ApiVersion"], version["MinAPIVersion"]) == ("20.10.24", "1.41", "1.12")
    assert version["Components"][0]["Name"] == "Engine"


def test_lists_every_running_container(client: docker.APIClient) -> None:
    summaries = client.containers()
    assert len(summaries) == N
    assert len({summary["Id"] for summary in summaries}) == N
    first = summaries[-1]  # newest first, as Docker lists
    assert first["Names"] == ["/c00001"]
    assert len(first["Id"]) == 64 and int(first["Id"], 16) >= 0
    assert first["ImageID"].startswith("sha256:")
    assert (first["State"], first["Status"]) == ("running", "Up 5 minutes")
    assert first["HostConfig"] == {"NetworkMode": "default"}
    assert first["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "10.0.0.2"
    assert len(client.containers(all=True)) == N
    assert len(client.containers(limit=5)) == 5
    assert [summary["Names"] for summary in client.containers(filters={"name": "c00007"})] == [["/c00007"]]


def test_inspect_shape(client: docker.APIClient) -> None:
    summary = client.containers(filters={"name": "c00010"})[0]
    inspect = client.inspect_container(summary["Id"])
    assert inspect["Id"] == summary["Id"]
    assert inspect["Name"] == "/c00010"
    assert inspect["Config"]["Hostname"] == summary["Id"][:12]
    assert inspect["Config"]["Image"] == summary["Image"] == "registry.example.com/team/img0010:v1"
    assert inspect["Config"]["Env"] == [PATH_ENV, "DNSDOCK_ALIAS=alias10.example.test"]
    assert inspect["Config"]["ExposedPorts"] == {"6379/tcp": {}}
    assert inspect["Image"] == summary["ImageID"]
    assert inspect["State"]["Running"] is True and inspect["State"]["Status"] == "running"
    bridge = inspect["NetworkSettings"]["Networks"]["bridge"]
    assert bridge["IPAddress"] == inspect["NetworkSettings"]["IPAddress"] == "10.0.0.11"
    assert (bridge["Gateway"], bridge["IPPrefixLen"], bridge["IPAMConfig"]) == ("10.0.0.1", 16, None)
    assert client.inspect_container("c00010")["Id"] == summary["Id"]
    assert client.inspect_container(summary["Id"][:12])["Id"] == summary["Id"]


def test_plain_container_has_no_alias_and_no_ports(client: docker.APIClient) -> None:
    inspect = client.inspect_container("c00001")
    assert inspect["Config"]["Env"] == [PATH_ENV]
    assert inspect["Config"]["Image"] == "img0001:latest"
    assert "ExposedPorts" not in inspect["Config"]


def test_unknown_container_is_not_found(client: docker.APIClient) -> None:
    with pytest.raises(docker.errors.NotFound, match="No such container: nope"):
        client.inspect_container("nope")


def test_repeated_requests_reuse_the_connection(engine: FakeEngine, client: docker.APIClient) -> None:
    before = engine.connections_accepted
    for _ in range(20):
        client.inspect_container("c00001")
    assert engine.connections_accepted - before <= 1


def test_start_event_when_a_container_is_added(
    engine: FakeEngine, client: docker.APIClient, reader: EventReader
) -> None:
    assert len(client.containers()) == N  # listing while the stream is open on another connection
    added = engine.add_container(env=["DNSDOCK_ALIAS=new.example.test"])
    event = reader.next()
    assert event is not None
    assert (event["Type"], event["Action"], event["status"], event["id"]) == ("container", "start", "start", added.id)
    assert event["Actor"] == {"ID": added.id, "Attributes": {"image": added.image.reference, "name": added.name}}
    assert isinstance(event["time"], int) and event["timeNano"] // 1_000_000_000 == event["time"]
    assert client.inspect_container(added.id)["Config"]["Env"][-1] == "DNSDOCK_ALIAS=new.example.test"
    assert len(client.containers()) == N + 1


def test_die_stop_destroy_events_when_a_container_is_removed(
    engine: FakeEngine, client: docker.APIClient, reader: EventReader
) -> None:
    removed = engine.remove_container("c00003")
    events = [reader.next() for _ in range(3)]
    assert [(event or {}).get("Action") for event in events] == ["die", "stop", "destroy"]
    assert {(event or {}).get("id") for event in events} == {removed.id}
    with pytest.raises(docker.errors.NotFound):
        client.inspect_container(removed.id)
    assert len(client.containers()) == N - 1


def test_stop_ends_the_event_stream(engine: FakeEngine, reader: EventReader) -> None:
    engine.stop()
    assert reader.next() is None


class _Unclosable(io.BytesIO):
    def close(self) -> None:
        pass  # http.client closes the file after each response; the next one is read from it too


class _Recorded:
    """A socket stand-in for http.client: every response is read from the same bytes, one after another."""

    def __init__(self, data: bytes) -> None:
        self.file = _Unclosable(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self.file


def _raw_exchange(engine: FakeEngine, *pieces: bytes) -> bytes:
    """Sends each piece with its own sendall on a raw connection, then reads until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(engine.socket_path))
        for piece in pieces:
            sock.sendall(piece)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _read_responses(data: bytes, count: int) -> tuple[list[http.client.HTTPResponse], bytes]:
    recorded = _Recorded(data)
    responses = []
    for _ in range(count):
        response = http.client.HTTPResponse(recorded)  # type: ignore[arg-type]
        response.begin()
        response.body = response.read()  # type: ignore[attr-defined]
        responses.append(response)
    return responses, recorded.file.read()


def test_pipelined_requests_get_their_responses_in_order(engine: FakeEngine) -> None:
    received = _raw_exchange(
        engine,
        b"GET /v1.41/containers/c00002/json HTTP/1.1\r\nHost: docker\r\n\r\n"
        b"GET /containers/c00001/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    (first, second), rest = _read_responses(received, 2)
    assert (first.status, second.status) == (200, 200)
    assert json.loads(first.body)["Name"] == "/c00002"  # type: ignore[attr-defined]
    assert json.loads(second.body)["Name"] == "/c00001"  # type: ignore[attr-defined]
    assert first.getheader("Content-Length") == str(len(first.body))  # type: ignore[attr-defined]
    assert first.getheader("Connection") is None and second.getheader("Connection") == "close"
    assert rest == b""  # and the server closed the connection after the second


def test_a_request_may_arrive_in_pieces(engine: FakeEngine) -> None:
    received = _raw_exchange(engine, b"GET /_p", b"ing HTTP/1.1\r\nConnection: cl", b"ose\r\n", b"\r\n")
    (response,), rest = _read_responses(received, 1)
    assert (response.status, response.body, rest) == (200, b"OK", b"")  # type: ignore[attr-defined]
