"""Forwarding to upstream nameservers: one failover plan, UDP and TCP as its drivers, health.

A forwarded query is an ``_Exchange``: the plan that tries the nameservers
in order within the overall timeout, each getting an equal share of what
is left. No answer, an unreadable answer, or FORMERR / SERVFAIL / NOTIMP /
REFUSED from one of them moves on to the next; when none gives an answer
the exchange ends with ``None`` and the resolver answers SERVFAIL. Every
outcome reaches the caller one way, through its ``done`` callback.

The plan has two drivers:

* UDP: each upstream gets one connected UDP socket shared by every query
  forwarded to it. A query is sent with an id of its own; the socket's
  read watcher hands each reply to the exchange waiting for that id (and
  that question); one loop timer sweeps the attempts that ran out of time.
  No greenlet waits on a UDP query: at tens of thousands of queries a
  second, a greenlet switch and a timeout object per query cost more than
  the rest of the work.
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
import gevent.event
from dnslib import DNSRecord
from gevent import socket as gsocket

from dnscock import wire
from dnscock.config import Address
from dnscock.dnsname import split_name
from dnscock.errors import DnscockError
from dnscock.sockets import framed, grow_receive_buffer, read_message

log = logging.getLogger("dnscock.upstream")

# Upstream answers that mean "this server failed", not "this is the answer".
_FAILURE_RCODES = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
_MAX_MESSAGE = 65535
_READS_PER_WAKEUP = 256
_SWEEP_INTERVAL = 0.01  # how often timed-out exchanges are looked for (seconds)
PROBE_QUERY = bytes(DNSRecord.question(".", "NS").pack())
PROBE_FIRST, PROBE_MAX = 0.5, 30.0

# Called once per forwarded query: (the upstream's reply as it came, its id ours and not the client's,
# or None; what went wrong; where the reply's records sit, as the check for malformed replies found
# them, so that no one reads them again).
Done = Callable[[bytes | None, str, list[wire.RecordInfo] | None], None]


class UpstreamError(DnscockError):
    """No upstream nameserver answered usefully in time."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Pending:
    """What a UDP channel needs of a query in flight: its bytes and whom to tell."""

    __slots__ = ("outgoing", "question_end", "on_reply", "on_error")

    def __init__(self, outgoing: bytes, question_end: int, on_reply: Callable[[bytes], None],
                 on_error: Callable[[str], None]) -> None:
        self.outgoing, self.question_end, self.on_reply, self.on_error = outgoing, question_end, on_reply, on_error


class _UdpChannel:
    """One connected UDP socket to one upstream, read by an event-loop watcher."""

    def __init__(self, address: Address) -> None:
        self.address = address
        # A plain non-blocking socket: it is only ever read when the loop says it is readable.
        self._socket = _socket.socket(address.family, _socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        grow_receive_buffer(self._socket)  # replies to a burst of forwarded queries arrive together
        self._socket.connect((address.host, address.port))
        self._pending: dict[int, _Pending] = {}
        self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), 1)
        self._watcher.start(self._on_readable)

    def send(self, query: bytes, on_reply: Callable[[bytes], None], on_error: Callable[[str], None],
             question_end: int | None = None) -> int:
        """Sends ``query`` under a fresh id; returns the id (for ``forget``). Raises OSError.

        ``question_end``, when the caller knows it, spares parsing the question again.
        """
        message_id = self._free_id()
        outgoing = wire.with_id(query, message_id)
        self._socket.send(outgoing)
        end = question_end or wire.question_end(query) or wire.HEADER_LENGTH
        self._pending[message_id] = _Pending(outgoing, end, on_reply, on_error)
        return message_id

    def forget(self, message_id: int) -> None:
        self._pending.pop(message_id, None)

    def _free_id(self) -> int:
        while True:
            message_id = random.getrandbits(16)
            if message_id not in self._pending:
                return message_id

    def _on_readable(self) -> None:
        # Runs in the hub: nothing here may block, and a bug must not stop the watcher.
        for _ in range(_READS_PER_WAKEUP):
            try:
                reply = self._socket.recv(_MAX_MESSAGE)
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
        fields = wire.header_fields(reply)
        if fields is None or not fields[1] & wire.QR:
            log.debug("upstream %s: dropped %d bytes that are no DNS reply", self.address, len(reply))
            return
        pending = self._pending.get(fields[0])
        if pending is None or not (
            reply[wire.HEADER_LENGTH:pending.question_end] == pending.outgoing[wire.HEADER_LENGTH:pending.question_end]
            or wire.same_question(pending.outgoing, reply)
        ):
            log.debug("upstream %s: dropped a reply with an unknown id or question", self.address)
            return
        del self._pending[fields[0]]
        pending.on_reply(reply)

    def _fail_all(self, problem: str) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.on_error(problem)

    def close(self) -> None:
        self._watcher.stop()
        self._watcher.close()
        self._socket.close()
        self._pending.clear()


