"""Records -> resource records: A/AAAA, PTR, SRV, TXT, SOA and minimal ANY (pure functions).

A container's canonical name is ``<container-name>.<image-name>.<environment>.<domain>``;
PTR and SRV records point at it.
"""

from __future__ import annotations

import ipaddress

from dnslib import AAAA, CLASS, PTR, QTYPE, RR, SOA, SRV, TXT, A, DNSLabel
from dnslib.dns import RD

from dnscock.records import Record

SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400
TXT_STRING_MAX = 255
# RFC 8482 §4.2: HINFO with CPU "RFC8482" and an empty OS (dnslib has no HINFO type).
HINFO_RFC8482 = RD(b"\x07RFC8482\x00")


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


class AnswerBuilder:
    """Builds the resource records of local answers for one zone."""

    def __init__(self, zone: str, default_ttl: int) -> None:
        self.zone = zone
        self.default_ttl = default_ttl

    def canonical(self, record: Record) -> str:
        return ".".join(record.labels + ((self.zone,) if self.zone else ())) + "."

    def ttl(self, records: list[Record]) -> int:
        # One RRset has one TTL (RFC 2181 §5.2): the lowest of the containers in it.
        return min(self.default_ttl if record.ttl is None else record.ttl for record in records)

    def addresses(self, owner: DNSLabel | str, records: list[Record], qtype: int) -> list[RR]:
        answers: list[RR] = []
        for rtype, rdata, field in ((QTYPE.A, A, "ipv4"), (QTYPE.AAAA, AAAA, "ipv6")):
            if qtype not in (rtype, QTYPE.ANY):
                continue
            holders = [record for record in records if getattr(record, field)]
            if holders:
                ttl = self.ttl(holders)
                addresses = dict.fromkeys(address for record in holders for address in getattr(record, field))
                answers += [RR(owner, rtype, CLASS.IN, ttl, rdata(address)) for address in addresses]
        return answers

    def minimal_any(self, owner: DNSLabel, records: list[Record]) -> list[RR]:
        """RFC 8482: one RRset for ANY over UDP (the A records, else AAAA), else an HINFO."""
        for qtype in (QTYPE.A, QTYPE.AAAA):
            answers = self.addresses(owner, records, qtype)
            if answers:
                return answers
        return [RR(owner, QTYPE.HINFO, CLASS.IN, self.ttl(records), HINFO_RFC8482)]

    def ptr(self, owner: DNSLabel, records: list[Record]) -> list[RR]:
        ttl = self.ttl(records)
        names = dict.fromkeys(self.canonical(record) for record in records)
        return [RR(owner, QTYPE.PTR, CLASS.IN, ttl, PTR(name)) for name in names]

    def srv(self, owner: DNSLabel, records: list[Record], port: int, protocol: str) -> tuple[list[RR], list[RR]]:
        """SRV records for the containers exposing ``port/protocol``, and their addresses as additionals."""
        exposing = [record for record in records if (port, protocol) in record.ports]
        answers: list[RR] = []
        additional: list[RR] = []
        if not exposing:
            return answers, additional
        ttl = self.ttl(exposing)
        for record in exposing:
            target = self.canonical(record)
            answers.append(RR(owner, QTYPE.SRV, CLASS.IN, ttl, SRV(0, 0, port, target)))
            additional += self.addresses(target, [record], QTYPE.ANY)
        return answers, additional

    def txt(self, owner: DNSLabel, records: list[Record]) -> list[RR]:
        answers = []
        for record in records:
            strings = [f"id={record.short_id}", f"image={record.image}"]
            strings += [f"{key}={value}" for key, value in record.metadata]
            data = [text.encode("utf-8")[:TXT_STRING_MAX] for text in strings]
            answers.append(RR(owner, QTYPE.TXT, CLASS.IN, self.ttl([record]), TXT(data)))
        return answers

    def soa(self, owner: str, serial: int, ttl: int | None = None) -> RR:
        """The zone's SOA; ``ttl`` (also its minimum, the negative-caching TTL) defaults to -ttl."""
        ttl = self.default_ttl if ttl is None else ttl
        times = (serial & 0xFFFFFFFF, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, ttl)
        rdata = SOA(f"dnscock.{self.zone}.", f"hostmaster.{self.zone}.", times)
        return RR(owner + ".", QTYPE.SOA, CLASS.IN, ttl, rdata)
