"""Transport only: sockets that read DNS messages, hand them to the resolver, send replies.

The datagram server calls ``handle`` inside its read loop (``spawn=None``):
the resolver answers local names at once and runs whatever must wait in
greenlets of its own bounded pool, so a handler never blocks the loop.
"""

from __future__ import annotations

import logging
import socket
from functools import partial

from dnslib import QTYPE, DNSRecord
from gevent.server import DatagramServer

from dnscock import wire
from dnscock.config import Address
from dnscock.resolver import Query, Resolver

log = logging.getLogger("dnscock.server")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(address: Address) -> socket.socket:
    """A bound UDP socket; host "" is every address, IPv6 and IPv4 when the host has IPv6."""
    if address.host:
        candidates = [(_family(address.host), address.host)]
    else:
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    error: OSError | None = None
    for family, host in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
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


def parse_query(data: bytes) -> DNSRecord | None:
    """The parsed message, or None when it breaks RFC 1035's rules."""
    try:
        message = DNSRecord.parse(data)
    except Exception:  # dnslib raises several kinds on malformed input
        return None
    # dnslib reads labels longer than 63 octets (and so names over 255) without complaint.
    for question in message.questions:
        labels = question.qname.label
        if any(len(label) > 63 for label in labels) or sum(len(label) + 1 for label in labels) + 1 > 255:
            return None
    return message


class UdpServer(DatagramServer):
    """DNS over UDP (RFC 1035 §4.2.1)."""

    def __init__(self, sock: socket.socket, resolver: Resolver) -> None:
        super().__init__(sock, spawn=None)
        self.resolver = resolver

    def handle(self, data: bytes, address: tuple) -> None:
        try:
            message = parse_query(data)
            if message is None:
                log.debug("malformed message of %d bytes from %s", len(data), address[0])
                reply = wire.error_reply(data, wire.RCODE_FORMERR)
                if reply is not None:
                    self.send(reply, address)
                return
            if message.header.qr:
                return  # a response: answering it could start a loop
            log.debug("query %s %s from %s", message.q.qname, QTYPE.get(message.q.qtype), address[0])
            self.resolver.resolve(Query(data, message), partial(self.send, address=address))
        except Exception:  # a bug must cost one SERVFAIL, never the server
            log.exception("failed to handle a message from %s", address[0])
            reply = wire.error_reply(data, wire.RCODE_SERVFAIL)
            if reply is not None:
                self.send(reply, address)

    def send(self, reply: bytes, address: tuple) -> None:
        try:
            self.socket.sendto(reply, address)
        except OSError as error:
            log.debug("cannot send a reply to %s: %s", address[0], error)