class Upstream:
    """One upstream nameserver: its UDP channel, TCP asks, and whether it seems alive."""

    def __init__(self, address: Address, max_fails: int, probe_timeout: float, domain: str = "") -> None:
        self.address = address
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
            self._udp = _UdpChannel(self.address)
        return self._udp

    def ask_udp(self, query: bytes, timeout: float) -> bytes:
        """Blocks the calling greenlet for one UDP exchange (used by probes)."""
        result = gevent.event.AsyncResult()
        message_id = self.channel().send(query, result.set, lambda problem: result.set_exception(OSError(problem)))
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise UpstreamError(f"{self.address}: no answer within {timeout:.2f}s") from None
        except OSError as error:
            raise UpstreamError(f"{self.address}: {error}") from None
        finally:
            if self._udp is not None:
                self._udp.forget(message_id)

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
        if len(reply) < wire.HEADER_LENGTH or reply[:2] != query[:2] or not wire.same_question(query, reply):
            raise UpstreamError(f"{self.address}: a TCP answer to another question")
        return reply

    # -- health --

    def judge(self, reply: bytes) -> tuple[str, list[wire.RecordInfo] | None]:
        """Books a reply: ("" when it may reach the client, else why not; its records).

        A malformed reply counts as a failure, a refusal as a sign of life.
        """
        problem, infos = _unusable(reply)
        if problem:
            self.errors += 1
        if problem == _MALFORMED:
            self.failed()  # as good as no answer
        else:
            self.succeeded()  # alive, if perhaps unwilling
        return problem, infos

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
                if _unusable(self.ask_udp(PROBE_QUERY, self.probe_timeout))[0] == _MALFORMED:
                    raise UpstreamError(f"{self.address}: {_MALFORMED}")
            except (UpstreamError, OSError) as error:
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


_MALFORMED = "a malformed reply"


def _unusable(reply: bytes) -> tuple[str, list[wire.RecordInfo] | None]:
    """Why an upstream's reply must not reach the client ("" when it may), and its records."""
    if wire.rcode(reply) in _FAILURE_RCODES:
        return f"answered rcode {wire.rcode(reply)}", None
    infos = wire.records(reply)
    return ("" if infos is not None else _MALFORMED), infos


class _Exchange:
    """One forwarded query on its way through the upstreams: the failover plan, whatever the transport."""

    __slots__ = ("forwarder", "query", "question_end", "done", "candidates", "position", "deadline", "problems",
                 "attempt_deadline", "upstream", "message_id", "tcp")

    def __init__(self, forwarder: Forwarder, query: bytes, done: Done, candidates: list[Upstream],
                 question_end: int | None, tcp: bool) -> None:
        self.forwarder, self.query, self.done, self.candidates = forwarder, query, done, candidates
        self.question_end = question_end
        self.tcp = tcp
        self.position = 0
        self.deadline = time.monotonic() + forwarder.timeout
        self.problems: list[str] = []
        self.attempt_deadline = 0.0
        self.upstream: Upstream | None = None
        self.message_id = -1

    def try_next(self) -> None:
        while self.position < len(self.candidates):
            upstream = self.candidates[self.position]
            self.position += 1
            now = time.monotonic()
            remaining = self.deadline - now
            if remaining <= 0:
                break
            # Share what is left among the servers not yet tried.
            self.attempt_deadline = now + remaining / (len(self.candidates) - self.position + 1)
            self.upstream = upstream
            upstream.queries += 1
            if self.tcp:
                gevent.spawn(self._over_tcp)
                return
            try:
                self.message_id = upstream.channel().send(self.query, self.on_reply, self.on_error, self.question_end)
            except OSError as error:
                self._failed(UpstreamError(f"{upstream.address}: {error.strerror or error}"))
                continue
            self.forwarder.watch(self)
            return
        self.finish(None, "; ".join(self.problems) or "no time left to ask an upstream")

    # -- the UDP driver: called from the event loop --

    def on_reply(self, reply: bytes) -> None:
        self.forwarder.unwatch(self)
        if reply[2] << 8 & wire.TC:  # the whole answer needs TCP, which needs a greenlet
            log.debug("upstream %s: truncated UDP answer, asking again over TCP", self.upstream.address)
            gevent.spawn(self._over_tcp)
            return
        self._judged(reply)

    def on_error(self, problem: str) -> None:
        self.forwarder.unwatch(self)
        self._failed(UpstreamError(f"{self.upstream.address}: {problem}"))
        self.try_next()

    def on_timeout(self) -> None:
        self.upstream.channel().forget(self.message_id)
        self._failed(UpstreamError(f"{self.upstream.address}: no answer in time", timed_out=True))
        self.try_next()

    # -- the TCP driver: a greenlet --

    def _over_tcp(self) -> None:
        # Within this upstream's share of the time, so that the next one still gets its turn.
        upstream = self.upstream
        budget = max(0.0, min(self.attempt_deadline, self.deadline) - time.monotonic())
        try:
            reply = upstream.ask_tcp(self.query, budget)
        except UpstreamError as error:
            self._failed(error)
            self.try_next()
            return
        self._judged(reply)

    # -- outcomes --

    def _judged(self, reply: bytes) -> None:
        problem, infos = self.upstream.judge(reply)
        if problem:
            self.problems.append(f"{self.upstream.address}: {problem}")
            self.try_next()
            return
        self.finish(reply, "", infos)

    def _failed(self, error: UpstreamError) -> None:
        self.upstream.ask_failed(error)
        self.problems.append(str(error))

    def finish(self, reply: bytes | None, problem: str, infos: list[wire.RecordInfo] | None = None) -> None:
        self.forwarder.in_flight -= 1
        try:
            self.done(reply, problem, infos)
        except Exception:
            log.exception("failed to deliver a forwarded answer")


