"""An HTTP proxy in front of a Docker engine's unix socket, for fault and least-privilege tests.

    proxy = EngineProxy(Path("/tmp/x/proxy.sock"), engine.socket_path, allowlist=True).start()
    proxy.url          # unix:///tmp/x/proxy.sock, for dnscock's -docker
    proxy.delay = 3.0  # every response from now on waits 3 s before its first byte goes out
    proxy.cut()        # drops every open connection, as a network fault would
    proxy.requests     # what went through: method, path, status, times
    proxy.stop()

It runs an asyncio loop in a thread of its own. Each client connection
gets one connection to the engine and its requests are relayed one after
another, so keep-alive and pipelined requests (dnscock's start-up inspects)
work, and streamed responses (``/events``, chunked) are passed on chunk by
chunk as they arrive. With ``allowlist=True`` only what dnscock needs is
let through, as ``conf/engine-proxy.haproxy.cfg`` does: GET and HEAD on
``/_ping``, ``/version``, ``/containers/json``, ``/containers/{id}/json``,
``/events``, ``/networks`` and ``/networks/{id}``, with or without a
``/v1.NN`` prefix; anything else gets 403 and never reaches the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("tests.engine_proxy")

_VERSION = r"(?:/v[0-9]+\.[0-9]+)?"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # a container or network id or name: no '/', '%' or leading '.'
ALLOWED_PATH = re.compile(
    rf"^{_VERSION}/(?:_ping|version|info|events|containers/json|containers/{_NAME}/json|networks|networks/{_NAME}"
    r"|services|tasks|nodes)$"
)
ALLOWED_METHODS = frozenset({"GET", "HEAD"})
_HEAD_LIMIT = 64 * 1024
_COPY = 64 * 1024


def allowed(method: str, target: str) -> bool:
    """Would the allowlist let ``method target`` (the request line's target, query included) through?"""
    if method not in ALLOWED_METHODS or not target.startswith("/"):
        return False
    return ALLOWED_PATH.match(target.split("?", 1)[0]) is not None


@dataclass
class Relayed:
    """One request that went through the proxy (or was refused by it)."""

    method: str
    target: str
    received: float  # time.monotonic() when the request was read
    status: int | None = None  # None while the engine has not answered
    answered: float | None = None  # when the response head went out to the client
    finished: float | None = None  # when the last byte of the response went out
    refused: bool = False


@dataclass(eq=False)  # hashed by identity, kept in a set
class _Connection:
    client: asyncio.StreamWriter
    engine: asyncio.StreamWriter | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)


