"""Local authority: which names dnscock answers itself, and what it says about them.

dnscock is authoritative for:

* **the domain zone**, ``<environment>.<domain>``: every name below it. Its
  apex has an SOA and an NS record; the NS names ``ns.dnscock.<zone>``,
  whose A/AAAA records are the NS addresses (``-ns-address``, else the
  listen address, else the host's), so that a resolver with a stub zone can
  prime it (unbound's ``stub-prime: yes``). Names that match containers
  (``<anything>.<container>.<image>``, parts left out on the left, ``*``)
  or carry an alias answer their records.
* **an alias outside the domain**: the shortest such alias that is the name
  or a suffix of it is the apex of a zone of its own (SOA and NS there).
  Longer aliases below it answer, and so do the names between them, as
  empty non-terminals; any other name below an alias is not dnscock's and
  is forwarded, as before aliases had zones.
* **the reverse zones of the Docker networks' subnets** (``reverse_zones``:
  octet or nibble aligned, a prefix off the boundary split, never widened):
  a container's address has its PTR record, every other name there is
  NXDOMAIN (or NODATA above a container's address), the apex has an SOA and
  an NS record. They are never forwarded.
* **the reverse name of any other container address** (PTR only; an
  address outside its network's subnet, given by the HTTP API).

Answers follow RFC 1035 / 2308 / 4074 / 8020: AA set; a name that does not
exist is NXDOMAIN, a name that exists with no record of the asked type
(including an empty non-terminal, and a container in its grace window) is
NODATA; both carry the zone's SOA, whose TTL and minimum are ``-ttl``.
Names in the SOA and NS records are canonical, lower case, whatever the
case of the question. The SOA serial only grows, across restarts too: it
is the time of the first answer after a change of the table, in seconds,
or one more than the last serial when that is larger.

QCLASS ANY (255) under the domain is answered like IN, without AA: no
server can vouch for every class (RFC 6895 §3.2). Other classes are
REFUSED. Zone transfers (AXFR, IXFR) are not implemented: NOTIMP.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from dnscock import wire
from dnscock.answers import AnswerBuilder, DefaultTtl, reverse_address, srv_service
from dnscock.dnsname import split_name
from dnscock.packing import QNAME, RR, Answer
from dnscock.records import AliasPlace, Record, RecordStore, StaticRR
from dnscock.reverse_zones import ReverseZones

SERVER_LABELS = ("ns", "dnscock")  # dnscock's own name, relative to the zone: the NS target
MAX_CHAIN = 8  # CNAMEs followed within one answer, at most
_TRANSFERS = (wire.TYPE_AXFR, wire.TYPE_IXFR)


def store_name(labels: tuple[str, ...]) -> str:
    """The name as the store spells aliases; "" when a label holds a dot (no name of ours has one)."""
    name = ".".join(labels)
    return name if name.count(".") == len(labels) - 1 else ""


class Ask(NamedTuple):
    """A name the authority is asked about: the query's own, or a CNAME's target on the way."""

    labels: tuple[str, ...]  # lower case
    qtype: int
    qclass: int
    tcp: bool
    view: frozenset[str]  # the subnets of the table the client is in (split horizon)
    owner: bytes = QNAME  # the owner of the records answered: the question's name, or the target's in wire form
    hops: int = 0  # CNAMEs followed so far
    found: list[Found] | None = None  # when a list (``explain``), what each name's zone found is added to it


class Owner(NamedTuple):
    """Which of dnscock's zones holds a name, as ``Authority.owner`` found it: the answer is that zone's."""

    answer: Callable[[Ask, object], Answer]  # the authority's method for that kind of zone
    detail: object = None  # what the dispatch learned on the way (an alias place, an apex length, an address)


class Authority:
    """Decides which names are dnscock's, and their answers, from the record store."""

    def __init__(self, store: RecordStore, zone: str, default_ttl: DefaultTtl, ns_addresses: Sequence[str]) -> None:
        self.store = store
        self.zone = zone
        self.zone_labels = split_name(zone)
        self.zone_wire = wire.name_to_wire(zone)
        self.server_name = ".".join(SERVER_LABELS + self.zone_labels)
        self.server_wire = wire.name_to_wire(self.server_name)
        self.ns_addresses = tuple(ns_addresses)
        self.default_ttl = default_ttl
        self.build = AnswerBuilder(zone, default_ttl)
        self._serial = 0
        self._serial_generation = -1
        self._reverse_zones = ReverseZones()
        self._reverse_generation = -1
        self._in_the_zone = Owner(self._in_zone)
        # A name is ours only under the zone, an alias or arpa: most forwarded names end elsewhere.
        self._zone_top = self.zone_labels[-1] if self.zone_labels else None

    def in_zone(self, labels: tuple[str, ...]) -> bool:
        zone = self.zone_labels
        return len(labels) >= len(zone) and labels[len(labels) - len(zone):] == zone

    def owner(self, labels: tuple[str, ...], qtype: int) -> Owner | None:
        """The one dispatch: which zone of dnscock's holds this name; None: not dnscock's, it is forwarded.

        Cheap for names that are not ours: every forwarded query asks it.
        """
        top = labels[-1] if labels else ""
        if top != self._zone_top and top != "arpa" and self._zone_top is not None and not self.store.under_alias(top):
            return None
        if self.in_zone(labels):
            return self._in_the_zone
        place = self.store.alias_place(labels)
        if place.apex and (place.exists or place.wildcard):
            return Owner(self._in_alias_zone, place)
        if labels and labels[-1] == "arpa":
            apex_length = self.reverse_zones().apex_length(labels)
            if apex_length:
                return Owner(self._in_reverse_zone, apex_length)
            if qtype == wire.TYPE_PTR:
                address = reverse_address(labels)
                if address is not None and self.store.has_address(address):
                    return Owner(self._container_address, address)
        return None

    def reverse_zones(self) -> ReverseZones:
        """The reverse zones of the table's subnets, made again when the set of subnets changes."""
        generation = self.store.generation
        if generation != self._reverse_generation:
            self._reverse_generation = generation
            subnets = frozenset(self.store.subnets())
            if subnets != self._reverse_zones.subnets:
                self._reverse_zones = ReverseZones(subnets)
        return self._reverse_zones

    def answer(self, ask: Ask, owner: Owner) -> Answer:
        """The answer to ``ask``, from the zone ``owner`` (what ``owner(ask.labels, ask.qtype)`` gave)."""
        refusal = _refusal(ask.qtype, ask.qclass)
        if refusal is not None:
            return refusal
        return owner.answer(ask, owner.detail)

    def serial(self) -> int:
        generation = self.store.generation
        if generation != self._serial_generation:
            self._serial = max(self._serial + 1, int(time.time()))
            self._serial_generation = generation
        return self._serial

    # -- the zones --

    def _in_zone(self, ask: Ask, _: object) -> Answer:
        labels, qtype = ask.labels, ask.qtype
        relative = labels[:len(labels) - len(self.zone_labels)]
        if relative == SERVER_LABELS:
            return self._server(ask)
        service = srv_service(relative) if qtype == wire.TYPE_SRV else None
        records = self.store.match(service[2] if service else relative)
        aliased = self.store.by_alias(store_name(labels))
        if aliased:
            seen = {record.id for record in records}
            records += [record for record in aliased if record.id not in seen]
        exists = bool(records)
        if not records:
            place = self.store.alias_place(labels)
            # An empty non-terminal: a name with aliases below it, or a name above dnscock's own.
            exists = place.exists or (
                0 < len(relative) < len(SERVER_LABELS)
                and SERVER_LABELS[len(SERVER_LABELS) - len(relative):] == relative)
            if not exists and place.wildcard:  # a name no container or alias has: a wildcard alias covers it
                records = self.store.records_of(place.wildcard)
        return self._answer(ask, Found(_preferred(records), self.zone_wire, not relative, exists, service))

    def _in_alias_zone(self, ask: Ask, place: AliasPlace) -> Answer:
        labels = ask.labels
        apex_labels = labels[len(labels) - place.apex:]
        records = self.store.by_alias(store_name(labels)) if place.exists else self.store.records_of(place.wildcard)
        return self._answer(ask, Found(_preferred(records), wire.name_to_wire(".".join(apex_labels)), place.apex == len(labels),
                                       place.exists))

    def _answer(self, ask: Ask, found: Found) -> Answer:
        """The answer for a name that ``found`` tells about."""
        if ask.found is not None:
            ask.found.append(found)
        build, qtype, tcp, owner, view = self.build, ask.qtype, ask.tcp, ask.owner, ask.view
        records = found.records
        authoritative = ask.qclass == wire.CLASS_IN
        live = [record for record in records if not record.stopped]
        negative_ttl = 0 if records and not live else None  # stopped within its grace window: empty, for now
        answer: list[RR] = []
        additional: list[RR] = []
        if live:
            cname = next((rr for record in live for rr in record.static if rr.rtype == wire.TYPE_CNAME), None)
            if cname is not None and qtype != wire.TYPE_CNAME:
                return self._through(ask, cname, [record for record in live if cname in record.static])
            if qtype == wire.TYPE_A or qtype == wire.TYPE_AAAA or (qtype == wire.TYPE_ANY and tcp):
                answer = build.addresses(owner, live, qtype, view)
            elif qtype == wire.TYPE_ANY:
                answer = build.minimal_any(owner, live, view)
            elif qtype == wire.TYPE_TXT:
                answer = build.txt(owner, live)
            elif qtype == wire.TYPE_SRV and found.service is not None:
                answer, additional = build.srv(owner, live, found.service[0], found.service[1], view)
            if qtype == wire.TYPE_ANY and tcp or qtype not in (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_ANY):
                answer += build.static(owner, live, qtype)
        zone = found.zone
        if found.apex:
            if qtype == wire.TYPE_SOA or (qtype == wire.TYPE_ANY and not answer):
                answer = [build.soa(zone, self.server_wire, self.serial())]
            elif qtype == wire.TYPE_NS:
                answer = [build.ns(zone, self.server_wire)]
                if zone == self.zone_wire:  # glue, within the zone it serves
                    additional = build.server_addresses(self.server_wire, self.ns_addresses, wire.TYPE_ANY)
        if answer:
            return Answer(wire.RCODE_NOERROR, authoritative, answer, (), additional)
        rcode = wire.RCODE_NOERROR if found.exists or records or found.apex else wire.RCODE_NXDOMAIN
        return Answer(rcode, authoritative, (), [build.soa(zone, self.server_wire, self.serial(), negative_ttl)])

    def _through(self, ask: Ask, cname: StaticRR, records: list[Record]) -> Answer:
        """A CNAME, and the chain behind it as far as dnscock knows it (RFC 1034 §4.3.2); a target that is
        not ours is left for the client's resolver to follow."""
        authoritative = ask.qclass == wire.CLASS_IN
        first = RR(ask.owner, wire.TYPE_CNAME, self.build.ttl(records), cname.rdata)
        target = split_name(cname.target)
        owner = self.owner(target, ask.qtype) if ask.hops < MAX_CHAIN else None
        if owner is None:
            return Answer(wire.RCODE_NOERROR, authoritative, [first])
        behind = self.answer(Ask(target, ask.qtype, wire.CLASS_IN, ask.tcp, ask.view,
                                 wire.name_to_wire(cname.target), ask.hops + 1, ask.found), owner)
        # The rcode is the last name's (RFC 6604): NXDOMAIN when the chain ends at no name.
        return Answer(behind.rcode, authoritative and behind.authoritative, [first, *behind.answer],
                      behind.authority, behind.additional)

    def _server(self, ask: Ask) -> Answer:
        """dnscock's own name: the NS addresses."""
        authoritative = ask.qclass == wire.CLASS_IN
        answer = self.build.server_addresses(ask.owner, self.ns_addresses, ask.qtype)
        if ask.qtype == wire.TYPE_ANY and not ask.tcp:
            answer = [rr for rr in answer if rr.rtype == answer[0].rtype]  # one RRset over UDP (RFC 8482)
        if answer:
            return Answer(wire.RCODE_NOERROR, authoritative, answer)
        return Answer(wire.RCODE_NOERROR, authoritative, (), [self.build.soa(self.zone_wire, self.server_wire,
                                                                            self.serial())])

    def _in_reverse_zone(self, ask: Ask, apex_length: int) -> Answer:
        labels, qtype = ask.labels, ask.qtype
        authoritative = ask.qclass == wire.CLASS_IN
        build = self.build
        zone = wire.name_to_wire(".".join(labels[len(labels) - apex_length:]))
        address = reverse_address(labels)
        records = self.store.by_address(address) if address else []
        live = [record for record in records if not record.stopped]
        if live and qtype in (wire.TYPE_PTR, wire.TYPE_ANY):
            return Answer(wire.RCODE_NOERROR, authoritative, build.ptr(ask.owner, live))
        apex = apex_length == len(labels)
        if apex and qtype in (wire.TYPE_SOA, wire.TYPE_ANY):
            return Answer(wire.RCODE_NOERROR, authoritative, [build.soa(zone, self.server_wire, self.serial())])
        if apex and qtype == wire.TYPE_NS:
            return Answer(wire.RCODE_NOERROR, authoritative, [build.ns(zone, self.server_wire)])
        exists = apex or bool(records) or (address is None and self._above_an_address(labels))
        negative_ttl = 0 if records and not live else None  # stopped within its grace window: empty, for now
        return Answer(wire.RCODE_NOERROR if exists else wire.RCODE_NXDOMAIN, authoritative, (),
                      [build.soa(zone, self.server_wire, self.serial(), negative_ttl)])

    def _above_an_address(self, labels: tuple[str, ...]) -> bool:
        """Is this reverse name an empty non-terminal above a record's address (RFC 8020: not NXDOMAIN)?
        Rare (qname minimisation asks them): a scan of the addresses."""
        suffix = "." + ".".join(labels)
        return any(ipaddress.ip_address(address).reverse_pointer.endswith(suffix)
                   for address in self.store.addresses())

    def _container_address(self, ask: Ask, address: str) -> Answer:
        """The PTR of a container's address outside the reverse zones (an address the HTTP API gave)."""
        return Answer(wire.RCODE_NOERROR, ask.qclass == wire.CLASS_IN,
                      self.build.ptr(ask.owner, self.store.by_address(address)))


class Found(NamedTuple):
    """What a zone found for a name, for ``Authority._answer``."""

    records: list[Record]
    zone: bytes  # the apex of the zone holding it, in wire form
    apex: bool  # the name is that apex
    exists: bool  # the name exists (records, or names below it)
    service: tuple[int, str, tuple[str, ...]] | None = None  # an SRV question's (port, protocol, name)


def _preferred(records: list[Record]) -> list[Record]:
    """A name a container, an alias or a records file gives is theirs: a proxy name for it too stands aside."""
    if any(record.kind == "proxy" for record in records) and any(record.kind != "proxy" for record in records):
        return [record for record in records if record.kind != "proxy"]
    return records


def _refusal(qtype: int, qclass: int) -> Answer | None:
    if qclass != wire.CLASS_IN and qclass != wire.CLASS_ANY:
        return Answer(wire.RCODE_REFUSED, False)
    if qtype in _TRANSFERS:
        return Answer(wire.RCODE_NOTIMP, False)
    return None
