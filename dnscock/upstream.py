"""Forwarding to upstream nameservers: shared sockets, timeouts, failover.

Each upstream gets one UDP socket shared by every query forwarded to it; a
reader greenlet hands each reply to the query waiting for its id. (A socket
per query costs a bind and a close per query, about four times the work.)
A reply is accepted only from the upstream's address (the socket is
connected), with a pending id and the question that was asked.

Nameservers are tried in order within the overall timeout. No answer, an
unreadable answer or FORMERR / SERVFAIL / NOTIMP / REFUSED from one of
them moves on to the next; when none gives an answer, ``forward`` raises
``UpstreamError`` and the resolver answers SERVFAIL.
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

from dnscock import wire
from dnscock.config import Address
from dnscock.errors import DnscockError

log = logging.getLogger("dnscock.upstream")

# Upstream answers that mean "this server failed", not "this is the answer".
_FAILURE_RCODES = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
_MAX_MESSAGE = 65535


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


class Forwarder:
    """Sends queries to the upstream nameservers in order until one answers."""

    def __init__(self, nameservers: Sequence[Address], timeout: float) -> None:
        self.nameservers = tuple(nameservers)
        self.timeout = timeout
        self._channels: dict[Address, _UdpChannel] = {}

    def _channel(self, address: Address) -> _UdpChannel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = _UdpChannel(address)
        return channel

    def forward(self, query: bytes) -> bytes:
        """The first useful upstream reply to ``query``, carrying the query's id."""
        deadline = time.monotonic() + self.timeout
        problems = []
        for position, address in enumerate(self.nameservers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Share what is left among the servers not yet tried.
            budget = remaining / (len(self.nameservers) - position)
            try:
                reply = self._channel(address).ask(query, budget)
            except (UpstreamError, OSError) as error:
                problems.append(str(error))
                continue
            if wire.rcode(reply) in _FAILURE_RCODES:
                problems.append(f"{address}: answered rcode {wire.rcode(reply)}")
                continue
            return query[:2] + reply[2:]
        raise UpstreamError("; ".join(problems) or "no time left to ask an upstream")

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
