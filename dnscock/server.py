"""Transport only: sockets that read DNS messages, hand them to the pipeline, send replies.

The datagram server hands each datagram to ``Pipeline.datagram`` inside its
read loop (``spawn=None``): the pipeline answers local names at once and
runs whatever must wait in greenlets of its own bounded pool or as
exchanges driven by the event loop, so a datagram never blocks the loop.

The stream server (RFC 7766) serves each connection in a greenlet from a
bounded pool: 2-byte length framing, several queries per connection whose
answers may go back out of order, and an idle timeout.
"""

from __future__ import annotations

import logging
import socket

import gevent.event
import gevent.lock
from gevent.server import DatagramServer, StreamServer

from dnscock import wire
from dnscock.pipeline import Pipeline
from dnscock.query import Query
from dnscock.sockets import framed, read_message

log = logging.getLogger("dnscock.server")


class UdpServer(DatagramServer):
    """DNS over UDP (RFC 1035 §4.2.1): the pipeline's transport for datagrams."""

    # Datagrams read per wake-up of the read loop before other greenlets get a turn.
    max_accept = 256

    def __init__(self, sock: socket.socket, pipeline: Pipeline) -> None:
        super().__init__(sock, spawn=None)
        self.pipeline = pipeline

    def _do_read(self) -> None:
        # Replaces gevent's generic accept loop (a pool check, a delay reset and two
        # calls per datagram) by the tight loop DNS needs: read until the socket is
        # empty, answer each datagram in place. Runs in the hub: nothing here may block.
        receive = self._socket.recvfrom
        datagram = self.pipeline.datagram
        for _ in range(self.max_accept):
            try:
                data, address = receive(65535)
            except BlockingIOError:
                return
            except OSError as error:
                log.debug("receive failed: %s", error)
                return
            try:
                datagram(data, address, self)
            except Exception:  # a bug must cost one SERVFAIL, never the server
                log.exception("failed to handle a message from %s", address[0])
                error_reply = wire.error_reply(data, wire.RCODE_SERVFAIL)
                if error_reply is not None:
                    self.send_to(error_reply, address)

    def handle(self, data: bytes, address: tuple) -> None:
        """One datagram (gevent's contract; the read loop above hands them over itself)."""
        self.pipeline.datagram(data, address, self)

    def send(self, query: Query, reply: bytes) -> None:
        self.send_to(reply, query.address)

    def send_to(self, reply: bytes, address: tuple) -> None:
        """Sends without ever blocking: a full buffer drops the reply, as UDP may."""
        try:
            self._socket.sendto(reply, address)
        except OSError as error:
            log.debug("cannot send a reply to %s: %s", address[0], error)


class TcpServer(StreamServer):
    """DNS over TCP (RFC 7766)."""

    def __init__(self, sock: socket.socket, pipeline: Pipeline, idle_timeout: float, max_connections: int) -> None:
        # A pool as spawn: past max_connections, new connections wait in the backlog.
        super().__init__(sock, spawn=max_connections)
        self.pipeline = pipeline
        self.idle_timeout = idle_timeout

    def handle(self, conn: socket.socket, address: tuple) -> None:
        connection = _TcpConnection(conn, address, self.pipeline, self.idle_timeout)
        try:
            connection.serve()
        except Exception:
            log.exception("failed to serve a TCP connection from %s", address[0])
        finally:
            conn.close()


class _TcpConnection:
    """One client's connection: several queries in flight, answered in any order (the pipeline's transport)."""

    def __init__(self, conn: socket.socket, address: tuple, pipeline: Pipeline, idle_timeout: float) -> None:
        self.conn, self.address, self.pipeline, self.idle_timeout = conn, address, pipeline, idle_timeout
        self.write_lock = gevent.lock.Semaphore()
        self.in_flight = 0
        self.drained = gevent.event.Event()
        self.drained.set()

    def serve(self) -> None:
        self.conn.settimeout(self.idle_timeout)
        while True:
            try:
                data = read_message(self.conn)
            except OSError:  # the client closed, reset or went idle
                break
            if len(data) < wire.HEADER_LENGTH:
                break  # not even a header: nothing to answer, and the stream is out of step
            self.in_flight += 1
            self.drained.clear()
            if not self.pipeline.stream(data, self.address, self):
                self._answered()
        # The client may have sent its last query and half-closed: answer what is in flight.
        self.drained.wait(self.idle_timeout)

    def send(self, query: Query, reply: bytes) -> None:
        with self.write_lock:
            try:
                self.conn.sendall(framed(reply))
            except OSError as error:
                log.debug("cannot send a TCP reply to %s: %s", self.address[0], error)
        self._answered()

    def _answered(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.drained.set()