class EngineProxy:
    def __init__(self, listen: Path, engine_socket: Path, *, allowlist: bool = False, delay: float = 0.0) -> None:
        self.listen = Path(listen)
        self.engine_socket = Path(engine_socket)
        self.allowlist = allowlist
        self.delay = delay  # seconds each response waits before it goes out; change it any time
        self.requests: list[Relayed] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._connections: set[_Connection] = set()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.listen}"

    @property
    def refused(self) -> list[Relayed]:
        return [request for request in list(self.requests) if request.refused]

    # -- life cycle --

    def start(self, timeout: float = 10.0) -> EngineProxy:
        self._thread = threading.Thread(target=self._run, name="engine-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the engine proxy did not start")
        if self._error is not None:
            raise RuntimeError(f"the engine proxy did not start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=10)
        self.listen.unlink(missing_ok=True)

    def cut(self) -> None:
        """Drops every open connection (client and engine side) at once; new ones are served as usual."""
        assert self._loop is not None
        done = threading.Event()

        def abort_all() -> None:
            for connection in list(self._connections):
                _abort(connection.client)
                if connection.engine is not None:
                    _abort(connection.engine)
            done.set()

        self._loop.call_soon_threadsafe(abort_all)
        done.wait(5)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except OSError as error:  # cannot listen: reported by start()
            self._error = error
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self.listen.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._serve, path=str(self.listen), limit=_HEAD_LIMIT)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            # Aborted connections end their tasks (reads see EOF); cancelling them instead
            # trips asyncio's streams on Python 3.11.
            tasks = [task for connection in list(self._connections) for task in connection.tasks]
            for connection in list(self._connections):
                _abort(connection.client)
                if connection.engine is not None:
                    _abort(connection.engine)
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # -- one client connection --

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        connection = _Connection(client_writer)
        self._connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            connection.tasks.add(task)
        engine_reader: asyncio.StreamReader | None = None
        try:
            while True:
                try:
                    head = await client_reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed between requests
                method, target, headers = _parse_head(head)
                body = await _read_body(client_reader, headers)
                record = Relayed(method, target, time.monotonic())
                self.requests.append(record)
                if self.allowlist and not allowed(method, target):
                    record.refused, record.status = True, 403
                    message = b'{"message":"forbidden by the engine proxy"}\n'
                    client_writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: %d\r\n\r\n%s" % (len(message), message))
                    await client_writer.drain()
                    record.answered = record.finished = time.monotonic()
                    continue
                if connection.engine is None:
                    engine_reader, connection.engine = await asyncio.open_unix_connection(
                        str(self.engine_socket), limit=_HEAD_LIMIT)
                assert engine_reader is not None
                connection.engine.write(head + body)
                await connection.engine.drain()
                response_head = await engine_reader.readuntil(b"\r\n\r\n")
                status, response_headers = _parse_status(response_head)
                record.status = status
                if self.delay > 0:
                    assert self._stopping is not None
                    with contextlib.suppress(asyncio.TimeoutError):  # the delay, cut short by stop()
                        await asyncio.wait_for(self._stopping.wait(), self.delay)
                client_writer.write(response_head)
                await client_writer.drain()
                record.answered = time.monotonic()
                if status == 101:  # an upgraded connection (attach, exec): bytes both ways until one side closes
                    await _pipe_both(client_reader, client_writer, engine_reader, connection.engine)
                    return
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                until_close = await _relay_body(engine_reader, client_writer, response_headers, no_body)
                record.finished = time.monotonic()
                if until_close or _wants_close(headers) or _wants_close(response_headers):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError) as error:
            log.debug("engine proxy connection ended: %r", error)
            return
        finally:
            self._connections.discard(connection)
            _abort(client_writer)
            if connection.engine is not None:
                _abort(connection.engine)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"not an HTTP request line: {lines[0][:80]!r}")
    return parts[0], parts[1], _headers(lines[1:])


def _parse_status(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP status line: {lines[0][:80]!r}")
    return int(fields[1]), _headers(lines[1:])


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


def _wants_close(headers: dict[str, str]) -> bool:
    return "close" in headers.get("connection", "").lower()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A request's whole body, as it came (chunked bodies keep their framing)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


async def _relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str],
                      no_body: bool) -> bool:
    """Passes a response body on as it arrives; True when it ends with the connection."""
    if no_body:
        return False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:  # chunk by chunk, flushed as each arrives: /events stays live
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            writer.write(size_line)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        await writer.drain()
                        return False
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining > 0:
            data = await reader.read(min(remaining, _COPY))
            if not data:
                raise ConnectionError("the engine closed in the middle of a response")
            writer.write(data)
            await writer.drain()
            remaining -= len(data)
        return False
    while data := await reader.read(_COPY):  # no length: the body ends when the engine closes
        writer.write(data)
        await writer.drain()
    return True


async def _pipe_both(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                     engine_reader: asyncio.StreamReader, engine_writer: asyncio.StreamWriter) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(_COPY):
            writer.write(data)
            await writer.drain()

    await asyncio.wait([asyncio.ensure_future(pipe(client_reader, engine_writer)),
                        asyncio.ensure_future(pipe(engine_reader, client_writer))],
                       return_when=asyncio.FIRST_COMPLETED)


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # at once, unsent data dropped; a second call does nothing
