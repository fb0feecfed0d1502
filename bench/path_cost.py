"""What one forwarded query costs in dnscock's own code, measured in-process: ``python -m bench.path_cost``.

Two halves, each timed over many queries with no server process and no
client, so that the figure is the Python cost alone:

* the resolver's: ``Resolver.handle`` for a query with a name never asked
  before (reading it, the caches, local or not, the forward decision), and
  the relayed reply (flags, its cache entry, the counters), with a forwarder
  that answers at once;
* the forwarder's: ``Forwarder.submit`` (the failover plan, a fresh id, one
  real ``send`` to a UDP socket nobody reads) and the reply handed to the
  channel as its read watcher would (the id and question checks, the
  malformed-reply check, the health bookkeeping).

The rest of a forwarded query's cost is the four system calls of the two
UDP exchanges and the event loop, which dnsperf against a running dnscock
(``python -m bench.run --cases forward-uncached``) adds back.

``--table N`` also times a local lookup with no reply cache (the trie, the
aliases, the answer) and the forward decision, over a small table and over
one of N containers, N records-file names and N wildcard aliases: the two
should cost the same.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time
from collections.abc import Sequence

import dns.message
import dns.rrset

from dnscock import wire
from dnscock.config import Address
from dnscock.records import Record
from dnscock.upstream import Forwarder
from tests.support.resolver_kit import make_resolver


def reply_to(query: bytes) -> bytes:
    message = dns.message.from_wire(query)
    reply = dns.message.make_response(message)
    name = message.question[0].name
    reply.answer.append(dns.rrset.from_text(name, 3600, "IN", "A", "192.0.2.1"))
    return reply.to_wire()


class AnsweringForwarder:
    """The forwarder's interface, answering every query at once with one canned A record."""

    in_flight = 0
    upstreams: list = []

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.infos = wire.records(reply)

    def submit(self, query: bytes, done, tcp: bool = False, question_end: int | None = None, labels=()) -> None:
        done(query[:2] + self.reply[2:], "", self.infos)


def resolver_cost(count: int, cache_size: int) -> float:
    queries = [dns.message.make_query(f"q{i}.cost.test", "A").to_wire() for i in range(count)]
    resolver, _ = make_resolver(forwarder=AnsweringForwarder(reply_to(queries[0])), cache_size=cache_size)
    replies: list[bytes] = []
    start = time.perf_counter()
    for query in queries:
        resolver.handle(query, False, replies.append, "127.0.0.1")
    elapsed = time.perf_counter() - start
    assert len(replies) == count
    return elapsed / count


def table(size: int) -> list[Record]:
    """``size`` containers (two networks each), ``size`` records-file names and ``size`` wildcard aliases."""
    records = []
    for i in range(size):
        a, b = divmod(i, 250)
        records.append(Record(f"c{i:063d}", f"web{i}", (f"web{i}", f"img{i % 50}"), ipv4=(f"10.{a}.{b}.2",),
                              places=((f"10.{a}.{b}.2", f"10.{a}.{b}.0/24", f"net{a}"),)))
        records.append(Record(f"static:hosts:{i}", f"h{i}.lan", (), aliases=(f"h{i}.lan",),
                              ipv4=(f"192.168.{a}.{b + 1}",), kind="static", exact=True))
        records.append(Record(f"w{i:063d}", f"wild{i}", (f"wild{i}", "img"), aliases=(f"*.app{i}.test",),
                              ipv4=(f"10.200.{a}.{b + 1}",)))
    return records


def lookup_cost(count: int, size: int, name: str) -> float:
    """One query for ``name`` answered (or forwarded) with no reply cache, over a table of ``size``."""
    resolver, _ = make_resolver(table(size), forwarder=AnsweringForwarder(reply_to(
        dns.message.make_query(name, "A").to_wire())), cache_size=0, local_cache_size=0)
    query = dns.message.make_query(name, "A").to_wire()
    replies: list[bytes] = []
    start = time.perf_counter()
    for _ in range(count):
        resolver.handle(query, False, replies.append, "127.0.0.1")
    elapsed = time.perf_counter() - start
    assert len(replies) == count
    return elapsed / count


def forwarder_cost(count: int) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        forwarder = Forwarder([Address("127.0.0.1", sink.getsockname()[1])], 2.0, 3)
        query = dns.message.make_query("q.cost.test", "A").to_wire()
        reply = reply_to(query)
        channel = forwarder.upstreams[0].channel()
        answered: list[bytes | None] = []

        def done(answer: bytes | None, problem: str, infos) -> None:
            answered.append(answer)

        start = time.perf_counter()
        for _ in range(count):
            forwarder.submit(query, done)
            message_id = next(reversed(channel._pending))  # the id the query was sent under
            channel._dispatch(struct.pack("!H", message_id) + reply[2:])
        elapsed = time.perf_counter() - start
        forwarder.close()
    assert len(answered) == count and all(answered)
    return elapsed / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.path_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000, help="queries per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each; the best is shown")
    parser.add_argument("--table", type=int, default=0, metavar="N",
                        help="also time lookups over a table of N containers, N records-file names and N wildcard "
                        "aliases against one of 10 of each")
    options = parser.parse_args(argv)
    rows = [
        ("resolver, forward cache on", lambda: resolver_cost(options.queries, 10000)),
        ("resolver, forward cache off", lambda: resolver_cost(options.queries, 0)),
        ("forwarder, one send included", lambda: forwarder_cost(options.queries)),
    ]
    for label, measure in rows:
        best = min(measure() for _ in range(options.repeat))
        print(f"{label:30} {best * 1e6:6.2f} us a forwarded query")
    if options.table:
        for what, name in (("container", "web7.img7.docker"), ("records-file name", "h7.lan"),
                           ("wildcard alias", "x.app7.test"), ("forwarded name", "www.example.com")):
            costs = [min(lookup_cost(options.queries // 10, size, name) for _ in range(options.repeat))
                     for size in (10, options.table)]
            print(f"lookup, {what:18} {costs[0] * 1e6:6.2f} us with 10 of each, {costs[1] * 1e6:6.2f} us with "
                  f"{options.table} of each (x{costs[1] / costs[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
