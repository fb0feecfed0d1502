"""The reply caches: whole wire-format replies served without parsing or packing, and the one policy over them.

A cached reply is a template: a later query with the same key gets the
template with its own id, flags (``wire.spliced``: its RD and CD, Z clear)
and question put in. The question differs at most in letter case, so it
has the same length and every offset in the template holds; answer owner
names point at the question (message compression), so they echo the name
as asked, and no other name points into it (``packing``). What the query
decides beyond that is in the key (``ReplyCaches.key``): the transport's
size limit, EDNS0 and its DO bit (echoed in the OPT record), and the AD and
CD bits, which change what a validating upstream answers (RFC 4035 §3.2.2:
a CD=1 answer may hold data that failed validation, RFC 6840 §5.9).

``ReplyCaches`` is the policy, in one place:

* two keys per reply: the question's key, and the exact bytes of the UDP
  query that got it (but the id), so that a repeated query is answered with
  one dict lookup and no parsing at all (``exact``). TCP queries use the
  question's key only: the same bytes over TCP may get a larger reply,
  which must never go back over UDP;
* local answers depend on the client's split-horizon view: their keys
  carry the view's tag (b"" for the view of everyone);
* local answers are good for one generation of the record store and are
  dropped when it changes;
* forwarded answers live for their smallest TTL (RFC 1035 §7.3), negative
  ones for the SOA minimum (RFC 2308 §5), and their TTLs count down as
  they are served. They are looked up by question only for names the
  dispatch has just found not to be dnscock's; by exact bytes, only while
  the table is the one they were last found good for (an alias that came
  since may have taken the name over). SERVFAIL, truncated and unreadable
  replies are never cached.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from itertools import islice
from typing import ClassVar

from dnscock import wire
from dnscock.query import Query
from dnscock.records import RecordStore
from dnscock.stats import CACHED, LOCAL, counter_key

# Two kinds of key: the query's bytes after its id (and a view's tag), or
# (labels, qtype, qclass, reply limit, EDNS0 present, DO bit, AD and CD bits) (and a view's tag).
CacheKey = bytes | tuple
MAX_POSITIVE_TTL = 86400
MAX_NEGATIVE_TTL = 3600  # RFC 2308 §5 suggests one to three hours
_CACHEABLE_RCODES = (wire.RCODE_NOERROR, wire.RCODE_NXDOMAIN)
_TTL = struct.Struct("!I")


class CachedReply:
    """A forwarded answer: its TTLs count down as it is served, until it expires.

    Where its TTLs sit and how long it may live are read when it is first
    served (``read``), not when it is kept: most forwarded replies are never
    asked for again within their lifetime, and reading one costs more than
    forwarding it. Until then only what ``__init__`` sets is there.
    """

    __slots__ = ("template", "stored", "qtype", "generation", "ttl_offsets", "ttls", "expires", "counter",
                 "counted_second", "counted")
    path: ClassVar[str] = CACHED  # the counters' path of a reply served from here

    def __init__(self, template: bytes, stored: float = 0.0, qtype: int = 0, generation: int = 0,
                 ttl_offsets: tuple[int, ...] | None = None, ttls: tuple[int, ...] = (),
                 expires: float = float("inf")) -> None:
        self.template = template
        self.stored = stored
        self.qtype = qtype  # its question's type
        self.generation = generation  # the record store generation it was last found good for
        self.ttl_offsets = ttl_offsets  # None: not read yet
        if ttl_offsets is not None:
            self._was_read(ttls, expires, 0)

    def _was_read(self, ttls: tuple[int, ...], expires: float, counter: int) -> None:
        self.ttls = ttls
        self.expires = expires
        self.counter = counter  # the reply's qtype and rcode, as the query counters key them
        # The template with its TTLs counted down (but its id), for the whole second it stays right.
        self.counted_second = -1
        self.counted = b""

    def read(self) -> bool:
        """Reads where the TTLs sit and how long the reply may be served; False when it must not be."""
        reply, qtype = self.template, self.qtype
        if len(reply) < wire.HEADER_LENGTH or wire.rcode(reply) not in _CACHEABLE_RCODES or reply[2] & wire.TC_OCTET:
            return False
        infos = wire.records(reply)
        if infos is None:
            return False
        ttl_offsets, ttls = [], []
        answer_ttl = MAX_POSITIVE_TTL
        holds_the_type = qtype == wire.TYPE_ANY
        negative_ttl = None
        for _, ttl_offset, rtype, ttl, rdata_offset, rdlength, section in infos:
            if rtype == wire.TYPE_OPT:
                if rdlength:
                    return False  # EDNS options (a server cookie, say) are meant for one client
                continue
            ttl_offsets.append(ttl_offset)
            ttls.append(ttl)
            if section == wire.ANSWER:
                answer_ttl = min(answer_ttl, ttl)
                holds_the_type = holds_the_type or rtype == qtype
            elif section == wire.AUTHORITY and rtype == wire.TYPE_SOA:
                minimum = wire.soa_minimum(reply, rdata_offset, rdlength)
                if minimum is not None:
                    limit = min(ttl, minimum)
                    negative_ttl = limit if negative_ttl is None else min(negative_ttl, limit)
        if holds_the_type and wire.rcode(reply) == wire.RCODE_NOERROR:
            lifetime = answer_ttl
        elif negative_ttl is not None:
            # Negative: NXDOMAIN, or NODATA (perhaps at the end of a CNAME chain). Cacheable only with
            # an SOA to say for how long, and no longer than the chain's records (RFC 2308 §5).
            lifetime = min(answer_ttl, negative_ttl, MAX_NEGATIVE_TTL)
        else:
            return False
        if lifetime <= 0:
            return False
        self.ttl_offsets = tuple(ttl_offsets)
        self._was_read(tuple(ttls), self.stored + lifetime, counter_key(qtype, reply))
        return True

    def reply_to(self, query: bytes, now: float | None = None) -> bytes:
        """The reply to ``query`` (an exact match of the entry's query but for the id); TTLs counted down to
        ``now``."""
        if not self.ttl_offsets:
            return query[:2] + self.template[2:]
        elapsed = int((time.monotonic() if now is None else now) - self.stored)
        if elapsed != self.counted_second:
            counted = bytearray(self.template)
            for offset, ttl in zip(self.ttl_offsets, self.ttls):
                _TTL.pack_into(counted, offset, max(0, ttl - elapsed))
            self.counted, self.counted_second = bytes(counted[2:]), elapsed
        return query[:2] + self.counted

    def rewritten(self, template: bytes) -> CachedReply:
        """The same reply, read already, with another template (the same length: offsets hold)."""
        copy = CachedReply(template, self.stored, self.qtype, self.generation, self.ttl_offsets)
        copy._was_read(self.ttls, self.expires, self.counter)
        return copy


@dataclass(slots=True)
class LocalReply:
    """A local answer, good for one generation of the table: nothing counts down."""

    template: bytes
    counter: int = 0
    rest: bytes = b""  # the template but its id: what every reply to the same bytes ends in
    path: ClassVar[str] = LOCAL

    def __post_init__(self) -> None:
        self.rest = self.template[2:]

    def reply_to(self, query: bytes, now: float | None = None) -> bytes:
        return query[:2] + self.rest

    def rewritten(self, template: bytes) -> LocalReply:
        return LocalReply(template, self.counter)


class ReplyCache:
    """At most ``max_entries`` replies; when it overflows, the older half of them goes.

    A plain dict keeps its keys in the order they came, and dropping the
    older half at once costs each reply kept less than an ordered dict's
    bookkeeping of dropping one at a time (measured: about 0.3 us against
    0.9 for a lookup and a store, with 10,000 entries).
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: dict[CacheKey, CachedReply | LocalReply] = {}
        self.generation = -1  # for the local cache: the store generation its entries belong to

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: CacheKey, now: float) -> CachedReply | LocalReply | None:
        entry = self.entries.get(key)
        if entry is None or entry.path is LOCAL:  # a local reply never expires
            return entry
        if (entry.ttl_offsets is None and not entry.read()) or entry.expires <= now:
            del self.entries[key]
            return None
        return entry

    def put(self, key: CacheKey, entry: CachedReply | LocalReply) -> None:
        if self.max_entries <= 0:
            return
        entries = self.entries
        entries[key] = entry
        if len(entries) > self.max_entries:
            self.entries = dict(islice(entries.items(), len(entries) // 2, None))

    def discard(self, key: CacheKey) -> None:
        self.entries.pop(key, None)

    def clear(self) -> None:
        self.entries = {}


class ReplyCaches:
    """The local and the forward cache, and when each of their replies may answer a query."""

    def __init__(self, local_size: int, forward_size: int, store: RecordStore) -> None:
        self.local = ReplyCache(local_size)
        self.forward = ReplyCache(forward_size)
        self.store = store
        self.enabled = local_size > 0 or forward_size > 0

    def exact(self, data: bytes, tag: bytes) -> CachedReply | LocalReply | None:
        """The reply kept for exactly these bytes (but the id) from a client of the view ``tag``, still good."""
        rest = data[2:]
        local = self.local
        if local.generation == self.store.generation:
            entry = local.entries.get(rest + tag if tag else rest)
            if entry is not None:
                return entry
        forward = self.forward
        if forward.max_entries:
            entry = forward.get(rest, time.monotonic())
            if entry is not None and entry.generation == self.store.generation:
                return entry
        return None

    @staticmethod
    def key(query: Query) -> tuple:
        """The key of the replies a query may share with others (its size limit decided already)."""
        opt = query.opt
        return (query.labels, query.qtype, query.qclass, query.limit, opt is not None,
                opt is not None and opt.dnssec_ok, query.flags & (wire.AD | wire.CD))

    def local_reply(self, query: Query) -> LocalReply | None:
        """A local reply kept for the question and the client's view, rewritten for this query (whose key it
        sets, for ``keep_local``)."""
        local = self.local
        if not local.max_entries:
            return None
        query.key = self.key(query)
        generation = self.store.generation
        if local.generation != generation:
            local.clear()
            local.generation = generation
        tag = query.view.tag
        entry = local.entries.get(query.key + (tag,) if tag else query.key)
        if entry is None:
            return None
        exact = for_query(entry, query)
        if not query.tcp:
            local.put(query.data[2:] + tag, exact)
        return exact

    def forwarded_reply(self, query: Query) -> CachedReply | None:
        """A forwarded reply kept for the question, rewritten for this query; the name is not dnscock's (the
        dispatch said so just now), so the entry is good for the table as it is. Sets the query's key, for
        ``keep_forwarded``."""
        forward = self.forward
        if not forward.max_entries:
            return None
        query.key = self.key(query)
        entry = forward.get(query.key, time.monotonic())
        if entry is None:
            return None
        entry.generation = self.store.generation
        exact = for_query(entry, query)
        if not query.tcp:
            forward.put(query.data[2:], exact)
        return exact

    def keep_local(self, query: Query, reply: bytes) -> None:
        """Keeps a local answer made from the table of ``query.generation`` (unless the table changed since)."""
        local = self.local
        if not local.max_entries or query.generation != local.generation:
            return
        entry = LocalReply(reply, counter_key(query.qtype, reply))
        tag = query.view.tag
        local.put(query.key + (tag,) if tag else query.key, entry)
        if not query.tcp:
            local.put(query.data[2:] + tag, entry)

    def keep_forwarded(self, query: Query, reply: bytes) -> None:
        """Keeps an upstream's answer (as relayed to ``query``) for as long as its TTLs will say, if at all."""
        forward = self.forward
        if not forward.max_entries:
            return
        entry = CachedReply(reply, time.monotonic(), query.qtype, query.generation)
        forward.put(query.key, entry)
        if not query.tcp:
            forward.put(query.data[2:], entry)


def for_query(entry: CachedReply | LocalReply, query: Query) -> CachedReply | LocalReply:
    """The entry rewritten for exactly this query: its flags and its question, as asked."""
    data, end = query.data, query.end
    spliced = wire.spliced(data, entry.template)
    return entry.rewritten(spliced[:wire.HEADER_LENGTH] + data[wire.HEADER_LENGTH:end] + spliced[end:])
