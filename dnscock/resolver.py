"""Queries -> replies: answered from the record store, or handed to the forwarder.

``Resolver.handle(data, tcp, respond)`` calls ``respond(reply_bytes)``
exactly once per query (never for a message that is not a query and has no
readable header). Three paths, fastest first:

1. A plain query (one question, at most an OPT record) is read by hand and
   looked up in the reply caches; a hit is answered in the caller, the
   server's read loop, without dnslib and without a greenlet.
2. Otherwise dnslib parses it. A local name is answered at once (the store
   never blocks) and its reply cached for the current store generation.
3. A query that must wait (forwarded upstream, or a local name asked before
   the first sync with the engine) runs in a greenlet of a bounded pool;
   when the pool is full it gets SERVFAIL at once, so the read loop never
   blocks.

Local answers follow RFC 1035 / 2308 / 4074: AA set; a name under the zone
that matches nothing is NXDOMAIN, a name that matches but has no record of
the asked type is NODATA (NOERROR, empty answer); both carry the zone's SOA
in the authority section, whose minimum is the ``-ttl`` option.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

import gevent.pool
from dnslib import EDNS0, OPCODE, QTYPE, RCODE, DNSRecord

from dnscock import cache, wire
from dnscock.access import ALLOW, SLIP, ClientFilter, RateLimiter
from dnscock.answers import AnswerBuilder, reverse_address, srv_service
from dnscock.config import Config
from dnscock.dnsname import split_name
from dnscock.records import RecordStore
from dnscock.stats import CACHED, FORWARDED, LOCAL, QueryStats
from dnscock.throttled_log import ThrottledLog
from dnscock.upstream import Forwarder, UpstreamError

log = logging.getLogger("dnscock.resolver")

Respond = Callable[[bytes], None]

CLASSIC_UDP_LIMIT = 512
TCP_LIMIT = 65535  # a TCP message's length is a 16-bit number
CLASS_IN, CLASS_ANY = 1, 255
EDNS_VERSION = 0
BADVERS = 16


@dataclass(slots=True)
class Query:
    """One parsed query and how it came."""

    raw: bytes
    message: DNSRecord
    tcp: bool = False
    cache_key: cache.CacheKey | None = None  # set for plain queries, whose replies may be cached
    start: float = field(default_factory=perf_counter)  # when it arrived, for the latency histogram
    masked: bool = False  # read with high octets masked: replies must get ``raw``'s question back

    @property
    def qtype(self) -> int:
        return self.message.q.qtype if self.message.questions else 0


# dnslib reads only UTF-8 labels, where DNS allows any octet (RFC 2181 §11): such a question
# is read with its high octets masked, and every reply gets the question back as asked.
_MASK_HIGH_OCTETS = bytes.maketrans(bytes(range(0x80, 0x100)), b"?" * 0x80)


def parse_query(data: bytes) -> tuple[DNSRecord, bool] | None:
    """The parsed message and whether its question was masked, or None when it breaks RFC 1035's rules."""
    message = _parse(data)
    masked = False
    if message is None:
        end = wire.question_end(data)
        if end is not None and max(data[wire.HEADER_LENGTH:end - 4], default=0) >= 0x80:
            name = data[wire.HEADER_LENGTH:end - 4].translate(_MASK_HIGH_OCTETS)
            message, masked = _parse(data[:wire.HEADER_LENGTH] + name + data[end - 4:]), True
    if message is None:
        return None
    return message, masked


def _parse(data: bytes) -> DNSRecord | None:
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


