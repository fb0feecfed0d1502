"""Queries -> replies: the query path as a pipeline of stages, each owning one rule, each returning once it answered.

    datagram / stream
      -> admit            (access: -allow-from, -rate-limit)
      -> exact bytes      (cache: a UDP query seen before, one dict lookup, no parsing, no Query)
      -> read             (Query.read by hand; queries.read_query for the rest: FORMERR, NOTIMP, nothing)
      -> by question      (cache: the same question in any letter case, from any client of the view)
      -> owner?           (authority: the one dispatch, zone / alias zone / reverse zone)
      -> answer locally   (authority + packing; kept for the table's generation)
         | forward        (upstream: failover, TCP; relayed with the client's header, kept for its TTLs)
      -> send -> count    (the transport; stats)

A stage gets the ``Query`` and nothing else; whatever it decides it writes
on the query (its size limit, view, cache key, the table's generation).
What is not configured costs nothing: the client's split-horizon view is
looked up only while some record spans networks, the rate limiter only
when -rate-limit is set, the counters only when -http serves /metrics, the
query log only when on, the debug lines only at -debug.

Every query gets exactly one reply through its transport, or none when the
entry point returns False (a response, a message without a readable
header, a client over the rate limit). Before the first sync with the
engine a local query waits in a greenlet of a bounded pool, or gets
SERVFAIL when the engine is known to be unreachable. At most -forward-pool
queries wait at once (forwarded, or waiting for the first sync); more get
SERVFAIL at once, so the read loop never blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

import gevent

from dnscock import wire
from dnscock.access import Admission, Verdict
from dnscock.addresses import IPNetwork
from dnscock.authority import Ask, Authority, Owner
from dnscock.cache import CachedReply, LocalReply, ReplyCache, ReplyCaches
from dnscock.options import default
from dnscock.packing import Answer, pack_reply, relayed
from dnscock.queries import Unanswerable, read_query
from dnscock.query import Callback, Query, Transport
from dnscock.query_log import QueryLog
from dnscock.records import RecordStore
from dnscock.stats import FORWARDED, LOCAL, QueryStats, counter_key, rcode_name, type_text
from dnscock.throttled_log import ThrottledLog
from dnscock.upstream import Forwarder
from dnscock.views import EVERYONE, Views

log = logging.getLogger("dnscock.pipeline")

_SERVFAIL = Answer(wire.RCODE_SERVFAIL, False)
_BADVERS = Answer(wire.RCODE_BADVERS, False)  # no AA, no SOA: the query was not understood


class DatagramTransport(Transport, Protocol):
    """What the pipeline needs of a UDP server: a reply sent to an address (exact-bytes hits have no Query)."""

    def send_to(self, reply: bytes, address: tuple) -> None: ...


@dataclass(frozen=True)
class PipelineOptions:
    """What the query path needs of the options (the zone and TTLs are the ``Authority``'s)."""

    udp_payload: int = default("udp-payload")  # the largest UDP reply we offer in EDNS0
    forward_pool: int = default("forward-pool")  # queries waiting at once, at most
    sync_timeout: float = default("sync-timeout")  # seconds a local query waits for the first sync
    cache_size: int = default("cache-size")  # forwarded replies kept
    local_cache_size: int = default("local-cache-size")  # local replies kept until the table changes
    allow_from: tuple[IPNetwork, ...] = default("allow-from")
    rate_limit: int = default("rate-limit")  # UDP replies a second per client network; 0: no limit
    rate_limit_slip: int = default("rate-limit-slip")
    split_horizon: bool = default("split-horizon")  # a client on some of a container's networks: its addresses there
    counters: bool = True  # count replies and their latency (for /metrics: without -http nobody reads them)
    query_log: int = default("query-log")  # keep the last N queries; 0: none
    log_queries: bool = default("log-queries")  # a log line per query


class Pipeline:
    """The query path: entry points for the transports, then the stages in order."""

    def __init__(self, options: PipelineOptions, store: RecordStore, authority: Authority,
                 forwarder: Forwarder) -> None:
        self.options = options
        self.store = store
        self.authority = authority
        self.forwarder = forwarder
        self.udp_payload = options.udp_payload
        self.admission = Admission(options.allow_from, options.rate_limit, options.rate_limit_slip)
        self.views = Views(store, options.split_horizon)
        self.caches = ReplyCaches(options.local_cache_size, options.cache_size, store)
        self.deferred = 0  # queries waiting for the first sync, each in a greenlet of its own
        self.stats = QueryStats()
        self.warnings = ThrottledLog(log)
        # What the stages look up per query, looked up once.
        self._debug = log.isEnabledFor(logging.DEBUG)
        # Clients let through before: one dict lookup admits them (none while a rate limit counts every reply).
        self._admitted = self.admission.allowed if not options.rate_limit else {}
        self._exact = self.caches.exact if self.caches.enabled else None
        self.query_log = QueryLog(options.query_log, options.log_queries) \
            if options.query_log or options.log_queries else None
        self._counting = options.counters
        # Whether anything watches the replies (the counters, the query log): when nothing does, no clock is read.
        self._observing = options.counters or self.query_log is not None
        self._count = {path: stats.count for path, stats in self.stats.paths.items()}

    @property
    def local_cache(self) -> ReplyCache:
        return self.caches.local

    @property
    def busy(self) -> int:
        """Queries waiting now: forwarded, or for the first sync (bounded by -forward-pool)."""
        return self.forwarder.in_flight + self.deferred

    # -- entry points --

    def datagram(self, data: bytes, address: tuple, transport: DatagramTransport) -> bool:
        """A UDP message from ``address``; False when no reply will ever come."""
        observing = self._observing
        start = perf_counter() if observing else 0.0
        client = address[0]
        if self._admitted.get(client) is not True:
            verdict = self.admission.check(client, False)
            if verdict is not Verdict.ALLOW:
                return self._turn_away(Query(data, transport, address, start), verdict)
        exact = self._exact
        if exact is not None:
            entry = exact(data, self.views.of(client).tag if self.store.spanning else b"")
            if entry is not None:
                reply = entry.reply_to(data)
                transport.send_to(reply, address)
                if observing:
                    self._observe(entry.path, entry.counter, data, reply, client, start)
                return True
        return self._handle(Query(data, transport, address, start))

    def stream(self, data: bytes, address: tuple, transport: Transport) -> bool:
        """A message that came over TCP (never rate-limited: its handshake proves the address)."""
        query = Query(data, transport, address, perf_counter() if self._observing else 0.0, tcp=True)
        if self._admitted.get(address[0]) is not True:
            verdict = self.admission.check(address[0], True)
            if verdict is not Verdict.ALLOW:
                return self._turn_away(query, verdict)
        return self._handle(query)

    def handle(self, data: bytes, tcp: bool, respond: Callable[[bytes], object], client: str = "") -> bool:
        """``data`` from ``client``, its reply handed to ``respond`` (tests and tools without a socket)."""
        address = (client, 0)
        transport = Callback(respond)
        return self.stream(data, address, transport) if tcp else self.datagram(data, address, transport)

    # -- admit --

    def _turn_away(self, query: Query, verdict: Verdict) -> bool:
        """What a client that ``access`` did not admit gets; False when nothing."""
        data = query.data
        if verdict is Verdict.REFUSE:
            reply = wire.short_reply(data, wire.RCODE_REFUSED)  # no larger than the query
            if reply is None:
                self.stats.drop("malformed")
                return False
            self._send(query, reply, LOCAL, 0)
            return True
        if verdict is Verdict.SLIP:
            reply = wire.short_reply(data, wire.RCODE_NOERROR, tc=True)  # the client may retry over TCP
            if reply is not None:
                self.stats.drop("rate-limited, truncated reply sent")
                query.transport.send(query, reply)
                return True
        self.stats.drop("rate-limited")
        return False

    # -- read --

    def _handle(self, query: Query) -> bool:
        """Reads the question, decides what the reply may hold (size, EDNS version, view), routes it."""
        if not query.read():
            unanswerable = read_query(query)
            if unanswerable is not None:
                return self._unanswerable(query, unanswerable)
        query.limit = query.reply_limit(self.udp_payload)
        if query.opt is not None and query.opt.version != wire.EDNS_VERSION:
            self._send(query, pack_reply(query, _BADVERS, self.udp_payload), LOCAL)
            return True
        query.view = self.views.of(query.client) if self.store.spanning else EVERYONE
        if self._debug:
            log.debug("query %s %s from %s over %s", query.name, type_text(query.qtype), query.client or "?",
                      "tcp" if query.tcp else "udp")
        self._route(query)
        return True

    def _unanswerable(self, query: Query, unanswerable: Unanswerable) -> bool:
        if self._debug:
            log.debug("%s message of %d bytes: %s", unanswerable.reason, len(query.data),
                      "dropped" if unanswerable.reply is None else rcode_name(wire.rcode(unanswerable.reply)))
        if unanswerable.reply is None:
            self.stats.drop(unanswerable.reason)
            return False
        self._send(query, unanswerable.reply, LOCAL, 0)
        return True

    # -- owner? --

    def _route(self, query: Query) -> None:
        owner = self.authority.owner(query.labels, query.qtype)
        if owner is None:
            self._forward(query)
        elif self.store.synced.is_set():
            self._answer_locally(query, owner)
        elif self.store.unavailable:
            self._send(query, pack_reply(query, _SERVFAIL, self.udp_payload), LOCAL)
        elif not self._no_room(query, LOCAL):
            self.deferred += 1
            gevent.spawn(self._after_first_sync, query)

    def _no_room(self, query: Query, path: str) -> bool:
        """With -forward-pool queries waiting already, this one gets SERVFAIL at once (True)."""
        if self.forwarder.in_flight + self.deferred < self.options.forward_pool:
            return False
        self.warnings.warning("pool", "forward pool full (%d): SERVFAIL for %s", self.options.forward_pool, query.name)
        self._send(query, pack_reply(query, _SERVFAIL, self.udp_payload), path)
        return True

    # -- answer locally --

    def _after_first_sync(self, query: Query) -> None:
        try:
            log.debug("%s waits for the first sync with the engine", query.name)
            synced = self.store.synced.wait(self.options.sync_timeout)
            self.deferred -= 1
            if synced:
                self._route(query)  # the dispatch again: the table may own the name now, or no longer
                return
            self.warnings.warning("sync", "no sync with the engine yet: SERVFAIL for %s", query.name)
        except Exception:  # never lose a query to a bug: answer SERVFAIL
            log.exception("failed to answer %s", query.name)
        self._send(query, pack_reply(query, _SERVFAIL, self.udp_payload), LOCAL)

    def _answer_locally(self, query: Query, owner: Owner) -> None:
        """From the local cache, else from the store (and kept for the current table and the client's view)."""
        kept = self.caches.local_reply(query)
        if kept is not None:
            self._send_kept(query, kept)
            return
        query.generation = self.store.generation
        answer = self.authority.answer(
            Ask(query.labels, query.qtype, query.qclass, query.tcp, query.view.subnets), owner)
        reply = pack_reply(query, answer, self.udp_payload)
        if self._debug:
            log.debug("local %s %s: %s, %d records", query.name, type_text(query.qtype), rcode_name(answer.rcode),
                      len(answer.answer))
        self.caches.keep_local(query, reply)
        self._send(query, reply, LOCAL)

    # -- forward --

    def _forward(self, query: Query) -> None:
        """From the forward cache, else from the upstreams (``_relay`` takes their answer)."""
        kept = self.caches.forwarded_reply(query)
        if kept is not None:
            self._send_kept(query, kept)
            return
        if self._no_room(query, FORWARDED):
            return
        query.generation = self.store.generation
        self.forwarder.submit(query, self._relay)

    def _relay(self, query: Query, answer: bytes | None, problem: str) -> None:
        """The forwarder's outcome for ``query``: the upstream's answer as this client's reply, or SERVFAIL."""
        if answer is None:
            self.warnings.warning("forward", "forwarding %s failed: %s", query.name, problem)
            reply = pack_reply(query, _SERVFAIL, self.udp_payload)
        else:
            reply = relayed(query, answer, self.udp_payload)
            if self._debug:
                log.debug("forwarded %s %s: %s, %d bytes", query.name, type_text(query.qtype),
                          rcode_name(wire.rcode(answer)), len(answer))
            self.caches.keep_forwarded(query, reply)
        self._send(query, reply, FORWARDED)

    # -- send, count --

    def _send(self, query: Query, reply: bytes, path: str, qtype: int | None = None) -> None:
        query.transport.send(query, reply)
        if self._observing:
            self._observe(path, counter_key(query.qtype if qtype is None else qtype, reply), query.data, reply,
                          query.client, query.start)

    def _send_kept(self, query: Query, kept: CachedReply | LocalReply) -> None:
        reply = kept.reply_to(query.data)
        query.transport.send(query, reply)
        if self._observing:
            self._observe(kept.path, kept.counter, query.data, reply, query.client, query.start)

    def _observe(self, path: str, counter: int, data: bytes, reply: bytes, client: str, start: float) -> None:
        """A reply sent: counted (-http) and kept in the query log (-query-log, -log-queries)."""
        seconds = perf_counter() - start
        if self._counting:
            self._count[path](counter, seconds)
        if self.query_log is not None:
            self.query_log.add(client, data, reply, path, seconds)
