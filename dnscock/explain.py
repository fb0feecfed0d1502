"""``GET /explain?name=NAME&type=A``: what dnscock would answer for a name, and why, in words.

The answer comes from the same dispatch and authority the query path uses
(``Authority.owner``, then ``Authority.answer``, asked to report what each
zone found), with no cache, counter or upstream touched: a forwarded name
is explained by which upstream it would go to, not by asking it.

``source`` says which rule gave the answer: ``container`` (its name),
``image`` (parts left out on the left), ``alias``, ``wildcard`` (a wildcard
alias), ``compose``, ``swarm``, ``static`` (a records file), ``proxy``,
``host``, ``manual`` (the HTTP API), ``reverse`` (a container's address),
``zone`` (dnscock's own names: the apex, its NS), ``forwarded``, or
``none``. ``why`` is a sentence; for an empty answer it names the cause: a
stopped container in its grace time, an unhealthy one withheld, a type the
name lacks, no such name.
"""

from __future__ import annotations

from typing import Any

from dnslib import QTYPE, DNSRecord

from dnscock import wire
from dnscock.authority import Ask, Authority, Found
from dnscock.dnsname import split_name
from dnscock.errors import DnscockError
from dnscock.packing import pack_reply
from dnscock.query import Query
from dnscock.records import Record, RecordStore
from dnscock.stats import rcode_name
from dnscock.upstream import Forwarder
from dnscock.views import EVERYONE, Views


class ExplainError(DnscockError):
    """A name or type that cannot be explained (the HTTP API answers 400, naming the field)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def qtype_of(text: str) -> int:
    """``A``, ``aaaa``, ``TYPE65`` or ``65`` -> the type's number; ExplainError for anything else."""
    word = text.strip().upper() or "A"
    if word.isdigit() or (word.startswith("TYPE") and word[4:].isdigit()):
        number = int(word.removeprefix("TYPE"))
        if 0 < number < 65536:
            return number
    elif word in QTYPE.reverse:
        return int(QTYPE.reverse[word])
    raise ExplainError(f"{text!r} is not a DNS type", "type")