class Resolver:
    def __init__(self, config: Config, store: RecordStore, forwarder: Forwarder) -> None:
        self.config = config
        self.store = store
        self.forwarder = forwarder
        self.zone = split_name(config.zone)
        self.pool = gevent.pool.Pool(config.forward_pool)
        self.answers = AnswerBuilder(config.zone, config.ttl)
        self.local_cache = cache.ReplyCache(config.local_cache_size)
        self.forward_cache = cache.ReplyCache(config.cache_size)
        self.warnings = ThrottledLog(log)
        self.stats = QueryStats()
        self.clients = ClientFilter(config.allow_from)
        self.rate_limiter = RateLimiter(config.rate_limit, config.rate_limit_slip) if config.rate_limit else None
        self._count_local, self._count_cached = self.stats.local.record, self.stats.cached.record

    # -- entry points --

    def handle(self, data: bytes, tcp: bool, respond: Respond, client: str = "") -> bool:
        """Answers ``data`` through ``respond``; False when no answer will ever come."""
        start = perf_counter()
        if client and not self.clients.allows(client):
            return self._refuse(data, respond, start)
        if self.rate_limiter is not None and not tcp and client:
            verdict = self.rate_limiter.check(client)
            if verdict != ALLOW:
                return self._limit(data, verdict, respond)
        # The fastest path: a reply cached for exactly these bytes (but the id). UDP only: the
        # same bytes over TCP may get a larger reply, which must never go back over UDP.
        if not tcp:
            key = data[2:]
            if self.local_cache.generation == self.store.generation:
                entry = self.local_cache.get(key, 0.0)
                if entry is not None:
                    reply = data[:2] + entry.template[2:]
                    respond(reply)
                    self._count_local(entry.qtype, reply, perf_counter() - start)
                    return True
            if self.forward_cache.max_entries:
                now = time.monotonic()
                entry = self.forward_cache.get(key, now)
                if entry is not None and entry.generation == self.store.generation:
                    reply = cache.render(entry, data, now)
                    respond(reply)
                    self._count_cached(entry.qtype, reply, perf_counter() - start)
                    return True
        question = wire.parse_question(data)
        key = None
        if question is not None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("query %s. %s from %s over %s", ".".join(wire.name_labels(question.name)),
                          QTYPE.get(question.qtype), client, "tcp" if tcp else "udp")
            key = self._cache_key(question, tcp)
            cached = self._cached(key, question, data, tcp)
            if cached is not None:
                reply, path = cached
                respond(reply)
                self.stats.path(path).record(question.qtype, reply, perf_counter() - start)
                return True
            if not tcp and question.edns_version == EDNS_VERSION and self._plainly_forwarded(question):
                self._forward_udp(data, question, key, respond, start)
                return True
        parsed = parse_query(data)
        if parsed is None:
            log.debug("malformed message of %d bytes", len(data))
            reply = wire.error_reply(data, wire.RCODE_FORMERR)
            if reply is None:
                self.stats.drop("malformed")
                return False
            respond(reply)
            self.stats.local.record(0, reply, perf_counter() - start)
            return True
        message, masked = parsed
        if message.header.qr:
            self.stats.drop("response")
            return False  # a response: answering it could start a loop
        if question is None and log.isEnabledFor(logging.DEBUG):
            log.debug("query %s %s from %s over %s", message.q.qname, QTYPE.get(message.q.qtype), client,
                      "tcp" if tcp else "udp")
        self.resolve(Query(data, message, tcp, key, start, masked), respond)
        return True

    def _refuse(self, data: bytes, respond: Respond, start: float) -> bool:
        """A client outside -allow-from: REFUSED, no larger than its query (or nothing, when unreadable)."""
        reply = wire.short_reply(data, wire.RCODE_REFUSED)
        if reply is None:
            self.stats.drop("malformed")
            return False
        respond(reply)
        self._count_local(0, reply, perf_counter() - start)
        return True

    def _limit(self, data: bytes, verdict: int, respond: Respond) -> bool:
        """Over -rate-limit: a truncated empty reply now and then (the client may retry over TCP), else nothing."""
        if verdict == SLIP:
            reply = wire.short_reply(data, wire.RCODE_NOERROR, tc=True)
            if reply is not None:
                self.stats.drop("rate-limited, truncated reply sent")
                respond(reply)
                return True
        self.stats.drop("rate-limited")
        return False

    def resolve(self, query: Query, respond: Respond) -> None:
        reply = self.answer_now(query)
        if reply is not None:
            self._respond(query, respond, reply, LOCAL)
        elif self.busy >= self.config.forward_pool:
            self.warnings.warning("pool", "forward pool full (%d): SERVFAIL for %s", self.config.forward_pool,
                                  query.message.q.qname)
            self._respond(query, respond, self._error(query, RCODE.SERVFAIL), FORWARDED)
        else:
            self.pool.spawn(self._answer_later, query, respond)

    def set_default_ttl(self, ttl: int) -> None:
        """The TTL of records without one of their own, and the SOA minimum (the HTTP API's /set/ttl)."""
        self.answers.default_ttl = ttl
        self.store.touch()  # every local answer kept as bytes carries the old TTL

    def _respond(self, query: Query, respond: Respond, reply: bytes, path: str) -> None:
        respond(reply)
        self.stats.path(path).record(query.qtype, reply, perf_counter() - query.start)

    @property
    def busy(self) -> int:
        """Queries waiting now: forwarded over UDP, or in a pool greenlet (bounded by -forward-pool)."""
        return self.forwarder.in_flight + len(self.pool)

    # -- the caches --

    def _cache_key(self, question: wire.Question, tcp: bool) -> cache.CacheKey:
        if tcp:
            limit = TCP_LIMIT
        elif question.edns_payload is None:
            limit = CLASSIC_UDP_LIMIT
        else:
            limit = max(CLASSIC_UDP_LIMIT, min(question.edns_payload, self.config.udp_payload))
        return (question.name.lower(), question.qtype, question.qclass, limit,
                question.edns_payload is not None, question.dnssec_ok)

    def _cached(self, key: cache.CacheKey, question: wire.Question, data: bytes,
                tcp: bool) -> tuple[bytes, str] | None:
        if question.edns_version != EDNS_VERSION:
            return None
        now = time.monotonic()
        local = self.local_cache
        if local.generation != self.store.generation:
            local.clear()
            local.generation = self.store.generation
        source, path = local, LOCAL
        entry = local.get(key, now)
        if entry is None:
            source, path = self.forward_cache, CACHED
            entry = source.get(key, now)
            if entry is None or not self._still_forwarded(key, entry, question):
                return None
        exact = cache.for_query(entry, question, data)
        if not tcp:
            source.put(data[2:], exact)
        return cache.render(exact, data, now), path

    def _still_forwarded(self, key: cache.CacheKey, entry: cache.CachedReply, question: wire.Question) -> bool:
        """A forwarded answer stays good while the store has nothing to say about its name."""
        if entry.generation == self.store.generation:
            return True
        labels = wire.name_labels(question.name)
        address = reverse_address(labels) if question.qtype == QTYPE.PTR else None
        if self._is_local(labels) or self.store.has_alias(_store_name(labels)) or (
            address and self.store.has_address(address)
        ):
            self.forward_cache.discard(key)
            return False
        entry.generation = self.store.generation
        return True

    # -- forwarding plain UDP queries without parsing them --

    def _plainly_forwarded(self, question: wire.Question) -> bool:
        """Is this a name the store has nothing to say about (so the query goes upstream as is)?"""
        labels = wire.name_labels(question.name)
        if self._is_local(labels) or self.store.has_alias(_store_name(labels)):
            return False
        if question.qtype == QTYPE.PTR:
            address = reverse_address(labels)
            return not (address and self.store.has_address(address))
        return True

    def _forward_udp(self, data: bytes, question: wire.Question, key: cache.CacheKey, respond: Respond,
                     start: float) -> None:
        record = self.stats.forwarded.record
        if self.busy >= self.config.forward_pool:
            self.warnings.warning("pool", "forward pool full (%d): SERVFAIL for %s", self.config.forward_pool,
                                  ".".join(wire.name_labels(question.name)))
            reply = wire.reply_without_records(data, question, wire.RCODE_SERVFAIL, udp_payload=self.config.udp_payload)
            respond(reply)
            record(question.qtype, reply, perf_counter() - start)
            return
        generation = self.store.generation

        def done(answer: bytes | None, problem: str, infos: list[wire.RecordInfo] | None = None) -> None:
            if answer is None:
                self.warnings.warning("forward", "forwarding %s failed: %s",
                                      ".".join(wire.name_labels(question.name)), problem)
                reply = wire.reply_without_records(data, question, wire.RCODE_SERVFAIL,
                                                   udp_payload=self.config.udp_payload)
            elif len(answer) > key[3]:
                # The upstream answered by TCP, the client asked by UDP: tell it to come by TCP.
                reply = wire.reply_without_records(data, question, wire.rcode(answer), tc=True,
                                                   udp_payload=self.config.udp_payload)
            else:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("forwarded %s: %s, %d bytes", ".".join(wire.name_labels(question.name)),
                              RCODE.get(wire.rcode(answer)), len(answer))
                self._cache_forwarded(data, key, answer, generation, question.qtype, infos=infos)
                reply = answer
            respond(reply)
            record(question.qtype, reply, perf_counter() - start)

        self.forwarder.submit(data, done, question.end)

    def _cache_forwarded(self, data: bytes, key: cache.CacheKey, answer: bytes, generation: int, qtype: int,
                         tcp: bool = False, infos: list[wire.RecordInfo] | None = None) -> None:
        if not self.forward_cache.max_entries:
            return
        entry = cache.forwarded_entry(answer, time.monotonic(), infos)
        if entry is not None:
            entry.generation = generation
            entry.qtype = qtype
            self.forward_cache.put(key, entry)
            if not tcp:
                self.forward_cache.put(data[2:], entry)

    # -- building replies --

    def answer_now(self, query: Query) -> bytes | None:
        """The reply when it can be given without waiting, else None."""
        message = query.message
        if message.header.opcode != OPCODE.QUERY:
            return self._error(query, RCODE.NOTIMP)
        if len(message.questions) != 1:
            return self._error(query, RCODE.FORMERR)
        edns = _edns(message)
        if edns is not None and edns.edns_ver != EDNS_VERSION:
            reply = _new_reply(message)
            reply.header.rcode = BADVERS & 0xF  # the upper 8 bits go in the OPT record
            return self._reply_bytes(query, reply, extended_rcode=BADVERS >> 4)
        labels = _labels(message)
        local = self._is_local(labels)
        if local and message.q.qclass not in (CLASS_IN, CLASS_ANY):
            return self._error(query, RCODE.REFUSED)
        if not self.store.synced.is_set():
            if local and self.store.unavailable:
                return self._error(query, RCODE.SERVFAIL)
            return None  # wait for the first sync, or forward
        return self._local_bytes(query, labels, local)

    def _local_bytes(self, query: Query, labels: tuple[str, ...], local: bool) -> bytes | None:
        generation = self.store.generation
        reply = self._local_reply(query, labels, local)
        if reply is None:
            return None
        data = self._reply_bytes(query, reply)
        if query.cache_key is not None and generation == self.local_cache.generation:
            entry = cache.CachedReply(data, qtype=query.qtype)
            self.local_cache.put(query.cache_key, entry)
            if not query.tcp:
                self.local_cache.put(query.raw[2:], entry)
        return data

    def _answer_later(self, query: Query, respond: Respond) -> None:
        try:
            reply, path = self._answer_waiting(query)
        except Exception:  # never lose a query to a bug: answer SERVFAIL
            log.exception("failed to answer %s", query.message.q.qname)
            reply, path = wire.error_reply(query.raw, wire.RCODE_SERVFAIL), LOCAL
            if reply is None:
                return
        self._respond(query, respond, reply, path)

    def _answer_waiting(self, query: Query) -> tuple[bytes, str]:
        message = query.message
        labels = _labels(message)
        local = self._is_local(labels)
        if local and not self.store.synced.is_set():
            log.debug("%s waits for the first sync with the engine", message.q.qname)
            if not self.store.synced.wait(self.config.sync_timeout):
                self.warnings.warning("sync", "no sync with the engine yet: SERVFAIL for %s", message.q.qname)
                return self._error(query, RCODE.SERVFAIL), LOCAL
        reply = self._local_bytes(query, labels, local)
        if reply is not None:
            return reply, LOCAL
        generation = self.store.generation
        try:
            answer = self.forwarder.forward(query.raw, query.tcp)
        except UpstreamError as error:
            self.warnings.warning("forward", "forwarding %s %s failed: %s", message.q.qname,
                                  QTYPE.get(message.q.qtype), error)
            return self._error(query, RCODE.SERVFAIL), FORWARDED
        if log.isEnabledFor(logging.DEBUG):
            log.debug("forwarded %s %s: %s, %d bytes", message.q.qname, QTYPE.get(message.q.qtype),
                      RCODE.get(wire.rcode(answer)), len(answer))
        if len(answer) > self.reply_limit(query):
            # The upstream answered by TCP, the client asked by UDP: tell it to come by TCP.
            reply = _new_reply(message)
            reply.header.tc = 1
            reply.header.aa = 0
            reply.header.rcode = wire.rcode(answer)
            return self._reply_bytes(query, reply), FORWARDED
        if query.cache_key is not None:
            self._cache_forwarded(query.raw, query.cache_key, answer, generation, query.qtype, query.tcp)
        return answer, FORWARDED

    # -- local answers --

    def _is_local(self, labels: tuple[str, ...]) -> bool:
        zone = self.zone
        return len(labels) >= len(zone) and labels[len(labels) - len(zone):] == zone

    def _local_reply(self, query: Query, labels: tuple[str, ...], local: bool) -> DNSRecord | None:
        """The reply from the store, or None when the name is not ours (forward it)."""
        message = query.message
        qtype = message.q.qtype
        owner = message.q.qname  # echo the name as asked, case and all
        if not local and qtype == QTYPE.PTR:
            reply = self._reverse_reply(message, labels)
            if reply is not None:
                return reply
        name = _store_name(labels)
        aliased = self.store.by_alias(name)
        service = None
        if local:
            relative = labels[: len(labels) - len(self.zone)]
            service = srv_service(relative) if qtype == QTYPE.SRV else None
            records = self.store.match(service[2] if service else relative)
            if aliased:
                seen = {record.id for record in records}
                records += [record for record in aliased if record.id not in seen]
            soa_owner = self.config.zone
        elif aliased:
            records, soa_owner = aliased, name
        else:
            return None

        reply = _new_reply(message)
        build = self.answers
        soa_ttl = None
        live = [record for record in records if not record.stopped]
        if records and not live:
            # Stopped within its grace window: the name exists, for now with nothing in it.
            records, soa_ttl = [], 0
        else:
            records = live
        apex = local and len(labels) == len(self.zone)
        if not records:
            if soa_ttl is None and not apex:  # the zone itself always exists
                reply.header.rcode = RCODE.NXDOMAIN
        elif qtype in (QTYPE.A, QTYPE.AAAA) or (qtype == QTYPE.ANY and query.tcp):
            reply.rr = build.addresses(owner, records, qtype)
        elif qtype == QTYPE.ANY:
            reply.rr = build.minimal_any(owner, records)
        elif qtype == QTYPE.TXT:
            reply.rr = build.txt(owner, records)
        elif qtype == QTYPE.SRV and service is not None:
            reply.rr, reply.ar = build.srv(owner, records, service[0], service[1])
        if qtype == QTYPE.SOA and apex:
            reply.rr = [build.soa(soa_owner, self.store.generation)]
        if not reply.rr:
            reply.add_auth(build.soa(soa_owner, self.store.generation, soa_ttl))
        self._log_answer(message, reply)
        return reply

    def _reverse_reply(self, message: DNSRecord, labels: tuple[str, ...]) -> DNSRecord | None:
        address = reverse_address(labels)
        records = self.store.by_address(address) if address else []
        if not records:
            return None  # not a container's address: someone else's reverse zone
        reply = _new_reply(message)
        reply.rr = self.answers.ptr(message.q.qname, records)
        self._log_answer(message, reply)
        return reply

    def _log_answer(self, message: DNSRecord, reply: DNSRecord) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("local %s %s: %s, %s", message.q.qname, QTYPE.get(message.q.qtype),
                      RCODE.get(reply.header.rcode), ", ".join(str(rr.rdata) for rr in reply.rr) or "no records")

    # -- packing --

    def _reply_bytes(self, query: Query, reply: DNSRecord, extended_rcode: int = 0) -> bytes:
        edns = _edns(query.message)
        if edns is not None:
            reply.add_ar(EDNS0(udp_len=self.config.udp_payload, ext_rcode=extended_rcode))
        data = bytes(reply.pack())
        limit = self.reply_limit(query)
        if len(data) > limit:
            data = _truncate(reply, limit)
        if query.masked and len(data) > wire.HEADER_LENGTH and data[5] == 1:
            end = wire.question_end(query.raw)
            if end is not None and end <= len(data):  # the same length: only octets were masked
                data = data[:wire.HEADER_LENGTH] + query.raw[wire.HEADER_LENGTH:end] + data[end:]
        return data

    def reply_limit(self, query: Query) -> int:
        """The most bytes a reply may have: 512 for UDP without EDNS0 (RFC 1035), else what both sides allow."""
        if query.tcp:
            return TCP_LIMIT
        edns = _edns(query.message)
        if edns is None:
            return CLASSIC_UDP_LIMIT
        return max(CLASSIC_UDP_LIMIT, min(edns.edns_len, self.config.udp_payload))

    def _error(self, query: Query, rcode: int) -> bytes:
        reply = _new_reply(query.message)
        reply.header.rcode = rcode
        reply.header.aa = 0
        return self._reply_bytes(query, reply)


