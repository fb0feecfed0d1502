"""Query counters kept on the query path: plain integers, read by ``/metrics`` when scraped.

Counting a reply costs a dict update, a bisect and a list update (about
0.2 us; a reply from the caches carries its counter key already);
``prometheus_client``'s own counters take a lock per increment, so they
are only built at scrape time, by ``metrics.py``.

Label values are bounded: a query type outside the common ones counts as
``other``, so a client cycling through 65,536 types cannot grow the table.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from dnscock.wire import RCODE_MASK

# Where an answer came from.
LOCAL = "local"  # dnscock itself: the container table, or an error it decides (FORMERR, REFUSED, ...)
CACHED = "cached"  # the forward cache
FORWARDED = "forwarded"  # an upstream nameserver, now (or SERVFAIL when none answered)
PATHS = (LOCAL, CACHED, FORWARDED)

QTYPE_NAMES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR",
    41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR",
    252: "AXFR", 255: "ANY", 257: "CAA",
}
_COUNTED_QTYPES = frozenset(QTYPE_NAMES)  # any other type (and 0, none read) counts as "other"
_COUNTER_KEYS = (max(QTYPE_NAMES) + 1) << 4
RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

# Upper bounds of the latency histogram's buckets, in seconds (the last one is +Inf).
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0)


def counter_key(qtype: int, reply: bytes) -> int:
    """Where a reply is counted: its question's type (common ones only; else "other") and its rcode."""
    return (qtype if qtype in _COUNTED_QTYPES else 0) << 4 | reply[3] & RCODE_MASK


_FIRST_BUCKET = LATENCY_BUCKETS[0]


def qtype_name(qtype: int) -> str:
    return QTYPE_NAMES.get(qtype, "other")


def type_text(qtype: int) -> str:
    """A type's mnemonic for logs, ``TYPE<n>`` for the others (RFC 3597 §5)."""
    return QTYPE_NAMES.get(qtype) or f"TYPE{qtype}"


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, str(rcode))


class PathStats:
    """The replies of one path: counts by (qtype, rcode), and their latency histogram."""

    __slots__ = ("answers", "buckets", "seconds")

    def __init__(self) -> None:
        self.answers = [0] * _COUNTER_KEYS  # replies by counter_key (qtype << 4 | rcode)
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; +Inf last
        self.seconds = 0.0

    def count(self, key: int, seconds: float) -> None:
        """Counts one reply under its ``counter_key``, ``seconds`` after its query came."""
        self.answers[key] += 1
        if seconds < _FIRST_BUCKET:  # most replies: no search
            self.buckets[0] += 1
        else:
            self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds

    def counts(self) -> dict[tuple[str, str], int]:
        """(qtype name, rcode name) -> replies."""
        return {(qtype_name(key >> 4), rcode_name(key & RCODE_MASK)): count
                for key, count in enumerate(self.answers) if count}


class QueryStats:
    """Replies by path since start, and messages dropped unanswered by reason."""

    __slots__ = ("local", "cached", "forwarded", "paths", "dropped")

    def __init__(self) -> None:
        self.local, self.cached, self.forwarded = PathStats(), PathStats(), PathStats()
        self.paths = {LOCAL: self.local, CACHED: self.cached, FORWARDED: self.forwarded}
        self.dropped: defaultdict[str, int] = defaultdict(int)

    def path(self, name: str) -> PathStats:
        return self.paths[name]

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1
