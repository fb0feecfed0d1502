"""Forwarding to upstream nameservers: one failover plan, UDP and TCP as its drivers, health.

A forwarded query carries its own exchange (``Query``'s forwarding slots):
the plan tries the nameservers in order within the overall timeout, each
getting an equal share of what is left. No answer, an unreadable answer,
or FORMERR / SERVFAIL / NOTIMP / REFUSED from one of them moves on to the
next; when none gives an answer the exchange ends with ``None`` and the
pipeline answers SERVFAIL. Every outcome reaches the caller one way,
through the ``done`` it submitted the query with.

The plan has two drivers:

* UDP: each upstream gets one connected UDP socket shared by every query
  forwarded to it. A query is sent with a random id of its own; the
  socket's read watcher hands each reply to the query waiting for that id
  and that question; one loop timer sweeps the attempts that ran out of
  time. No greenlet, timer or closure is made for a UDP query: at tens of
  thousands of queries a second, each would cost more than the rest of the
  work.
* TCP, for queries that came by TCP and for a UDP answer that came back
  truncated (asked again over TCP within the same upstream's share): one
  greenlet per attempt.

An upstream that gave no answer ``max_fails`` times in a row is skipped
until a background probe (one at a time) gets an answer from it.
"""

from __future__ import annotations

import _socket
import logging
import random
import time
from collections.abc import Callable, Sequence

import gevent
from dnslib import DNSRecord
from gevent import socket as gsocket

from dnscock import wire
from dnscock.addresses import Address
from dnscock.dnsname import split_name
from dnscock.errors import DnscockError
from dnscock.query import Query
from dnscock.sockets import framed, grow_receive_buffer, read_message
from dnscock.stats import rcode_name

log = logging.getLogger("dnscock.upstream")

# Upstream answers that mean "this server failed", not "this is the answer".
_FAILURE_RCODES = frozenset({wire.RCODE_FORMERR, wire.RCODE_SERVFAIL, wire.RCODE_NOTIMP, wire.RCODE_REFUSED})
_MAX_MESSAGE = 65535
_READS_PER_WAKEUP = 256
_SWEEP_INTERVAL = 0.01  # how often timed-out attempts are looked for (seconds)
PROBE_QUERY = bytes(DNSRecord.question(".", "NS").pack())
PROBE_FIRST, PROBE_MAX = 0.5, 30.0
_MALFORMED = "a malformed reply"

# Called once per forwarded query: (the query; the upstream's reply as it came, its id ours and not the
# client's, or None; what went wrong).
Done = Callable[[Query, bytes | None, str], None]