def _new_reply(message: DNSRecord) -> DNSRecord:
    """A reply with the id, question, RD and CD bits of ``message``; AA and RA set.

    dnslib copies every flag of the query; AD must not be: dnscock validates
    nothing (RFC 6840 §5.8), and dig sets AD in its queries.
    """
    reply = message.reply()
    if not message.questions:  # dnslib would make one up
        reply.questions = []
        reply.header.q = 0
    reply.header.ad = 0
    reply.header.tc = 0  # a TC bit in the query means nothing; in the reply it is ours to set
    return reply


def _store_name(labels: tuple[str, ...]) -> str:
    """The name as the store spells aliases; "" when a label holds a dot (no name of ours has one)."""
    name = ".".join(labels)
    return name if name.count(".") == len(labels) - 1 else ""


def _labels(message: DNSRecord) -> tuple[str, ...]:
    # latin-1 keeps every octet; bytes.lower() folds ASCII letters only, as DNS does.
    return tuple(label.lower().decode("latin-1") for label in message.q.qname.label)


class _EdnsInfo:
    __slots__ = ("edns_len", "edns_ver")

    def __init__(self, edns_len: int, edns_ver: int) -> None:
        self.edns_len, self.edns_ver = edns_len, edns_ver


def _edns(message: DNSRecord) -> _EdnsInfo | None:
    for rr in message.ar:
        if rr.rtype == QTYPE.OPT:
            # The OPT record's class is the payload size, its TTL holds the version.
            return _EdnsInfo(rr.rclass, (rr.ttl >> 16) & 0xFF)
    return None


def _truncate(reply: DNSRecord, limit: int) -> bytes:
    """Drops records from the end until the reply fits ``limit``, and sets TC (RFC 2181 §9)."""
    reply.header.tc = 1
    reply.auth = []
    reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    answers = list(reply.rr)
    keep = len(answers)
    while True:
        reply.rr = answers[:keep]
        data = bytes(reply.pack())
        if len(data) <= limit or keep == 0:
            return data
        # Guess from the average record size, then step down one at a time.
        average = max(1, len(data) // max(1, keep))
        keep = max(0, min(keep - 1, keep - (len(data) - limit) // average))
