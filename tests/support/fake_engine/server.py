"""The fake engine's HTTP server: one asyncio event loop, in a background thread, on a unix socket.

Standard library only, no gevent: it runs in its own process or thread. The
loop owns the listening socket and every connection. The sockets are plain
non-blocking ones watched with the loop's ``add_reader``/``add_writer``: no
thread, task, transport or protocol per connection (docker-py opens a
connection per inspected container, and those cost more than the answers).
A connection buffers what it receives and answers every complete request in
it, in order, with one ``send``, so pipelined requests work. Connections
stay open unless the request says ``Connection: close`` (or is HTTP/1.0
without ``keep-alive``); while answers wait to be sent, no more requests are
read.

``GET /events`` subscribes the connection before it writes the response
headers, then writes one chunk per event; events come from any thread
through ``Service.publish`` (``call_soon_threadsafe``). ``Service.stop()``
closes the listening socket, ends every event stream with its last chunk,
closes every connection once its pending writes are out and stops the loop.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import sys
import threading
import traceback
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.fake_engine.filters import event_filter_matches
from tests.support.fake_engine.fixtures import Json, json_bytes
from tests.support.fake_engine.protocol import (
    LAST_CHUNK,
    EventStream,
    HttpError,
    Request,
    event_chunk,
    json_response,
    parse_request,
    response_bytes,
    response_head,
)
from tests.support.fake_engine.routes import route

if TYPE_CHECKING:
    from tests.support.fake_engine.engine import FakeEngine

BACKLOG = 128
RECEIVE_SIZE = 256 * 1024
CLOSE_GRACE = 2.0  # seconds stop() waits for connections to send what they owe before dropping them
ACCEPT_RETRY = 0.5  # seconds without accepting after running out of file descriptors


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    path.unlink()


def listening_socket(path: Path) -> socket.socket:
    """A non-blocking unix socket listening on ``path``, replacing a stale socket file."""
    _remove_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(BACKLOG)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


class _Connection:
    """One client socket, driven by the loop's reader and writer callbacks (no transport, no task).

    It answers its requests in order, or, after ``GET /events``, streams
    events. While answers wait to be sent it reads nothing more, so a client
    that pipelines faster than it reads cannot make the output grow without
    bound.
    """

    def __init__(self, service: Service, sock: socket.socket) -> None:
        self.service = service
        self.loop = service.loop
        self.sock = sock
        self.fd = sock.fileno()  # given to the loop rather than the socket, whose repr it would format, slowly
        self.received = bytearray()
        self.unsent = bytearray()
        self.filters: dict[str, list[str]] | None = None  # set while streaming events
        self.closing = False  # no more requests: close once everything is sent
        self.closed = False
        self.loop.add_reader(self.fd, self._on_readable)  # while nothing is unsent; else a writer

    # Reading

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            self.abort()
            return
        if not data:  # the client is done sending: a stream has no one to go to, answers are still owed
            if self.filters is not None:
                self.abort()
            else:
                self.close()
        elif not self.closing and self.filters is None:
            self.received += data
            self._answer_received()

    def _answer_received(self) -> None:
        """Answers every complete request received, in order, with one send."""
        answers: list[bytes] = []
        close = False
        while not close and self.filters is None:
            try:
                parsed = parse_request(self.received)
            except HttpError as error:
                answers.append(response_bytes(json_response(error.status, {"message": str(error)}), False, True))
                close = True
                break
            if parsed is None:
                break
            request, size = parsed
            del self.received[:size]
            answers.append(self._answer(request))
            close = not request.keep_alive and self.filters is None  # an event stream stays open
        if answers:
            self.write(b"".join(answers))
        if close:
            self.close()

    def _answer(self, request: Request) -> bytes:
        try:
            result = route(self.service.engine, request.method, request.target)
        except Exception:  # a bug here: say so on stderr and to the client
            traceback.print_exc()
            result = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "fake engine error"})
        if isinstance(result, EventStream):
            return self._start_stream(result.filters)
        return response_bytes(result, head_only=request.method == "HEAD", close=not request.keep_alive)

    def _start_stream(self, filters: dict[str, list[str]]) -> bytes:
        """Subscribes, then returns the head: once the client has it, it misses no event."""
        self.filters = filters
        self.received.clear()  # from now on what the client sends is ignored (we only watch for it leaving)
        self.service.streams.add(self)
        return response_head(HTTPStatus.OK, "application/json", (("Transfer-Encoding", "chunked"),))

    # Writing

    def write(self, data: bytes) -> None:
        """Sends ``data`` after anything still unsent; what the socket does not take now waits for the writer."""
        if self.closed:
            return
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client left
            self.abort()
            return
        if sent < len(data):
            self.unsent += memoryview(data)[sent:]
            self.loop.remove_reader(self.fd)  # no more requests until the client catches up
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        del self.unsent[:sent]
        if self.unsent:
            return
        self.loop.remove_writer(self.fd)
        if self.closing:
            self._finish()
        else:
            self.loop.add_reader(self.fd, self._on_readable)

    # Closing

    def close(self) -> None:
        """Ends the event stream (with its last chunk) or the connection, once what is owed is sent."""
        if self.closed:
            return
        if self.filters is not None and not self.closing:
            self.write(LAST_CHUNK)
        self.closing = True
        if not self.unsent:  # else the writer finishes when it has sent everything
            self._finish()

    def abort(self) -> None:
        """Closes now, whatever is unsent."""
        self.closing = True
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.unsent:
            self.loop.remove_writer(self.fd)
        else:
            self.loop.remove_reader(self.fd)
        self.sock.close()
        self.service.closed(self)


class Service:
    """Serves one engine: an asyncio event loop, in a thread of its own, on a listening unix socket."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.accepted = 0
        self.connections: set[_Connection] = set()
        self.streams: set[_Connection] = set()  # the connections streaming events
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-engine", daemon=True)
        self._listener: socket.socket | None = None

    def start(self, listener: socket.socket) -> None:
        """Starts the loop and accepts on ``listener`` (listening, non-blocking); closes it on failure."""
        self._thread.start()
        try:
            self._run(self._listen(listener))
        except BaseException:
            listener.close()
            self._end_loop()
            raise

    def stop(self) -> None:
        try:
            self._run(self._shut_down(), timeout=CLOSE_GRACE + 5)
        finally:
            self._end_loop()

    def publish(self, event: Json) -> None:
        """Hands ``event`` to the loop for every stream that wants it; from any thread."""
        try:
            self.loop.call_soon_threadsafe(self._deliver, event, event_chunk(json_bytes(event)))
        except RuntimeError:  # the loop is closed: the engine stopped meanwhile
            pass

    # On the loop

    async def _listen(self, listener: socket.socket) -> None:
        self._listener = listener
        self.loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        """Takes every waiting connection (up to a backlog's worth, to let the others have a turn)."""
        assert self._listener is not None
        for _ in range(BACKLOG):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:  # out of file descriptors or memory: try again a little later
                print(f"fake engine: accept: {error}", file=sys.stderr)
                self.loop.remove_reader(self._listener.fileno())
                self.loop.call_later(ACCEPT_RETRY, self._resume_accepting)
                return
            sock.setblocking(False)
            self.accepted += 1
            self.connections.add(_Connection(self, sock))

    def _resume_accepting(self) -> None:
        if self._listener is not None:  # else stopped meanwhile
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def closed(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        self.streams.discard(connection)

    def _deliver(self, event: Json, chunk: bytes) -> None:
        for stream in list(self.streams):
            if not stream.closing and stream.filters is not None and event_filter_matches(stream.filters, event):
                stream.write(chunk)

    async def _shut_down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:  # no new connection
            self.loop.remove_reader(listener.fileno())
            listener.close()
        for connection in list(self.connections):
            connection.close()
        deadline = self.loop.time() + CLOSE_GRACE
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        for connection in list(self.connections):  # clients that read nothing: no more waiting
            connection.abort()

    # Between threads

    def _run(self, coroutine: Any, timeout: float = 10.0) -> Any:
        """Runs ``coroutine`` on the loop and waits for its result (never call from the loop itself)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