class Forwarder:
    """Forwards queries to the upstream nameservers in order until one answers.

    Names in a domain given its own nameservers (``-nameserver=/domain/ip``)
    go to those, the longest domain first; every other name to the default ones.
    """

    def __init__(self, nameservers: Sequence[Address], timeout: float, max_fails: int = 3,
                 domain_nameservers: Sequence[tuple[str, Sequence[Address]]] = ()) -> None:
        self.timeout = timeout
        self._default = [Upstream(address, max_fails, timeout) for address in nameservers]
        self._domains = {split_name(domain): [Upstream(address, max_fails, timeout, domain) for address in servers]
                         for domain, servers in domain_nameservers}
        self._domain_lengths = sorted({len(labels) for labels in self._domains}, reverse=True)
        self.upstreams = self._default + [upstream for group in self._domains.values() for upstream in group]
        self.in_flight = 0  # exchanges not yet finished
        # UDP attempts in flight, swept by one loop timer (cheaper than a timer each). At most
        # forward_pool of them, and only while queries are in flight.
        self._attempts: dict[int, _Exchange] = {}
        self._sweeper = None

    def watch(self, exchange: _Exchange) -> None:
        self._attempts[id(exchange)] = exchange
        if self._sweeper is None:
            self._sweeper = gevent.get_hub().loop.timer(_SWEEP_INTERVAL, _SWEEP_INTERVAL)
            self._sweeper.start(self._sweep)

    def unwatch(self, exchange: _Exchange) -> None:
        self._attempts.pop(id(exchange), None)

    def _sweep(self) -> None:
        now = time.monotonic()
        expired = [exchange for exchange in self._attempts.values() if exchange.attempt_deadline <= now]
        for exchange in expired:
            self.unwatch(exchange)
            try:
                exchange.on_timeout()
            except Exception:
                log.exception("failed to time out a forwarded query")
        if not self._attempts and self._sweeper is not None:
            self._stop_sweeper()

    def _stop_sweeper(self) -> None:
        self._sweeper.stop()
        self._sweeper.close()
        self._sweeper = None

    def group_for(self, labels: Sequence[str]) -> list[Upstream]:
        """The upstreams for a name (its lower-case labels): its longest domain's, else the default ones."""
        for length in self._domain_lengths:
            if len(labels) >= length:
                group = self._domains.get(tuple(labels[len(labels) - length:]))
                if group is not None:
                    return group
        return self._default

    def submit(self, query: bytes, done: Done, tcp: bool = False, question_end: int | None = None,
               labels: Sequence[str] = ()) -> None:
        """Forwards ``query`` (for the name of ``labels``) without blocking; ``done`` is called once, later or now.

        Over TCP when ``tcp`` (the client came by TCP), else over UDP (and
        TCP after a truncated answer). ``question_end``, when the caller
        knows it, spares reading the question again.
        """
        self.in_flight += 1
        candidates = [upstream for upstream in self.group_for(labels) if not upstream.down]
        exchange = _Exchange(self, query, done, candidates, question_end, tcp)
        if not candidates:
            exchange.finish(None, "every upstream is down (probing them in the background)")
            return
        exchange.try_next()

    def close(self) -> None:
        if self._sweeper is not None:
            self._stop_sweeper()
        for upstream in self.upstreams:
            upstream.close()
