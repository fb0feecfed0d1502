"""Records -> resource records: A/AAAA, PTR, SRV, TXT, SOA, NS and minimal ANY (pure, no I/O).

A container's canonical name is ``<container-name>.<image-name>.<environment>.<domain>``;
PTR and SRV records point at it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Sequence

from dnscock import wire
from dnscock.packing import RR, Name
from dnscock.records import Record

SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400
# The NS records and their addresses are fixed for the life of the process: resolvers may keep
# them an hour (a TTL of -ttl, often 0, would make a stub-priming resolver prime before every query).
NS_TTL = 3600
TXT_STRING_MAX = 255
# RFC 8482 §4.2: HINFO with CPU "RFC8482" and an empty OS.
HINFO_RFC8482 = b"\x07RFC8482\x00"


def reverse_address(labels: tuple[str, ...]) -> str | None:
    """The IP address a full reverse name stands for (RFC 1035 §3.5, RFC 3596 §2.5), else None."""
    if len(labels) == 6 and labels[4:] == ("in-addr", "arpa"):
        octets = labels[3::-1]
        # isdigit() alone would take "¹"; the octets must be ASCII digits.
        if all(octet.isascii() and octet.isdigit() and len(octet) <= 3 and int(octet) <= 255 for octet in octets):
            return ".".join(str(int(octet)) for octet in octets)
        return None
    if len(labels) == 34 and labels[32:] == ("ip6", "arpa"):
        nibbles = labels[31::-1]
        if all(len(nibble) == 1 and nibble in "0123456789abcdef" for nibble in nibbles):
            return str(ipaddress.IPv6Address(int("".join(nibbles), 16)))
    return None


def srv_service(labels: tuple[str, ...]) -> tuple[int, str, tuple[str, ...]] | None:
    """``_<port>._<tcp|udp>.<rest>`` -> (port, protocol, rest), else None (RFC 2782)."""
    if len(labels) < 2 or not labels[0].startswith("_") or labels[1] not in ("_tcp", "_udp"):
        return None
    port = labels[0][1:]
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return int(port), labels[1][1:], labels[2:]


def address_rdata(address: str) -> tuple[int, bytes]:
    """(A or AAAA, the address's octets)."""
    if ":" in address:
        return wire.TYPE_AAAA, socket.inet_pton(socket.AF_INET6, address)
    return wire.TYPE_A, socket.inet_pton(socket.AF_INET, address)


def in_view(record: Record, addresses: tuple[str, ...], view: frozenset[str]) -> tuple[str, ...]:
    """The record's ``addresses`` a client in the subnets ``view`` gets: those on the networks it shares with
    the record, or all of them when it shares none."""
    if not view or not record.places:
        return addresses
    shared = {network for _, subnet, network in record.places if subnet in view}
    if not shared:
        return addresses
    on_shared = {address for address, _, network in record.places if network in shared}
    return tuple(address for address in addresses if address in on_shared)


class DefaultTtl:
    """``-ttl``: the TTL of records without one of their own, and the negative-caching TTL (the SOA minimum).

    The one place it lives: ``PUT /set/ttl`` changes it here, and
    ``on_change`` (the store's ``touch``) drops every answer kept as bytes.
    """

    def __init__(self, seconds: int, on_change: Callable[[], None] = lambda: None) -> None:
        self.value = seconds
        self._on_change = on_change

    def set(self, seconds: int) -> None:
        self.value = seconds
        self._on_change()


class AnswerBuilder:
    """Builds the resource records of local answers for one zone."""

    def __init__(self, zone: str, default_ttl: DefaultTtl) -> None:
        self.zone = zone
        self.default_ttl = default_ttl
        self.hostmaster = Name(wire.name_to_wire(f"hostmaster.{zone}"))

    def target(self, record: Record) -> bytes:
        """The record's canonical name in wire format (what PTR and SRV point at)."""
        return wire.name_to_wire(record.canonical_name(self.zone))

    def ttl(self, records: Sequence[Record]) -> int:
        # One RRset has one TTL (RFC 2181 §5.2): the lowest of the containers in it.
        default = self.default_ttl.value
        return min(default if record.ttl is None else record.ttl for record in records)

    def addresses(self, owner: bytes, records: Sequence[Record], qtype: int,
                  view: frozenset[str] = frozenset()) -> list[RR]:
        """A/AAAA records; ``view``, the subnets the client is in, picks each record's addresses (split horizon)."""
        answers: list[RR] = []
        for rtype, field in ((wire.TYPE_A, "ipv4"), (wire.TYPE_AAAA, "ipv6")):
            if qtype != rtype and qtype != wire.TYPE_ANY:
                continue
            picked = [(record, in_view(record, getattr(record, field), view)) for record in records]
            holders = [record for record, addresses in picked if addresses]
            if holders:
                ttl = self.ttl(holders)
                addresses = dict.fromkeys(address for _, chosen in picked for address in chosen)
                answers += [RR(owner, rtype, ttl, address_rdata(address)[1]) for address in addresses]
        return answers

    def minimal_any(self, owner: bytes, records: Sequence[Record], view: frozenset[str] = frozenset()) -> list[RR]:
        """RFC 8482: one RRset for ANY over UDP (the A records, else AAAA, else a records file's first), else an
        HINFO."""
        for qtype in (wire.TYPE_A, wire.TYPE_AAAA):
            answers = self.addresses(owner, records, qtype, view)
            if answers:
                return answers
        others = self.static(owner, records, wire.TYPE_ANY)
        if others:
            return [rr for rr in others if rr.rtype == others[0].rtype]
        return [RR(owner, wire.TYPE_HINFO, self.ttl(records), HINFO_RFC8482)]

    def ptr(self, owner: bytes, records: Sequence[Record]) -> list[RR]:
        ttl = self.ttl(records)
        names = dict.fromkeys(self.target(record) for record in records)
        return [RR(owner, wire.TYPE_PTR, ttl, (Name(name),)) for name in names]

    def srv(self, owner: bytes, records: Sequence[Record], port: int, protocol: str,
            view: frozenset[str] = frozenset()) -> tuple[list[RR], list[RR]]:
        """SRV records for the containers exposing ``port/protocol``, and their addresses as additionals."""
        exposing = [record for record in records if (port, protocol) in record.ports]
        answers: list[RR] = []
        additional: list[RR] = []
        if not exposing:
            return answers, additional
        ttl = self.ttl(exposing)
        for record in exposing:
            target = self.target(record)
            answered_port = next((host_port for exposed, proto, host_port in record.published
                                  if exposed == port and proto == protocol), port)
            # The target is never compressed (RFC 2782).
            answers.append(RR(owner, wire.TYPE_SRV, ttl, struct.pack("!HHH", 0, 0, answered_port) + target))
            additional += self.addresses(target, [record], wire.TYPE_ANY, view)
        return answers, additional

    def txt(self, owner: bytes, records: Sequence[Record]) -> list[RR]:
        """Each container's facts (a records file's names have only their own TXT records: ``static``)."""
        answers = []
        for record in records:
            if record.kind in ("static", "host"):
                continue
            strings = [] if record.kind == "proxy" else [f"id={record.short_id}", f"image={record.image}"]
            strings += [f"{key}={value}" for key, value in record.metadata]
            encoded = (text.encode("utf-8")[:TXT_STRING_MAX] for text in strings)
            answers.append(RR(owner, wire.TYPE_TXT, self.ttl([record]), b"".join(bytes([len(s)]) + s for s in encoded)))
        return answers

    def static(self, owner: bytes, records: Sequence[Record], qtype: int) -> list[RR]:
        """A records file's records of type ``qtype`` (every type for ANY)."""
        holders = [record for record in records if record.static]
        if not holders:
            return []
        ttl = self.ttl(holders)
        return [RR(owner, rr.rtype, ttl, rr.rdata) for record in holders for rr in record.static
                if rr.rtype == qtype or qtype == wire.TYPE_ANY]

    def soa(self, owner: bytes, server: bytes, serial: int, ttl: int | None = None) -> RR:
        """The SOA of the zone at ``owner``; ``ttl`` (also its minimum, the negative-caching TTL) defaults to -ttl."""
        ttl = self.default_ttl.value if ttl is None else ttl
        times = struct.pack("!IIIII", serial & 0xFFFFFFFF, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, ttl)
        return RR(owner, wire.TYPE_SOA, ttl, (Name(server), self.hostmaster, times))

    @staticmethod
    def ns(owner: bytes, server: bytes) -> RR:
        return RR(owner, wire.TYPE_NS, NS_TTL, (Name(server),))

    @staticmethod
    def server_addresses(owner: bytes, addresses: Sequence[str], qtype: int) -> list[RR]:
        """The A/AAAA records of dnscock's own name (the NS target)."""
        found = [address_rdata(address) for address in addresses]
        return [RR(owner, rtype, NS_TTL, rdata) for rtype, rdata in found
                if qtype == rtype or qtype == wire.TYPE_ANY]
