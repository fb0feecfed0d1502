"""The Docker Engine API, as dnscock uses it: events, the running containers, inspect.

docker-py does the connecting (unix socket, TCP, TLS), negotiates the API
version, lists and reads the event stream. Inspect is where the time goes:
start-up calls it once per container. A single inspect goes through
docker-py's own urllib3 pool but skips the requests session around it
(which scans the environment for proxies on every call and, for a unix
socket, opens a new connection pool for every URL). Many inspects at once,
over a unix socket or plain TCP, are pipelined: a few keep-alive
connections each carry batches of requests sent in one write, and the
responses are read back in order (HTTP/1.1 §9.3.2). At 10,000 containers
that turns over ten seconds of request overhead into about one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

import docker
import gevent.pool
import requests
from gevent import socket as gsocket

from dnscock.errors import EngineError

API_TIMEOUT = 10.0  # seconds for one API call (not the event stream)
INSPECT_CONNECTIONS = 4  # connections inspecting at once while listing the engine's containers
PIPELINE_DEPTH = 32  # requests sent together on one connection
_MAX_LINE = 65536

Inspect = Mapping[str, Any]
T = TypeVar("T")


class EngineClient:
    """One connection to one engine; ``close()`` it when done."""

    def __init__(self, url: str, timeout: float = API_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._api = docker.APIClient(base_url=url, version="auto", timeout=timeout)
        self._api.trust_env = False  # no proxy look-ups in the environment per request
        self._pool = self._connection_pool()

    @property
    def api_version(self) -> str:
        return str(self._api.api_version)

    def _connection_pool(self):
        """docker-py's urllib3 pool for this engine, set up for its transport and TLS."""
        base = self._api.base_url.rstrip("/") + "/"
        adapter = self._api.get_adapter(base)
        request = requests.Request("GET", base).prepare()
        return adapter.get_connection_with_tls_context(request, self._api.verify, cert=self._api.cert)

    def events(self, since: int | None = None) -> Iterator[Mapping[str, Any]]:
        """Container and network events from ``since`` (engine time, seconds) or now on.

        The request is made (subscribed) before this returns.
        """
        return self._api.events(since=since, decode=True, filters={"type": ["container", "network"]})

    def running_container_ids(self) -> list[str]:
        return [summary["Id"] for summary in self._api.containers()]

    def inspect(self, container_id: str) -> Inspect | None:
        """The container's inspect document, or None when it no longer exists."""
        path = urlsplit(self._api._url("/containers/{0}/json", container_id)).path
        response = self._pool.urlopen(
            "GET", path, retries=False, timeout=self.timeout, preload_content=True,
        )
        if response.status == 404:
            return None
        return _inspect_document(container_id, response.status, response.data)

    def inspect_many(self, ids: list[str], convert: Callable[[Inspect | None], T]) -> Iterator[T]:
        """``convert(inspect document or None when gone)`` for each container, in no particular order.

        Each document is converted as soon as it is read, so that thousands of
        them are never held at once.
        """
        inspectors = gevent.pool.Pool(INSPECT_CONNECTIONS)
        if self._raw_address() is None:  # TLS, or a transport of docker-py's own
            yield from inspectors.imap_unordered(lambda container_id: convert(self.inspect(container_id)), ids)
            return
        slices = [ids[start::INSPECT_CONNECTIONS] for start in range(INSPECT_CONNECTIONS)]
        for converted in inspectors.imap_unordered(lambda part: self._inspect_pipelined(part, convert), slices):
            yield from converted

    def _raw_address(self) -> tuple[int, Any] | None:
        """(family, address) to open a plain connection to, when the engine speaks plain HTTP."""
        base = urlsplit(self._api.base_url)
        if base.scheme == "http+docker":
            return gsocket.AF_UNIX, self._api.get_adapter(self._api.base_url + "/").socket_path
        if base.scheme == "http" and base.hostname:
            return gsocket.AF_INET6 if ":" in base.hostname else gsocket.AF_INET, (base.hostname, base.port or 80)
        return None

    def _inspect_pipelined(self, ids: list[str], convert: Callable[[Inspect | None], T]) -> list[T]:
        if not ids:
            return []
        address = self._raw_address()
        assert address is not None
        sock = gsocket.socket(address[0], gsocket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        reader = None
        try:
            sock.connect(address[1])
            reader = sock.makefile("rb", buffering=_MAX_LINE)
            converted = []
            for start in range(0, len(ids), PIPELINE_DEPTH):
                batch = ids[start:start + PIPELINE_DEPTH]
                sock.sendall(b"".join(self._inspect_request(container_id) for container_id in batch))
                for container_id in batch:
                    status, body = _read_response(reader)
                    converted.append(convert(_inspect_document(container_id, status, body)))
            return converted
        except (OSError, ValueError) as error:
            raise EngineError(f"inspecting containers: {error}") from error
        finally:
            if reader is not None:
                reader.close()
            sock.close()

    def _inspect_request(self, container_id: str) -> bytes:
        path = f"/v{self.api_version}/containers/{quote(container_id, safe='')}/json"
        return f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dnscock\r\n\r\n".encode()

    def close(self) -> None:
        self._api.close()


def _inspect_document(container_id: str, status: int, body: bytes) -> Inspect | None:
    if status == 404:
        return None
    if status != 200:
        raise EngineError(f"inspect {container_id[:12]}: HTTP {status} {body[:200]!r}")
    return json.loads(body)


def _read_response(reader: BinaryIO) -> tuple[int, bytes]:
    """One HTTP/1.1 response: (status, body), for a body with a length or chunked."""
    status_line = reader.readline(_MAX_LINE)
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(fields[1])
    length, chunked = None, False
    while True:
        line = reader.readline(_MAX_LINE)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if chunked:
        chunks = []
        while True:
            size = int(reader.readline(_MAX_LINE).split(b";", 1)[0], 16)
            if size == 0:
                while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return status, b"".join(chunks)
            chunks.append(_read_exactly(reader, size))
            _read_exactly(reader, 2)  # the CRLF after each chunk
    if length is None:
        raise ValueError("a response without a length cannot be pipelined")
    return status, _read_exactly(reader, length)


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ValueError("the connection closed in the middle of a response")
    return data
