"""Tiny upstream nameservers on loopback, for forwarding tests, healthy or faulty.

Each serves UDP and TCP on one port of 127.0.0.1 chosen by the kernel, in threads
(or on the ``host`` and ``port`` given: ``port=53`` of another loopback address, say).
What it does with a query depends on its ``mode``:

* ``answer``: answers A queries with ``answer_ip`` (TTL ``ttl``, ``records`` addresses),
  others NOERROR/empty; NXDOMAIN with an SOA for names starting with ``nx``;
* ``silent``: reads every query and never answers;
* ``formerr``: answers every query with FORMERR;
* ``truncate``: like ``answer``, but over UDP only a TC reply with no records;
* ``slow``: like ``answer``, but each reply leaves ``delay`` seconds after the query came
  (queries keep being read meanwhile);
* ``garbage``: answers each query with three datagrams that are no reply to it: random
  bytes shorter than a DNS header, random bytes longer than one, and a header with the
  query's id and the QR bit followed by random bytes (over TCP: the last one, framed);
* ``wrong-id``: the ``answer`` reply under another message id;
* ``wrong-question``: the ``answer`` reply, with the query's id, to another name;
* ``malformed``: the ``answer`` reply (header and question intact) cut off in the
  middle of its first record, without TC: a damaged datagram.

``mode`` may be changed at any time (``upstream.mode = "answer"``), from any thread,
to switch a faulty upstream to healthy and back; queries already waiting (``slow``)
are answered as planned.

``tcp`` overrides the mode for DNS over TCP: ``None`` (the default) serves TCP by the
mode (``truncate`` then answers in full), ``"silent"`` reads queries and never answers,
``"reset"`` accepts connections and resets them at once (TCP not working). It may be
changed at any time too.

Every query is recorded (``queries`` and ``tcp_queries``, as dnspython messages) with
the time it came (``arrivals``: monotonic time, name, whether by TCP); ``wait_for``
blocks until the arrivals satisfy a condition, without polling.

The serving itself (the sockets, the threads, DNS over TCP's framing, replies held back)
is ``ThreadedNameserver``'s, which any fake nameserver may build on: a subclass says
what goes back for the bytes of a query (``answer``), as the fuzz tests' upstream does,
by hand, for queries dnspython would not even parse.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

ANSWER_IP = "192.0.2.53"
MODES = ("answer", "silent", "formerr", "truncate", "slow", "garbage", "wrong-id", "wrong-question", "malformed")
TCP_MODES = (None, "silent", "reset")
HEADER_LENGTH = 12


class Arrival(NamedTuple):
    """One query as the fake upstream received it."""

    at: float  # time.monotonic()
    name: str  # the question's name as text, "." for a probe
    rdtype: str
    tcp: bool


def bind_pair(attempts: int = 20, socket_module: Any = socket, host: str = "127.0.0.1",
              port: int = 0) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on one free port of ``host`` (the TCP port may be taken: try another).

    ``socket_module`` may be ``gevent.socket``, for servers that run in greenlets. With a
    ``port`` of its own the caller gets that port or OSError, at the first try.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts if port == 0 else 1):
        udp = socket_module.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((host, port))
        except OSError:
            udp.close()
            raise
        tcp = socket_module.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on {host} after {attempts} tries")


class ThreadedNameserver:
    """UDP and TCP on one port of ``host`` (chosen by the kernel unless ``port`` is given), served in threads.

    ``answer(data, tcp)`` says what goes back for the bytes of one query: datagrams over
    UDP, messages (framed here) over TCP, none for silence; an exception drops the query
    (over TCP, with its connection). ``reply_delay()`` holds the replies back: over UDP
    on a timer, while queries keep being read; over TCP in the connection's own thread.
    """

    connection_timeout = 5.0  # seconds a TCP connection may stay idle

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._timers: set[threading.Timer] = set()
        self._closed = False
        self._udp, self._tcp = bind_pair(host=host, port=port)
        self.host = host
        self.port = self._udp.getsockname()[1]
        self._tcp.listen(64)
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        name = type(self).__name__
        threading.Thread(target=self._serve_udp, name=f"{name}-udp", daemon=True).start()
        threading.Thread(target=self._serve_tcp, name=f"{name}-tcp", daemon=True).start()

    def answer(self, data: bytes, tcp: bool) -> list[bytes]:
        """What goes back for the query ``data``: datagrams (UDP) or messages to frame (TCP)."""
        raise NotImplementedError

    def reply_delay(self) -> float:
        """Seconds the replies to a query wait before they leave."""
        return 0.0

    def resets_tcp(self) -> bool:
        """Is each TCP connection to be reset as soon as it is accepted?"""
        return False

    def _serve_udp(self) -> None:
        while True:
            try:
                data, client = self._udp.recvfrom(65535)
            except OSError:
                return
            try:
                datagrams = self.answer(data, tcp=False)
            except Exception:  # a fake nameserver must never die of an odd question
                continue
            if not datagrams:
                continue
            delay = self.reply_delay()
            if delay > 0:
                self._later(delay, lambda datagrams=datagrams, client=client: self._send_udp(datagrams, client))
            elif not self._send_udp(datagrams, client):
                return

    def _send_udp(self, datagrams: list[bytes], client: tuple[str, int]) -> bool:
        for datagram in datagrams:
            try:
                self._udp.sendto(datagram, client)
            except OSError:
                return False
        return True

    def _later(self, delay: float, action: Callable[[], object]) -> None:
        """Runs ``action`` in ``delay`` seconds, unless the server is closed first."""
        def run() -> None:
            self._timers.discard(timer)
            if not self._closed:
                action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            if self.resets_tcp():
                # SO_LINGER with a zero timeout: close() sends RST, as a host with no DNS over TCP would.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.connection_timeout)
            try:
                while True:
                    header = _recv_exactly(conn, 2)
                    data = _recv_exactly(conn, int.from_bytes(header, "big")) if header else None
                    if data is None:
                        return
                    messages = self.answer(data, tcp=True)
                    if not messages:
                        continue
                    delay = self.reply_delay()
                    if delay > 0:
                        time.sleep(delay)  # this connection's own thread: nothing else waits
                    for message in messages:
                        conn.sendall(len(message).to_bytes(2, "big") + message)
            except Exception:
                return

    def close(self) -> None:
        self._closed = True
        for timer in list(self._timers):
            timer.cancel()
        for sock in (self._udp, self._tcp):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    """``size`` bytes from ``conn``; None when it closes first."""
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class FakeUpstream(ThreadedNameserver):
    def __init__(self, mode: str = "answer", answer_ip: str = ANSWER_IP, ttl: int = 60, records: int = 1,
                 delay: float = 1.0, tcp: str | None = None, seed: int = 0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.mode = mode
        self.tcp = tcp
        self.answer_ip, self.ttl, self.records, self.delay = answer_ip, ttl, records, delay
        self.queries: list[dns.message.Message] = []
        self.tcp_queries: list[dns.message.Message] = []
        self.arrivals: list[Arrival] = []
        self._arrived = threading.Condition()
        self._random = random.Random(seed)
        super().__init__(host, port)

    # -- switching --

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self._mode = mode

    @property
    def tcp(self) -> str | None:
        return self._tcp_mode

    @tcp.setter
    def tcp(self, tcp: str | None) -> None:
        if tcp not in TCP_MODES:
            raise ValueError(f"unknown tcp mode {tcp!r}; one of {TCP_MODES}")
        self._tcp_mode = tcp

    # -- what was asked --

    def wait_for(self, condition: Callable[[list[Arrival]], bool], timeout: float = 10.0) -> list[Arrival]:
        """Blocks until ``condition(arrivals)`` holds; returns the arrivals then. Raises AssertionError on timeout."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: condition(self.arrivals), timeout):
                raise AssertionError(f"{self.address}: the queries received never met the condition: "
                                     f"{self.arrivals[-10:]}")
            return list(self.arrivals)

    def probes(self) -> list[Arrival]:
        """The ``. NS`` queries received (dnscock's health probes)."""
        return [arrival for arrival in self.arrivals if arrival.name == "." and arrival.rdtype == "NS"]

    def _record(self, query: dns.message.Message, tcp: bool) -> None:
        question = query.question[0] if query.question else None
        # An RRset is falsy when it holds no records, as a question's does: compare with None.
        arrival = Arrival(time.monotonic(), question.name.to_text() if question is not None else "",
                          dns.rdatatype.to_text(question.rdtype) if question is not None else "", tcp)
        with self._arrived:
            (self.tcp_queries if tcp else self.queries).append(query)
            self.arrivals.append(arrival)
            self._arrived.notify_all()

    # -- answers --

    def reply_to(self, query: dns.message.Message, tcp: bool) -> dns.message.Message | None:
        """The healthy reply, or the one of modes that still answer with a well-formed message."""
        mode = self.mode
        if mode == "silent":
            return None
        reply = dns.message.make_response(query)
        if mode == "formerr":
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        if mode == "truncate" and not tcp:
            reply.flags |= dns.flags.TC
            return reply
        if mode == "wrong-question" and query.question:
            other = query.question[0]
            asked = dns.message.make_query(dns.name.Name((b"other", *other.name.labels)), other.rdtype)
            asked.id = query.id
            return self.reply_to_question(asked, dns.message.make_response(asked))
        reply = self.reply_to_question(query, reply)
        if mode == "wrong-id":
            reply.id = query.id ^ 0x5A5A
        return reply

    def reply_to_question(self, query: dns.message.Message, reply: dns.message.Message) -> dns.message.Message:
        if not query.question:
            return reply
        question = query.question[0]
        if question.name.labels and question.name.labels[0].lower().startswith(b"nx"):
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(dns.rrset.from_text(
                question.name.parent(), 300, "IN", "SOA",
                f"{dns.name.Name((b'ns',) + question.name.parent().labels)} host. 1 2 3 4 {self.ttl}"))
        elif question.rdtype == dns.rdatatype.A:
            base = self.answer_ip.rsplit(".", 1)[0]
            last = int(self.answer_ip.rsplit(".", 1)[1])
            addresses = [f"{base}.{(last + i) % 256}" for i in range(self.records)]
            reply.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", "A", *addresses))
        return reply

    def datagrams_for(self, query: dns.message.Message, data: bytes, tcp: bool) -> list[bytes]:
        """The bytes sent back for one query (several datagrams for ``garbage``; none for ``silent``)."""
        mode = self.mode
        if mode == "garbage":
            noise = self._random.randbytes
            lying_header = data[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
            lies = lying_header + noise(self._random.randint(1, 200))
            if tcp:
                return [lies]
            return [noise(self._random.randint(1, HEADER_LENGTH - 1)), noise(self._random.randint(13, 300)), lies]
        reply = self.reply_to(query, tcp)
        if reply is None:
            return []
        wire = reply.to_wire()
        if mode == "malformed" and not tcp:
            question_end = HEADER_LENGTH + len(query.question[0].name.to_wire()) + 4 if query.question else 12
            # Into the first record (past its owner name pointer and type), or just past the question.
            return [wire[:question_end + 4] if len(wire) > question_end + 4 else wire[:question_end] + b"\xc0"]
        if mode == "malformed":
            return [wire[:-3] if len(wire) > HEADER_LENGTH + 3 else wire]
        return [wire]

    # -- serving --

    def answer(self, data: bytes, tcp: bool) -> list[bytes]:
        query = dns.message.from_wire(data)  # what does not parse is dropped, unrecorded
        self._record(query, tcp)
        if tcp and self.tcp == "silent":
            return []
        return self.datagrams_for(query, data, tcp)

    def reply_delay(self) -> float:
        return self.delay if self.mode == "slow" else 0.0

    def resets_tcp(self) -> bool:
        return self.tcp == "reset"
