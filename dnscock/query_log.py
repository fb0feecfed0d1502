"""The query log (``-query-log``, ``-log-queries``): the last N queries in memory, and a log line per query.

Keeping a query costs a tuple and a deque append (the reply's bytes are
kept as they are); reading the name, type, rcode and answer out of the bytes
waits until someone asks (``GET /queries``, the page). ``-log-queries``
writes each query's line at once, for ``docker logs``.

Off by default: the pipeline then keeps nothing and formats nothing.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from typing import Any, NamedTuple

from dnslib import DNSRecord

from dnscock import wire
from dnscock.stats import rcode_name, type_text

log = logging.getLogger("dnscock.queries")

_ADDRESS_FAMILIES = {wire.TYPE_A: socket.AF_INET, wire.TYPE_AAAA: socket.AF_INET6}


class Kept(NamedTuple):
    """One query as the log keeps it, before anyone reads it."""

    number: int  # counts up from 1: a reader asks for those after the last it saw
    time: float  # seconds since the epoch
    client: str
    query: bytes  # the query as it came (its name and type are read from it when shown)
    reply: bytes
    path: str  # local, cached or forwarded
    seconds: float


def answer_texts(reply: bytes) -> list[str]:
    """The answer section of a reply as text: addresses as such, other records as ``TYPE data``."""
    infos = wire.records(reply)
    if infos is None:
        return []
    answers = [info for info in infos if info.section == wire.ANSWER]
    if all(info.rtype in _ADDRESS_FAMILIES for info in answers):
        return [socket.inet_ntop(_ADDRESS_FAMILIES[info.rtype], reply[info.rdata_offset:info.rdata_offset
                                                                       + info.rdlength]) for info in answers]
    try:  # names in the data may be compressed: dnslib reads them
        return [f"{type_text(rr.rtype)} {rr.rdata}" if rr.rtype not in _ADDRESS_FAMILIES else str(rr.rdata)
                for rr in DNSRecord.parse(reply).rr]
    except Exception:  # a reply dnslib cannot read: what the record walk found is all there is
        return [type_text(info.rtype) for info in answers]


def entry(kept: Kept) -> dict[str, Any]:
    """A kept query as ``GET /queries`` shows it."""
    read = wire.read_name(kept.query, wire.HEADER_LENGTH)
    name, qtype = "?", 0
    if read is not None and read[1] + 4 <= len(kept.query):
        name = wire.text_of(read[0])
        qtype = kept.query[read[1]] << 8 | kept.query[read[1] + 1]
    return {
        "number": kept.number,
        "time": round(kept.time, 3),
        "client": kept.client,
        "name": name,
        "type": type_text(qtype),
        "rcode": rcode_name(wire.rcode(kept.reply)) if len(kept.reply) >= wire.HEADER_LENGTH else "?",
        "path": kept.path,
        "answer": answer_texts(kept.reply),
        "us": round(kept.seconds * 1e6),
    }


class QueryLog:
    """The last ``size`` queries (none with 0), and a log line each with ``to_log``."""

    def __init__(self, size: int, to_log: bool = False) -> None:
        self.size = size
        self.to_log = to_log
        self._kept: deque[Kept] = deque(maxlen=size or 1)
        self._added = 0

    @property
    def keeps(self) -> bool:
        return self.size > 0

    def add(self, client: str, query: bytes, reply: bytes, path: str, seconds: float) -> None:
        self._added += 1
        kept = Kept(self._added, time.time(), client, query, reply, path, seconds)
        if self.size:
            self._kept.append(kept)
        if self.to_log:
            shown = entry(kept)
            log.info("query %s %s from %s: %s %s (%s, %d us)", shown["name"], shown["type"], shown["client"] or "?",
                     shown["rcode"], ",".join(shown["answer"]) or "-", shown["path"], shown["us"])

    def entries(self, after: int = 0) -> list[dict[str, Any]]:
        """The queries kept, oldest first (those numbered after ``after``)."""
        return [entry(kept) for kept in list(self._kept) if kept.number > after] if self.size else []
