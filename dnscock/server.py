"""Transport only: sockets that read DNS messages, hand them to the resolver, send replies.

The datagram server calls ``handle`` inside its read loop (``spawn=None``):
the resolver answers local names at once and runs whatever must wait in
greenlets of its own bounded pool, so a handler never blocks the loop.

The stream server (RFC 7766) serves each connection in a greenlet from a
bounded pool: 2-byte length framing, several queries per connection whose
answers may go back out of order, and an idle timeout.
"""

from __future__ import annotations

import logging
import socket

import gevent
import gevent.event
import gevent.lock
from gevent.server import DatagramServer, StreamServer

from dnscock import wire
from dnscock.config import Address
from dnscock.resolver import Resolver

log = logging.getLogger("dnscock.server")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# Room for a burst of datagrams while the loop is busy: the kernel's default (about 208 KiB,
# some 500 queries) overflowed at 44,000 queries a second and lost queries.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def grow_receive_buffer(sock: socket.socket, size: int = UDP_RECEIVE_BUFFER) -> None:
    """Asks for ``size`` bytes of receive buffer (the kernel caps it at net.core.rmem_max)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as error:
        log.debug("cannot grow the receive buffer: %s", error)


def bind_udp(address: Address) -> socket.socket:
    """A bound UDP socket; host "" is every address, IPv6 and IPv4 when the host has IPv6."""
    sock = _bind(address, socket.SOCK_DGRAM)
    grow_receive_buffer(sock)
    return sock


def bind_tcp(address: Address, backlog: int = 128) -> socket.socket:
    sock = _bind(address, socket.SOCK_STREAM)
    sock.listen(backlog)
    return sock


def bind_pair(address: Address, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on the same port; with port 0, one the kernel picks free for both."""
    for _ in range(attempts if address.port == 0 else 1):
        udp = bind_udp(address)
        try:
            return udp, bind_tcp(Address(address.host, bound_address(udp).port))
        except OSError:
            udp.close()
            if address.port != 0:
                raise
    raise OSError(f"no port free for both UDP and TCP after {attempts} tries")


def _bind(address: Address, kind: socket.SocketKind) -> socket.socket:
    if address.host:
        candidates = [(_family(address.host), address.host)]
    else:
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    error: OSError | None = None
    for family, host in candidates:
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, address.port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


def bound_address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return Address(host, port)


class UdpServer(DatagramServer):
    """DNS over UDP (RFC 1035 §4.2.1)."""

    # Datagrams read per wake-up of the read loop before other greenlets get a turn.
    max_accept = 256

    def __init__(self, sock: socket.socket, resolver: Resolver) -> None:
        super().__init__(sock, spawn=None)
        self.resolver = resolver

    def _do_read(self) -> None:
        # Replaces gevent's generic accept loop (a pool check, a delay reset and two
        # calls per datagram) by the tight loop DNS needs: read until the socket is
        # empty, answer each datagram in place. Runs in the hub: nothing here may block.
        receive = self._socket.recvfrom
        handle = self.handle
        for _ in range(self.max_accept):
            try:
                data, address = receive(65535)
            except BlockingIOError:
                return
            except OSError as error:
                log.debug("receive failed: %s", error)
                return
            handle(data, address)

    def handle(self, data: bytes, address: tuple) -> None:
        reply = _Reply(self._socket, address)
        try:
            self.resolver.handle(data, False, reply, address[0])
        except Exception:  # a bug must cost one SERVFAIL, never the server
            log.exception("failed to handle a message from %s", address[0])
            error = wire.error_reply(data, wire.RCODE_SERVFAIL)
            if error is not None:
                reply(error)


class _Reply:
    """Sends one reply to one client, without ever blocking (a full buffer drops it, as UDP may)."""

    __slots__ = ("sock", "address")

    def __init__(self, sock: socket.socket, address: tuple) -> None:
        self.sock, self.address = sock, address

    def __call__(self, reply: bytes) -> None:
        try:
            self.sock.sendto(reply, self.address)
        except OSError as error:
            log.debug("cannot send a reply to %s: %s", self.address[0], error)


class TcpServer(StreamServer):
    """DNS over TCP (RFC 7766)."""

    def __init__(self, sock: socket.socket, resolver: Resolver, idle_timeout: float, max_connections: int) -> None:
        # A pool as spawn: past max_connections, new connections wait in the backlog.
        super().__init__(sock, spawn=max_connections)
        self.resolver = resolver
        self.idle_timeout = idle_timeout

    def handle(self, conn: socket.socket, address: tuple) -> None:
        connection = _TcpConnection(conn, address, self.resolver, self.idle_timeout)
        try:
            connection.serve()
        except Exception:
            log.exception("failed to serve a TCP connection from %s", address[0])
        finally:
            conn.close()


class _TcpConnection:
    def __init__(self, conn: socket.socket, address: tuple, resolver: Resolver, idle_timeout: float) -> None:
        self.conn, self.address, self.resolver, self.idle_timeout = conn, address, resolver, idle_timeout
        self.write_lock = gevent.lock.Semaphore()
        self.in_flight = 0
        self.drained = gevent.event.Event()
        self.drained.set()

    def serve(self) -> None:
        self.conn.settimeout(self.idle_timeout)
        while True:
            try:
                data = self._read_message()
            except (TimeoutError, OSError):
                data = None
            if data is None:
                break
            if len(data) < wire.HEADER_LENGTH:
                break  # not even a header: nothing to answer, and the stream is out of step
            self.in_flight += 1
            self.drained.clear()
            if not self.resolver.handle(data, True, self._respond, self.address[0]):
                self._answered()
        # The client may have sent its last query and half-closed: answer what is in flight.
        self.drained.wait(self.idle_timeout)

    def _read_message(self) -> bytes | None:
        header = self._read_exactly(2)
        if header is None:
            return None
        return self._read_exactly(int.from_bytes(header, "big"))

    def _read_exactly(self, size: int) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            chunk = self.conn.recv(remaining)
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _respond(self, reply: bytes) -> None:
        self.send(reply)
        self._answered()

    def _answered(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.drained.set()

    def send(self, reply: bytes) -> None:
        with self.write_lock:
            try:
                self.conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError as error:
                log.debug("cannot send a TCP reply to %s: %s", self.address[0], error)