class Explainer:
    def __init__(self, authority: Authority, forwarder: Forwarder, views: Views) -> None:
        self.authority = authority
        self.store: RecordStore = authority.store
        self.forwarder = forwarder
        self.views = views

    def explain(self, name: str, type_text: str = "A", client: str = "") -> dict[str, Any]:
        labels = split_name(name)
        if not labels or any(not label or len(label) > 63 for label in labels) or len(".".join(labels)) > 253:
            raise ExplainError(f"{name!r} is not a domain name", "name")
        qtype = qtype_of(type_text)
        shown = {"name": ".".join(labels) + ".", "type": QTYPE[qtype], "client": client}
        owner = self.authority.owner(labels, qtype)
        if owner is None:
            return {**shown, "rcode": "", "answer": [], "source": "forwarded", "why": self._forwarded(labels)}
        view = self.views.of(client) if client and self.store.spanning else EVERYONE
        found: list[Found] = []
        answer = self.authority.answer(Ask(labels, qtype, wire.CLASS_IN, False, view.subnets, found=found), owner)
        texts = answer_texts(labels, qtype, answer)
        rcode = rcode_name(answer.rcode)
        source, why = self._why(labels, qtype, found, texts, rcode, owner.answer.__name__)
        if view.tag:
            everyone = answer_texts(labels, qtype, self.authority.answer(
                Ask(labels, qtype, wire.CLASS_IN, False, frozenset()), owner))
            if everyone != texts:
                why += (f" Split horizon: {client} is in {', '.join(sorted(view.subnets))}, so it gets the addresses "
                        f"on those networks only (other clients get {', '.join(everyone)}).")
        return {**shown, "rcode": rcode, "answer": texts, "source": source, "why": why}

    # -- forwarded --

    def _forwarded(self, labels: tuple[str, ...]) -> str:
        upstreams = self.forwarder.group_for(labels)
        live = [upstream for upstream in upstreams if not upstream.down] or upstreams
        group = f"the upstreams for {live[0].domain}" if live and live[0].domain else "the default upstreams"
        where = f"{live[0].address}" if live else "no upstream"
        return (f"{'.'.join(labels)} is in none of dnscock's zones ({self.authority.zone}, the aliases', the "
                f"networks' reverse zones): it is forwarded to {where} ({group}, {len(upstreams)} of them, tried in "
                "order).")

    # -- owned --

    def _why(self, labels: tuple[str, ...], qtype: int, found: list[Found], texts: list[str], rcode: str,
             zone_kind: str) -> tuple[str, str]:
        name = ".".join(labels)
        if zone_kind in ("_in_reverse_zone", "_container_address"):
            return "reverse", (f"{name} is the reverse name of a container's address." if texts else
                               f"{name} is in the reverse zone of a Docker network, and no container has that "
                               "address: dnscock answers it itself, never forwarding.")
        top = found[0] if found else None
        records = top.records if top is not None else []
        if top is None:  # dnscock's own name (the NS target)
            return "zone", f"{name} is dnscock's own name, the NS of its zone: it answers the NS addresses."
        live = [record for record in records if not record.stopped]
        if top.apex and qtype in (wire.TYPE_SOA, wire.TYPE_NS):
            return "zone", f"{name} is the apex of a zone of dnscock's: its SOA and NS are dnscock's own."
        if texts and live:
            source, how = self._matched(labels, live)
            via = f" (through a CNAME to {found[-1].records[0].name})" if len(found) > 1 and found[-1].records else ""
            return source, f"{name} {how}{via}."
        withheld = self.store.withheld_matching(self._relative(labels), name)
        if records and not live and not {record.id for record in withheld} & {record.id for record in records}:
            stopped = ", ".join(record.container for record in records)
            return "container", (f"{name} is the name of {stopped}, which stopped: during its grace time (-grace) "
                                 "its names answer NODATA with TTL 0.")
        if withheld:
            held = ", ".join(record.container for record in withheld)
            return "container", (f"{name} would be {held}'s, but its healthcheck says unhealthy: withheld until it is "
                                 "healthy again (-serve-unhealthy serves it anyway).")
        if live:
            source, how = self._matched(labels, live)
            return source, f"{name} {how}, which has no {QTYPE[qtype]} record: NODATA."
        if top.apex:
            return "zone", f"{name} is the apex of a zone of dnscock's: it answers SOA and NS there, NODATA else."
        if top.exists:
            return "none", f"{name} has names below it (an empty non-terminal, RFC 8020): NODATA."
        return "none", f"no container, alias or record is named {name}: {rcode}."

    def _relative(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        zone = self.authority.zone_labels
        return labels[:len(labels) - len(zone)] if self.authority.in_zone(labels) else labels

    def _matched(self, labels: tuple[str, ...], records: list[Record]) -> tuple[str, str]:
        """(the rule, "is/matches ..." in words) for the records that answer ``labels``."""
        name = ".".join(labels)
        relative = self._relative(labels)
        record = records[0]
        others = f" (and {len(records) - 1} more)" if len(records) > 1 else ""
        who = f"{record.container}{others}"
        if record.kind == "static":
            return "static", f"is in the records file {record.source.removeprefix('file:')}"
        if record.kind == "host":
            return "host", "is the host's name (-host-name), its address as containers reach it"
        if record.kind == "proxy":
            froms = "; ".join(value for key, value in record.metadata if key == "from")
            kinds = ", ".join(value for key, value in record.metadata if key == "proxy")
            return "proxy", f"is a {kinds} name ({froms}): it answers the proxy {record.container}"
        if record.kind in ("task", "vip"):
            return "swarm", f"is the swarm service {record.image_name}'s {record.kind}, {who}"
        if record.manual:
            return "manual", f"is the service {record.id} put through the HTTP API"
        if name in record.aliases:
            return "alias", f"is an alias of container {who}"
        wildcards = [alias for alias in record.aliases if alias.startswith("*.") and name.endswith(alias[1:])]
        if wildcards:
            return "wildcard", f"is covered by the wildcard alias {wildcards[0]} of container {who}"
        if any(relative[len(relative) - len(extra):] == extra for extra in record.extra_names if extra):
            compose = dict(record.metadata).get("compose_service")
            if compose:
                return "compose", f"is the compose service {compose}'s name, container {who}"
            return "container", f"is the plain container name of {who} (-container-names)"
        if not relative:
            return "container", f"is the domain itself, which names every container ({who})"
        if len(relative) < len(record.labels) and "*" not in relative:
            return "image", (f"is {'.'.join(relative)}, the image part of the name of container {who} "
                             f"({'.'.join(record.labels)})")
        image = f", from image {record.image}" if record.image else ""
        return "container", f"is the name of container {who} ({'.'.join(record.labels)}{image})"


def answer_texts(labels: tuple[str, ...], qtype: int, answer: Any) -> list[str]:
    """The answer section of the reply ``answer`` makes, as text (packed and read back, as a client sees it)."""
    data = (b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire.name_to_wire(".".join(labels))
            + qtype.to_bytes(2, "big") + wire.CLASS_IN.to_bytes(2, "big"))
    query = Query(data, None, None, 0.0, tcp=True)
    if not query.read():
        return []
    query.limit = wire.TCP_LIMIT
    return [str(rr.rdata) if rr.rtype in (wire.TYPE_A, wire.TYPE_AAAA) else f"{QTYPE[rr.rtype]} {rr.rdata}"
            for rr in DNSRecord.parse(pack_reply(query, answer, 4096)).rr]
