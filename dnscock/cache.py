"""Bounded caches of whole wire-format replies, served without parsing or packing.

A cached reply is a template: a later query with the same key gets the
template with its own id, flags (``wire.reply_flags``: its RD and CD, Z
clear) and question spliced in. The question differs at most in letter
case, so it has the same length and every offset in the template holds;
answer owner names point at the question (message compression), so they
echo the name as asked, and no other name points into it (``packing``).
What the query decides beyond that is in the key: the transport's size
limit, EDNS0 and its DO bit (echoed in the OPT record), and the AD and CD
bits, which change what a validating upstream answers (RFC 4035 §3.2.2:
a CD=1 answer may hold data that failed validation, RFC 6840 §5.9). Each
reply is also kept under the exact bytes of the query that got it, so that
a repeated query is answered with one dict lookup and no parsing at all.

* Local answers are valid for one generation of the record store and are
  dropped when it changes.
* Forwarded answers live for their smallest TTL (RFC 1035 §7.3), negative
  ones for the SOA minimum (RFC 2308 §5), and their TTLs count down as they
  are served. SERVFAIL, truncated and unreadable replies are never cached.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from dnscock import wire

# Two kinds of key: the query's bytes after its id (an exact match, found without
# parsing), or (lower-case wire name, qtype, qclass, reply limit, EDNS0 present, DO bit, AD and CD bits).
CacheKey = bytes | tuple
MAX_POSITIVE_TTL = 86400
MAX_NEGATIVE_TTL = 3600  # RFC 2308 §5 suggests one to three hours
_CACHEABLE_RCODES = (0, 3)  # NOERROR, NXDOMAIN
_TTL = struct.Struct("!I")
_FLAGS = struct.Struct("!H")


@dataclass(slots=True)
class CachedReply:
    template: bytes
    ttl_offsets: tuple[int, ...] = ()
    ttls: tuple[int, ...] = ()
    stored: float = 0.0
    expires: float = float("inf")
    generation: int = 0  # the record store generation it was last checked against
    qtype: int = 0  # the question's type, for the query counters
    # The template with its TTLs counted down, for the whole second it stays right.
    counted_second: int = field(default=-1, compare=False)
    counted: bytes = field(default=b"", compare=False)


class ReplyCache:
    """At most ``max_entries`` replies; the oldest entry goes first when full."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        # An OrderedDict drops its oldest entry in constant time; next(iter(dict)) would
        # walk over every slot deleted before it.
        self._entries: OrderedDict[CacheKey, CachedReply] = OrderedDict()
        self.generation = -1  # for the local cache: the store generation its entries belong to

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> CachedReply | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= now:
            del self._entries[key]
            return None
        return entry

    def put(self, key: CacheKey, entry: CachedReply) -> None:
        if self.max_entries <= 0:
            return
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = entry

    def discard(self, key: CacheKey) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def key(question: wire.Question, limit: int) -> tuple:
    """The key of the replies a query may share with others (``limit``: its reply size limit)."""
    return (question.name.lower(), question.qtype, question.qclass, limit, question.edns_payload is not None,
            question.dnssec_ok, question.flags & (wire.AD | wire.CD))


def for_query(entry: CachedReply, question: wire.Question, query: bytes) -> CachedReply:
    """The entry rewritten for exactly this query: its flags and its question, as asked."""
    template = entry.template
    flags = wire.reply_flags(question.flags, template[2] << 8 | template[3])
    rewritten = (template[:2] + _FLAGS.pack(flags) + template[4:wire.HEADER_LENGTH]
                 + query[wire.HEADER_LENGTH:question.end] + template[question.end:])
    return replace(entry, template=rewritten, counted_second=-1, counted=b"")


def render(entry: CachedReply, query: bytes, now: float) -> bytes:
    """The reply to ``query`` (an exact match of the entry's query but for the id)."""
    if not entry.ttl_offsets:
        return query[:2] + entry.template[2:]
    elapsed = int(now - entry.stored)
    if elapsed != entry.counted_second:
        counted = bytearray(entry.template)
        for offset, ttl in zip(entry.ttl_offsets, entry.ttls):
            _TTL.pack_into(counted, offset, max(0, ttl - elapsed))
        entry.counted, entry.counted_second = bytes(counted), elapsed
    return query[:2] + entry.counted[2:]


def forwarded_entry(reply: bytes, now: float, infos: list[wire.RecordInfo] | None = None,
                    qtype: int | None = None) -> CachedReply | None:
    """A cache entry for an upstream reply, or None when it must not be cached.

    ``infos`` are the reply's records and ``qtype`` its question's type,
    when the caller knows them already. One pass over the records: this runs
    for every reply forwarded.
    """
    if len(reply) < wire.HEADER_LENGTH or wire.rcode(reply) not in _CACHEABLE_RCODES or reply[2] << 8 & wire.TC:
        return None
    if infos is None:
        infos = wire.records(reply)
        if infos is None:
            return None
    if qtype is None:
        end = wire.question_end(reply)
        if end is None:
            return None
        qtype = reply[end - 4] << 8 | reply[end - 3]
    ttl_offsets, ttls = [], []
    answer_ttl = MAX_POSITIVE_TTL
    holds_the_type = qtype == wire.TYPE_ANY
    negative_ttl = None
    for ttl_offset, rtype, ttl, rdata_offset, rdlength, section in infos:
        if rtype == wire.TYPE_OPT:
            if rdlength:
                return None  # EDNS options (a server cookie, say) are meant for one client
            continue
        ttl_offsets.append(ttl_offset)
        ttls.append(ttl)
        if section == 1:
            answer_ttl = min(answer_ttl, ttl)
            holds_the_type = holds_the_type or rtype == qtype
        elif section == 2 and rtype == wire.TYPE_SOA:
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
        return None
    if lifetime <= 0:
        return None
    return CachedReply(reply, tuple(ttl_offsets), tuple(ttls), now, now + lifetime)
