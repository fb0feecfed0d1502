"""Queries -> replies: the query path from admission to the reply, each of its rules in one place.

``Resolver.handle(data, tcp, respond, client)`` calls ``respond(reply)``
exactly once per query, or never when it returns False (a response, a
message without a readable header, a client over the rate limit). The path,
fastest first:

1. Admission (``access``): clients outside -allow-from get REFUSED; over
   -rate-limit, a truncated empty reply now and then, else nothing.
2. A UDP query whose bytes (but the id) got a reply before is answered
   from the reply caches with one dict lookup: no parsing, no greenlet.
3. A plain query is read by hand (``wire.parse_question``), any other by
   ``queries.read_query`` (dnslib), which gives FORMERR or NOTIMP itself.
   Both give a ``wire.Question``; from here on there is one path.
4. A reply kept for the same question (``cache.key``) is served as a
   template with this query's id, flags and question.
5. A name of ours (``Authority.owns``) is answered from the record store
   and packed (``packing.pack_reply``); the reply is kept until the table
   changes. Before the first sync with the engine, the query waits in a
   greenlet of a bounded pool, or gets SERVFAIL when the engine is known to
   be unreachable.
6. Every other name is forwarded (``upstream.Forwarder``; over UDP without
   a greenlet). The upstream's reply gets the client's id and flags;
   SERVFAIL when no upstream answered, TC when it is larger than the
   client can take.

At most -forward-pool queries wait at once (forwarded, or waiting for the
first sync); more get SERVFAIL at once, so the read loop never blocks.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import gevent.pool

from dnscock import cache, packing, wire
from dnscock.access import ALLOW, SLIP, ClientFilter, RateLimiter
from dnscock.authority import Authority
from dnscock.config import DEFAULT_ALLOW_FROM, IPNetwork, parse_networks
from dnscock.packing import Answer
from dnscock.queries import Unanswerable, read_query
from dnscock.records import RecordStore
from dnscock.stats import CACHED, FORWARDED, LOCAL, QueryStats, rcode_name, type_text
from dnscock.throttled_log import ThrottledLog
from dnscock.upstream import Forwarder
from dnscock.views import EVERYONE, View, Views

log = logging.getLogger("dnscock.resolver")

Respond = Callable[[bytes], None]

_FLAGS = struct.Struct("!H")
_SERVFAIL = Answer(wire.RCODE_SERVFAIL, False)
_BADVERS = Answer(wire.RCODE_BADVERS, False)  # no AA, no SOA: the query was not understood


@dataclass(frozen=True)
class ResolverOptions:
    """What the query path needs of the options (the zone and TTLs are the ``Authority``'s)."""

    udp_payload: int = 1232  # the largest UDP reply we offer in EDNS0
    forward_pool: int = 1000  # queries waiting at once, at most
    sync_timeout: float = 3.0  # seconds a local query waits for the first sync
    cache_size: int = 10000  # forwarded replies kept
    local_cache_size: int = 10000  # local replies kept until the table changes
    allow_from: tuple[IPNetwork, ...] = parse_networks(DEFAULT_ALLOW_FROM)
    rate_limit: int = 0  # UDP replies a second per client network; 0: no limit
    rate_limit_slip: int = 2
    split_horizon: bool = True  # a client on some of a container's networks gets its addresses there only


class Resolver:
    def __init__(self, options: ResolverOptions, store: RecordStore, authority: Authority,
                 forwarder: Forwarder) -> None:
        self.views = Views(store, options.split_horizon)
        self.options = options
        self.store = store
        self.authority = authority
        self.forwarder = forwarder
        self.udp_payload = options.udp_payload
        self.pool = gevent.pool.Pool(options.forward_pool)
        self.local_cache = cache.ReplyCache(options.local_cache_size)
        self.forward_cache = cache.ReplyCache(options.cache_size)
        self.warnings = ThrottledLog(log)
        self.stats = QueryStats()
        self.clients = ClientFilter(options.allow_from)
        self.rate_limiter = RateLimiter(options.rate_limit, options.rate_limit_slip) if options.rate_limit else None
        self._count_local, self._count_cached = self.stats.local.record, self.stats.cached.record

    @property
    def busy(self) -> int:
        """Queries waiting now: forwarded, or in a pool greenlet (bounded by -forward-pool)."""
        return self.forwarder.in_flight + len(self.pool)

    # -- the path --

    def handle(self, data: bytes, tcp: bool, respond: Respond, client: str = "") -> bool:
        """Answers ``data`` through ``respond``; False when no answer will ever come."""
        start = perf_counter()
        if client and not self.clients.allows(client):
            return self._refuse(data, respond, start)
        if self.rate_limiter is not None and not tcp and client:
            verdict = self.rate_limiter.check(client)
            if verdict != ALLOW:
                return self._limit(data, verdict, respond)
        view = self.views.of(client) if self.store.spanning else EVERYONE
        # The fastest path: a reply kept for exactly these bytes (but the id). UDP only: the
        # same bytes over TCP may get a larger reply, which must never go back over UDP.
        if not tcp:
            exact = data[2:]
            if self.local_cache.generation == self.store.generation:
                entry = self.local_cache.get(exact + view.tag if view.tag else exact, 0.0)
                if entry is not None:
                    reply = data[:2] + entry.template[2:]
                    respond(reply)
                    self._count_local(entry.qtype, reply, perf_counter() - start)
                    return True
            if self.forward_cache.max_entries:
                now = time.monotonic()
                entry = self.forward_cache.get(exact, now)
                if entry is not None and entry.generation == self.store.generation:
                    reply = cache.render(entry, data, now)
                    respond(reply)
                    self._count_cached(entry.qtype, reply, perf_counter() - start)
                    return True
        question = wire.parse_question(data)
        if question is None:
            read = read_query(data)
            if isinstance(read, Unanswerable):
                return self._unanswerable(data, read, respond, start)
            question = read
        limit = question.reply_limit(tcp, self.udp_payload)
        if question.edns_version != wire.EDNS_VERSION:
            self._send(respond, question, self._pack(question, data, _BADVERS, limit), LOCAL, start)
            return True
        labels = wire.name_labels(question.name)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("query %s %s from %s over %s", _text(labels), type_text(question.qtype), client or "?",
                      "tcp" if tcp else "udp")
        key = cache.key(question, limit)
        cached = self._cached(key, question, data, labels, tcp, view)
        if cached is not None:
            self._send(respond, question, cached[0], cached[1], start)
        elif self.authority.owns(labels, question.qtype):
            self._answer_locally(question, data, labels, tcp, key, limit, respond, start, view)
        else:
            self._forward(question, data, labels, tcp, key, limit, respond, start)
        return True

    def _send(self, respond: Respond, question: wire.Question, reply: bytes, path: str, start: float) -> None:
        respond(reply)
        self.stats.path(path).record(question.qtype, reply, perf_counter() - start)

    def _pack(self, question: wire.Question, data: bytes, answer: Answer, limit: int, truncated: bool = False) -> bytes:
        return packing.pack_reply(question, data, answer, limit, self.udp_payload, truncated=truncated)

    # -- who gets no real answer --

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

    def _unanswerable(self, data: bytes, unanswerable: Unanswerable, respond: Respond, start: float) -> bool:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s message of %d bytes: %s", unanswerable.reason, len(data),
                      "dropped" if unanswerable.reply is None else rcode_name(wire.rcode(unanswerable.reply)))
        if unanswerable.reply is None:
            self.stats.drop(unanswerable.reason)
            return False
        respond(unanswerable.reply)
        self._count_local(0, unanswerable.reply, perf_counter() - start)
        return True

    # -- the reply caches --

    def _cached(self, key: tuple, question: wire.Question, data: bytes, labels: tuple[str, ...],
                tcp: bool, view: View) -> tuple[bytes, str] | None:
        now = time.monotonic()
        local = self.local_cache
        if local.generation != self.store.generation:
            local.clear()
            local.generation = self.store.generation
        source, path, tag = local, LOCAL, view.tag  # local answers depend on the client's view
        entry = local.get(key + (tag,) if tag else key, now)
        if entry is None:
            source, path, tag = self.forward_cache, CACHED, b""
            entry = source.get(key, now)
            if entry is None or not self._still_forwarded(key, entry, labels, question.qtype):
                return None
        exact = cache.for_query(entry, question, data)
        if not tcp:
            source.put(data[2:] + tag, exact)
        return cache.render(exact, data, now), path

    def _still_forwarded(self, key: tuple, entry: cache.CachedReply, labels: tuple[str, ...], qtype: int) -> bool:
        """A forwarded answer stays good while the name is not ours (an alias, say, that came since)."""
        if entry.generation == self.store.generation:
            return True
        if self.authority.owns(labels, qtype):
            self.forward_cache.discard(key)
            return False
        entry.generation = self.store.generation
        return True

    # -- local answers --

    def _answer_locally(self, question: wire.Question, data: bytes, labels: tuple[str, ...], tcp: bool, key: tuple,
                        limit: int, respond: Respond, start: float, view: View = EVERYONE) -> None:
        if self.store.synced.is_set():
            reply = self._local_reply(question, data, labels, tcp, key, limit, view)
            if reply is None:  # not ours after all
                self._forward(question, data, labels, tcp, key, limit, respond, start)
            else:
                self._send(respond, question, reply, LOCAL, start)
        elif self.store.unavailable:
            self._send(respond, question, self._pack(question, data, _SERVFAIL, limit), LOCAL, start)
        elif not self._no_room(question, data, limit, respond, start, LOCAL):
            self.pool.spawn(self._after_first_sync, question, data, labels, tcp, key, limit, respond, start, view)

    def _no_room(self, question: wire.Question, data: bytes, limit: int, respond: Respond, start: float,
                 path: str) -> bool:
        """With -forward-pool queries waiting already, this one gets SERVFAIL at once (True)."""
        if self.busy < self.options.forward_pool:
            return False
        self.warnings.warning("pool", "forward pool full (%d): SERVFAIL for %s", self.options.forward_pool,
                              _text(wire.name_labels(question.name)))
        self._send(respond, question, self._pack(question, data, _SERVFAIL, limit), path, start)
        return True

    def _after_first_sync(self, question: wire.Question, data: bytes, labels: tuple[str, ...], tcp: bool, key: tuple,
                          limit: int, respond: Respond, start: float, view: View) -> None:
        try:
            log.debug("%s waits for the first sync with the engine", _text(labels))
            if not self.store.synced.wait(self.options.sync_timeout):
                self.warnings.warning("sync", "no sync with the engine yet: SERVFAIL for %s", _text(labels))
                self._send(respond, question, self._pack(question, data, _SERVFAIL, limit), LOCAL, start)
                return
            reply = self._local_reply(question, data, labels, tcp, key, limit, view)
        except Exception:  # never lose a query to a bug: answer SERVFAIL
            log.exception("failed to answer %s", _text(labels))
            reply = self._pack(question, data, _SERVFAIL, limit)
        if reply is None:  # not ours after all (an alias that went away meanwhile)
            self._forward(question, data, labels, tcp, key, limit, respond, start)
        else:
            self._send(respond, question, reply, LOCAL, start)

    def _local_reply(self, question: wire.Question, data: bytes, labels: tuple[str, ...], tcp: bool, key: tuple,
                     limit: int, view: View) -> bytes | None:
        """The reply from the store, kept for the current table (and the client's view); None: not ours."""
        generation = self.store.generation
        answer = self.authority.answer(question, labels, tcp, view.subnets)
        if answer is None:
            return None
        reply = self._pack(question, data, answer, limit)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("local %s %s: %s, %d records", _text(labels), type_text(question.qtype),
                      rcode_name(answer.rcode), len(answer.answer))
        if generation == self.local_cache.generation:
            entry = cache.CachedReply(reply, qtype=question.qtype)
            self.local_cache.put(key + (view.tag,) if view.tag else key, entry)
            if not tcp:
                self.local_cache.put(data[2:] + view.tag, entry)
        return reply

    # -- forwarding --

    def _forward(self, question: wire.Question, data: bytes, labels: tuple[str, ...], tcp: bool, key: tuple,
                 limit: int, respond: Respond, start: float) -> None:
        if self._no_room(question, data, limit, respond, start, FORWARDED):
            return
        generation = self.store.generation

        def done(answer: bytes | None, problem: str, infos: list[wire.RecordInfo] | None) -> None:
            if answer is None:
                self.warnings.warning("forward", "forwarding %s failed: %s", _text(labels), problem)
                reply = self._pack(question, data, _SERVFAIL, limit)
            elif len(answer) > limit:
                # The upstream answered by TCP, the client asked by UDP: tell it to come by TCP.
                reply = self._pack(question, data, Answer(wire.rcode(answer), False), limit, truncated=True)
            else:
                # The client's id and flags (RD, CD; Z clear) on the upstream's answer.
                flags = wire.reply_flags(question.flags, answer[2] << 8 | answer[3])
                reply = data[:2] + _FLAGS.pack(flags) + answer[4:]
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("forwarded %s %s: %s, %d bytes", _text(labels), type_text(question.qtype),
                              rcode_name(wire.rcode(answer)), len(answer))
                self._keep_forwarded(data, key, reply, generation, question.qtype, tcp, infos)
            self._send(respond, question, reply, FORWARDED, start)

        self.forwarder.submit(data, done, tcp, question.end, labels)

    def _keep_forwarded(self, data: bytes, key: tuple, reply: bytes, generation: int, qtype: int, tcp: bool,
                        infos: list[wire.RecordInfo] | None) -> None:
        if not self.forward_cache.max_entries:
            return
        entry = cache.forwarded_entry(reply, time.monotonic(), infos, qtype)
        if entry is not None:
            entry.generation = generation
            entry.qtype = qtype
            self.forward_cache.put(key, entry)
            if not tcp:
                self.forward_cache.put(data[2:], entry)


def _text(labels: tuple[str, ...]) -> str:
    return ".".join(labels) + "."
