"""One query on its way through the pipeline: its bytes, where it came from, its question, what was decided.

A ``Query`` is made once a datagram or TCP message is not answered by the
exact-bytes caches, and every later stage reads and writes it: the reader
fills in the question (``read``, by hand, for plain queries; ``queries``
for the rest), the pipeline its size limit, view and cache key, the
forwarder its exchange with the upstreams (which upstream, which id, until
when). Nothing else is handed from stage to stage.

Its ``transport`` sends the reply: the UDP server (to ``address``), a TCP
connection, or a test's callback (``Callback``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dnscock import wire

_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT's high octet


class Transport(Protocol):
    def send(self, query: Query, reply: bytes) -> None:
        """Sends ``reply`` to whoever asked ``query``; never blocks, never raises."""


class Query:
    __slots__ = (
        # where it came from
        "data", "transport", "address", "client", "tcp", "start",
        # its question, read once
        "flags", "labels", "end", "qtype", "qclass", "opt",
        # decided on the way
        "limit", "view", "key", "generation",
        # while forwarded (``upstream.Forwarder``)
        "done", "candidates", "position", "deadline", "attempt_deadline", "upstream", "message_id", "problems",
    )

    def __init__(self, data: bytes, transport: Transport, address: tuple | None, start: float,
                 tcp: bool = False) -> None:
        self.data = data
        self.transport = transport
        self.address = address
        self.client = address[0] if address else ""
        self.start = start
        self.tcp = tcp

    def read(self) -> bool:
        """Reads a plain query by hand (one question, at most an OPT record); False for anything else.

        ``queries.read_query`` takes what this leaves: parsing a whole message
        with a library costs more than answering it, so plain queries never go there.
        """
        data = self.data
        size = len(data)
        if size < 17 or data[2] & (wire.QR_OCTET | wire.OPCODE_OCTET) or data[4:11] != _PLAIN_COUNTS or data[11] > 1:
            return False  # a response, another opcode, other counts
        read = wire.read_name(data, wire.HEADER_LENGTH)
        if read is None:
            return False
        labels, name_end = read
        end = name_end + 4
        if end > size:
            return False
        opt = None
        if data[11]:
            found = wire.read_opt(data, end)
            if found is None or found[1] != size:
                return False
            opt = found[0]
        elif end != size:
            return False
        self.question(labels, name_end, opt)
        return True

    def question(self, labels: tuple[str, ...], name_end: int, opt: wire.Opt | None) -> None:
        """Takes the question read: its name's labels, the offset past the name, its OPT record's fields."""
        data = self.data
        self.flags = data[2] << 8 | data[3]
        self.labels = labels
        self.end = name_end + 4
        self.qtype = data[name_end] << 8 | data[name_end + 1]
        self.qclass = data[name_end + 2] << 8 | data[name_end + 3]
        self.opt = opt

    def reply_limit(self, udp_payload: int) -> int:
        """The most bytes a reply may have: 512 over UDP without EDNS0, else what both sides allow (RFC 6891 §6.2.5)."""
        if self.tcp:
            return wire.TCP_LIMIT
        if self.opt is None:
            return wire.CLASSIC_UDP_LIMIT
        return max(wire.CLASSIC_UDP_LIMIT, min(self.opt.payload, udp_payload))

    @property
    def name(self) -> str:
        """The question's name for people (logs): ``web.docker.``."""
        return wire.text_of(self.labels)

    @property
    def dnssec_ok(self) -> bool:
        return self.opt is not None and self.opt.dnssec_ok


class Callback:
    """A transport that hands each reply to a function, whoever asked (tests, tools without a socket)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[bytes], object]) -> None:
        self.function = function

    def send(self, query: Query, reply: bytes) -> None:
        self.function(reply)

    def send_to(self, reply: bytes, address: tuple) -> None:
        self.function(reply)