class UpstreamError(DnscockError):
    """No upstream nameserver answered usefully in time."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _UdpChannel:
    """One connected UDP socket to one upstream, read by an event-loop watcher; the queries waiting on it by id."""

    def __init__(self, address: Address, forwarder: Forwarder) -> None:
        self.address = address
        self.forwarder = forwarder
        # A plain non-blocking socket: it is only ever read when the loop says it is readable.
        self._socket = _socket.socket(address.family, _socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        grow_receive_buffer(self._socket)  # replies to a burst of forwarded queries arrive together
        self._socket.connect((address.host, address.port))
        self.pending: dict[int, Query] = {}
        self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), 1)
        self._watcher.start(self._on_readable)

    def send(self, query: Query) -> None:
        """Sends ``query`` under a fresh random id, not one in flight; raises OSError."""
        pending = self.pending
        message_id = random.getrandbits(16)
        while message_id in pending:
            message_id = random.getrandbits(16)
        self._socket.send(wire.with_id(query.data, message_id))
        query.message_id = message_id
        pending[message_id] = query

    def forget(self, query: Query) -> None:
        if self.pending.get(query.message_id) is query:
            del self.pending[query.message_id]

    def _on_readable(self) -> None:
        # Runs in the hub: nothing here may block, and a bug must not stop the watcher.
        receive = self._socket.recv
        for _ in range(_READS_PER_WAKEUP):
            try:
                reply = receive(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                # ICMP port unreachable: every query in flight went to a closed port.
                self._fail_all("connection refused")
                continue
            except OSError as error:
                log.warning("upstream %s: receive failed: %s", self.address, error)
                self._fail_all(str(error))
                return
            try:
                self._dispatch(reply)
            except Exception:
                log.exception("upstream %s: failed to handle a reply", self.address)

    def _dispatch(self, reply: bytes) -> None:
        if len(reply) < wire.HEADER_LENGTH or not reply[2] & wire.QR_OCTET:  # only a response answers
            log.debug("upstream %s: dropped %d bytes that are no DNS reply", self.address, len(reply))
            return
        message_id = reply[0] << 8 | reply[1]
        query = self.pending.get(message_id)
        if query is None or not wire.same_question(query.data, reply, query.end):
            log.debug("upstream %s: dropped a reply with an unknown id or question", self.address)
            return
        del self.pending[message_id]
        self.forwarder.udp_reply(query, reply)

    def _fail_all(self, problem: str) -> None:
        pending, self.pending = self.pending, {}
        for query in pending.values():
            self.forwarder.udp_failed(query, problem)

    def close(self) -> None:
        self._watcher.stop()
        self._watcher.close()
        self._socket.close()
        self.pending.clear()


class Upstream:
    """One upstream nameserver: its UDP channel, TCP asks, and whether it seems alive."""

    def __init__(self, address: Address, forwarder: Forwarder, max_fails: int, probe_timeout: float,
                 domain: str = "") -> None:
        self.address = address
        self.forwarder = forwarder
        self.domain = domain  # the names it is asked for: "" every name no other upstream's domain covers
        self.max_fails = max_fails
        self.probe_timeout = probe_timeout
        self.fails = 0  # failed queries in a row
        self.down = False
        # Totals for /metrics: plain ints, cheap on the query path.
        self.queries = 0
        self.timeouts = 0
        self.errors = 0
        self._udp: _UdpChannel | None = None
        self._probe: gevent.Greenlet | None = None
        self._closed = False

    def channel(self) -> _UdpChannel:
        """The UDP channel, opened at first use; raises OSError once closed (nothing may open it again)."""
        if self._udp is None:
            if self._closed:
                raise OSError(f"upstream {self.address} is closed")
            self._udp = _UdpChannel(self.address, self.forwarder)
        return self._udp

    def ask_udp(self, query: bytes, timeout: float) -> bytes:
        """Blocks the calling greenlet for one UDP exchange on a socket of its own (probes); raises UpstreamError."""
        query = wire.with_id(query, random.getrandbits(16))
        end = wire.question_end(query) or wire.HEADER_LENGTH
        try:
            with gevent.Timeout(timeout), gsocket.socket(self.address.family, gsocket.SOCK_DGRAM) as sock:
                sock.connect((self.address.host, self.address.port))
                sock.send(query)
                while True:
                    reply = sock.recv(_MAX_MESSAGE)
                    if len(reply) >= wire.HEADER_LENGTH and reply[:2] == query[:2] \
                            and wire.same_question(query, reply, end):
                        return reply
        except gevent.Timeout:
            raise UpstreamError(f"{self.address}: no answer within {timeout:.2f}s", timed_out=True) from None
        except OSError as error:
            raise UpstreamError(f"{self.address}: {error.strerror or error}") from None

    def ask_tcp(self, query: bytes, timeout: float) -> bytes:
        """Blocks the calling greenlet for one TCP exchange; raises UpstreamError."""
        try:
            with gevent.Timeout(timeout):
                conn = gsocket.create_connection((self.address.host, self.address.port))
                try:
                    conn.sendall(framed(query))
                    reply = read_message(conn)
                finally:
                    conn.close()
        except gevent.Timeout:
            raise UpstreamError(f"{self.address}: no answer over TCP within {timeout:.2f}s", timed_out=True) from None
        except OSError as error:
            raise UpstreamError(f"{self.address} over TCP: {error.strerror or error}") from None
        end = wire.question_end(query) or wire.HEADER_LENGTH
        if len(reply) < wire.HEADER_LENGTH or reply[:2] != query[:2] or not wire.same_question(query, reply, end):
            raise UpstreamError(f"{self.address}: a TCP answer to another question")
        return reply

    # -- health --

    def judge(self, reply: bytes) -> str:
        """Books a reply: "" when it may reach the client, else why not.

        A malformed reply counts as a failure, a refusal as a sign of life.
        """
        rcode = reply[3] & wire.RCODE_MASK
        if rcode in _FAILURE_RCODES:
            self.errors += 1
            self.succeeded()  # alive, if perhaps unwilling
            return f"answered {rcode_name(rcode)}"
        if wire.records(reply, keep=False) is None:
            self.errors += 1
            self.failed()  # as good as no answer
            return _MALFORMED
        if self.fails:
            self.succeeded()
        return ""

    def ask_failed(self, error: UpstreamError) -> None:
        """Books an exchange that got no reply at all."""
        if error.timed_out:
            self.timeouts += 1
        else:
            self.errors += 1
        self.failed()

    def succeeded(self) -> None:
        self.fails = 0
        if self.down:
            self.down = False
            log.warning("upstream %s answers again", self.address)
            self.forwarder.health_changed()

    def failed(self) -> None:
        self.fails += 1
        if self.max_fails and self.fails >= self.max_fails and not self.down:
            self.down = True
            log.warning("upstream %s left %d queries in a row unanswered: skipped until it answers a probe",
                        self.address, self.fails)
            self.forwarder.health_changed()
            if self._probe is None or self._probe.dead:
                self._probe = gevent.spawn(self._probe_until_up)

    def _probe_until_up(self) -> None:
        """One probe in flight at a time: ". NS" until an answer comes, with capped backoff."""
        delay = PROBE_FIRST
        while self.down:
            gevent.sleep(delay)
            try:
                if wire.records(self.ask_udp(PROBE_QUERY, self.probe_timeout)) is None:
                    raise UpstreamError(f"{self.address}: {_MALFORMED}")
            except UpstreamError as error:
                log.debug("probe of %s: %s", self.address, error)
                delay = min(delay * 2, PROBE_MAX)
                continue
            self.succeeded()

    def close(self) -> None:
        self._closed = True
        if self._probe is not None:
            self._probe.kill(block=False)
        if self._udp is not None:
            self._udp.close()
            self._udp = None


class _Group:
    """The upstreams for one domain (or the default ones), and those of them not down."""

    __slots__ = ("upstreams", "live")

    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams
        self.live = list(upstreams)

    def refresh(self) -> None:
        self.live = [upstream for upstream in self.upstreams if not upstream.down]


class Forwarder:
    """Forwards queries to the upstream nameservers in order until one answers.

    Names in a domain given its own nameservers (``-nameserver=/domain/ip``)
    go to those, the longest domain first; every other name to the default ones.
    """

    def __init__(self, nameservers: Sequence[Address], timeout: float, max_fails: int = 3,
                 domain_nameservers: Sequence[tuple[str, Sequence[Address]]] = ()) -> None:
        self.timeout = timeout
        self._default = _Group([Upstream(address, self, max_fails, timeout) for address in nameservers])
        self._domains = {split_name(domain): _Group([Upstream(address, self, max_fails, timeout, domain)
                                                     for address in servers])
                         for domain, servers in domain_nameservers}
        self._domain_lengths = sorted({len(labels) for labels in self._domains}, reverse=True)
        self.upstreams = self._default.upstreams + [upstream for group in self._domains.values()
                                                    for upstream in group.upstreams]
        self.in_flight = 0  # exchanges not yet finished
        # UDP attempts in flight are swept by one loop timer (cheaper than a timer each), running
        # only while queries are in flight.
        self._sweeper = None

    def group_for(self, labels: Sequence[str]) -> list[Upstream]:
        """The upstreams for a name (its lower-case labels): its longest domain's, else the default ones."""
        return self._group(labels).upstreams

    def _group(self, labels: Sequence[str]) -> _Group:
        for length in self._domain_lengths:
            if len(labels) >= length:
                group = self._domains.get(tuple(labels[len(labels) - length:]))
                if group is not None:
                    return group
        return self._default

    def health_changed(self) -> None:
        """An upstream went down or came back: the groups' lists of live upstreams are made again."""
        self._default.refresh()
        for group in self._domains.values():
            group.refresh()

    # -- the plan --

    def submit(self, query: Query, done: Done) -> None:
        """Forwards ``query`` without blocking; ``done`` is called once, later or now.

        Over TCP when ``query.tcp`` (the client came by TCP), else over UDP
        (and TCP after a truncated answer).
        """
        self.in_flight += 1
        query.done = done
        query.candidates = (self._group(query.labels) if self._domain_lengths else self._default).live
        query.position = 0
        query.problems = None
        query.deadline = time.monotonic() + self.timeout
        if not query.candidates:
            self._finish(query, None, "every upstream is down (probing them in the background)")
            return
        self._try_next(query)

    def _try_next(self, query: Query) -> None:
        candidates = query.candidates
        while query.position < len(candidates):
            upstream = candidates[query.position]
            query.position += 1
            now = time.monotonic()
            remaining = query.deadline - now
            if remaining <= 0:
                break
            # Share what is left among the servers not yet tried.
            query.attempt_deadline = now + remaining / (len(candidates) - query.position + 1)
            query.upstream = upstream
            upstream.queries += 1
            if query.tcp:
                gevent.spawn(self._over_tcp, query)
                return
            try:
                upstream.channel().send(query)
            except OSError as error:
                self._failed(query, UpstreamError(f"{upstream.address}: {error.strerror or error}"))
                continue
            if self._sweeper is None:
                self._start_sweeper()
            return
        self._finish(query, None, "; ".join(query.problems or ()) or "no time left to ask an upstream")

    # -- the UDP driver: called from the event loop --

    def udp_reply(self, query: Query, reply: bytes) -> None:
        if reply[2] & wire.TC_OCTET:  # the whole answer needs TCP, which needs a greenlet
            log.debug("upstream %s: truncated UDP answer, asking again over TCP", query.upstream.address)
            gevent.spawn(self._over_tcp, query)
            return
        self._judged(query, reply)

    def udp_failed(self, query: Query, problem: str) -> None:
        self._failed(query, UpstreamError(f"{query.upstream.address}: {problem}"))
        self._try_next(query)

    def _start_sweeper(self) -> None:
        self._sweeper = gevent.get_hub().loop.timer(_SWEEP_INTERVAL, _SWEEP_INTERVAL)
        self._sweeper.start(self._sweep)

    def _channels(self) -> list[_UdpChannel]:
        return [upstream._udp for upstream in self.upstreams if upstream._udp is not None]

    def _sweep(self) -> None:
        now = time.monotonic()
        for channel in self._channels():
            expired = [query for query in channel.pending.values() if query.attempt_deadline <= now]
            for query in expired:
                channel.forget(query)
                try:
                    self._failed(query, UpstreamError(f"{query.upstream.address}: no answer in time",
                                                      timed_out=True))
                    self._try_next(query)  # perhaps on a channel swept already: it is looked at next time
                except Exception:
                    log.exception("failed to time out a forwarded query")
        if self._sweeper is not None and not any(channel.pending for channel in self._channels()):
            self._stop_sweeper()

    def _stop_sweeper(self) -> None:
        self._sweeper.stop()
        self._sweeper.close()
        self._sweeper = None

    # -- the TCP driver: a greenlet --

    def _over_tcp(self, query: Query) -> None:
        # Within this upstream's share of the time, so that the next one still gets its turn.
        upstream = query.upstream
        budget = max(0.0, min(query.attempt_deadline, query.deadline) - time.monotonic())
        try:
            reply = upstream.ask_tcp(query.data, budget)
        except UpstreamError as error:
            self._failed(query, error)
            self._try_next(query)
            return
        self._judged(query, reply)

    # -- outcomes --

    def _judged(self, query: Query, reply: bytes) -> None:
        problem = query.upstream.judge(reply)
        if problem:
            self._note(query, f"{query.upstream.address}: {problem}")
            self._try_next(query)
            return
        self._finish(query, reply, "")

    def _failed(self, query: Query, error: UpstreamError) -> None:
        query.upstream.ask_failed(error)
        self._note(query, str(error))

    @staticmethod
    def _note(query: Query, problem: str) -> None:
        if query.problems is None:
            query.problems = []
        query.problems.append(problem)

    def _finish(self, query: Query, reply: bytes | None, problem: str) -> None:
        self.in_flight -= 1
        try:
            query.done(query, reply, problem)
        except Exception:
            log.exception("failed to deliver a forwarded answer")

    def close(self) -> None:
        if self._sweeper is not None:
            self._stop_sweeper()
        for upstream in self.upstreams:
            upstream.close()
