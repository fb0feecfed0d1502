"""Forwarding to upstream nameservers: shared sockets, timeouts, failover.

Each upstream gets one UDP socket shared by every query forwarded to it; a
reader greenlet hands each reply to the query waiting for its id. (A socket
per query costs a bind and a close per query, about four times the work.)
A reply is accepted only from the upstream's address (the socket is
connected), with a pending id and the question that was asked.

Nameservers are tried in order within the overall timeout. No answer, an
unreadable answer or FORMERR / SERVFAIL / NOTIMP / REFUSED from one of
them moves on to the next; when none gives an answer, ``forward`` raises
``UpstreamError`` and the resolver answers SERVFAIL. An upstream that gave
no answer ``max_fails`` times in a row is skipped until a background probe
(one at a time) gets an answer from it. A truncated UDP answer is asked
again over TCP, as is every query that came by TCP.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Sequence

import gevent
import gevent.event
from gevent import socket as gsocket

from dnslib import DNSRecord

from dnscock import wire
from dnscock.config import Address
from dnscock.errors import DnscockError

log = logging.getLogger("dnscock.upstream")

# Upstream answers that mean "this server failed", not "this is the answer".
_FAILURE_RCODES = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
_MAX_MESSAGE = 65535
PROBE_QUERY = bytes(DNSRecord.question(".", "NS").pack())
PROBE_FIRST, PROBE_MAX = 0.5, 30.0


class UpstreamError(DnscockError):
    """No upstream nameserver answered usefully in time."""


class _UdpChannel:
    """One connected UDP socket to one upstream, with the queries waiting on it."""

    def __init__(self, address: Address) -> None:
        self.address = address
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self._socket = gsocket.socket(family, socket.SOCK_DGRAM)
        self._socket.connect((address.host, address.port))
        self._pending: dict[int, tuple[bytes, gevent.event.AsyncResult]] = {}
        self._reader = gevent.spawn(self._read_replies)

    def ask(self, query: bytes, timeout: float) -> bytes:
        """Sends ``query`` (any id) and returns the reply (with our id), or raises."""
        message_id = self._free_id()
        outgoing = wire.with_id(query, message_id)
        waiter = gevent.event.AsyncResult()
        self._pending[message_id] = (outgoing, waiter)
        try:
            self._socket.send(outgoing)
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise UpstreamError(f"{self.address}: no answer within {timeout:.2f}s") from None
        except OSError as error:
            raise UpstreamError(f"{self.address}: {error.strerror or error}") from None
        finally:
            self._pending.pop(message_id, None)

    def _free_id(self) -> int:
        while True:
            message_id = random.getrandbits(16)
            if message_id not in self._pending:
                return message_id

    def _read_replies(self) -> None:
        while True:
            try:
                reply = self._socket.recv(_MAX_MESSAGE)
            except ConnectionRefusedError:
                # ICMP port unreachable: every query in flight went to a closed port.
                self._fail_all(UpstreamError(f"{self.address}: connection refused"))
                continue
            except OSError as error:
                log.warning("upstream %s: receive failed: %s", self.address, error)
                self._fail_all(UpstreamError(f"{self.address}: {error}"))
                gevent.sleep(0.1)
                continue
            fields = wire.header_fields(reply)
            if fields is None or not fields[1] & wire.QR:
                log.debug("upstream %s: dropped %d bytes that are no DNS reply", self.address, len(reply))
                continue
            pending = self._pending.get(fields[0])
            if pending is None or not wire.same_question(pending[0], reply):
                log.debug("upstream %s: dropped a reply with an unknown id or question", self.address)
                continue
            pending[1].set(reply)

    def _fail_all(self, error: Exception) -> None:
        for _, waiter in list(self._pending.values()):
            waiter.set_exception(error)

    def close(self) -> None:
        self._reader.kill(block=False)
        self._socket.close()


class Upstream:
    """One upstream nameserver: how to ask it (UDP, TCP) and whether it seems alive."""

    def __init__(self, address: Address, max_fails: int, probe_timeout: float) -> None:
        self.address = address
        self.max_fails = max_fails
        self.probe_timeout = probe_timeout
        self.fails = 0  # failed queries in a row
        self.down = False
        self._udp: _UdpChannel | None = None
        self._probe: gevent.Greenlet | None = None

    def ask(self, query: bytes, timeout: float, tcp: bool) -> bytes:
        deadline = time.monotonic() + timeout
        if not tcp:
            reply = self._channel().ask(query, timeout)
            if not reply[2] & 0x02:  # TC clear: the whole answer came by UDP
                return reply
            log.debug("upstream %s: truncated UDP answer, asking again over TCP", self.address)
        return self._ask_tcp(query, max(0.0, deadline - time.monotonic()))

    def _channel(self) -> _UdpChannel:
        if self._udp is None:
            self._udp = _UdpChannel(self.address)
        return self._udp

    def _ask_tcp(self, query: bytes, timeout: float) -> bytes:
        try:
            with gevent.Timeout(timeout):
                conn = gsocket.create_connection((self.address.host, self.address.port))
                try:
                    conn.sendall(len(query).to_bytes(2, "big") + query)
                    length = int.from_bytes(_read_exactly(conn, 2), "big")
                    reply = _read_exactly(conn, length)
                finally:
                    conn.close()
        except gevent.Timeout:
            raise UpstreamError(f"{self.address}: no answer over TCP within {timeout:.2f}s") from None
        except OSError as error:
            raise UpstreamError(f"{self.address} over TCP: {error.strerror or error}") from None
        if len(reply) < wire.HEADER_LENGTH or reply[:2] != query[:2] or not wire.same_question(query, reply):
            raise UpstreamError(f"{self.address}: a TCP answer to another question")
        return reply

    # -- health --

    def succeeded(self) -> None:
        self.fails = 0
        if self.down:
            self.down = False
            log.warning("upstream %s answers again", self.address)

    def failed(self) -> None:
        self.fails += 1
        if self.max_fails and self.fails >= self.max_fails and not self.down:
            self.down = True
            log.warning("upstream %s left %d queries in a row unanswered: skipped until it answers a probe",
                        self.address, self.fails)
            if self._probe is None or self._probe.dead:
                self._probe = gevent.spawn(self._probe_until_up)

    def _probe_until_up(self) -> None:
        """One probe in flight at a time: ". NS" until an answer comes, with capped backoff."""
        delay = PROBE_FIRST
        while self.down:
            gevent.sleep(delay)
            try:
                self._channel().ask(PROBE_QUERY, self.probe_timeout)
            except UpstreamError as error:
                log.debug("probe of %s: %s", self.address, error)
                delay = min(delay * 2, PROBE_MAX)
                continue
            self.succeeded()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.kill(block=False)
        if self._udp is not None:
            self._udp.close()
            self._udp = None


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            raise OSError("connection closed early")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Forwarder:
    """Sends queries to the upstream nameservers in order until one answers."""

    def __init__(self, nameservers: Sequence[Address], timeout: float, max_fails: int = 3) -> None:
        self.timeout = timeout
        self.upstreams = [Upstream(address, max_fails, timeout) for address in nameservers]

    def forward(self, query: bytes, tcp: bool = False) -> bytes:
        """The first useful upstream reply to ``query``, carrying the query's id.

        Over TCP when ``tcp`` (the client came by TCP) or when a UDP answer came back truncated.
        """
        deadline = time.monotonic() + self.timeout
        candidates = [upstream for upstream in self.upstreams if not upstream.down]
        if not candidates:
            raise UpstreamError("every upstream is down (probing them in the background)")
        problems = []
        for position, upstream in enumerate(candidates):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Share what is left among the servers not yet tried.
            budget = remaining / (len(candidates) - position)
            try:
                reply = upstream.ask(query, budget, tcp)
            except UpstreamError as error:
                upstream.failed()
                problems.append(str(error))
                continue
            upstream.succeeded()
            if wire.rcode(reply) in _FAILURE_RCODES:
                problems.append(f"{upstream.address}: answered rcode {wire.rcode(reply)}")
                continue
            return query[:2] + reply[2:]
        raise UpstreamError("; ".join(problems) or "no time left to ask an upstream")

    def close(self) -> None:
        for upstream in self.upstreams:
            upstream.close()
