"""What a query costs in dnscock's own code, measured in-process: ``python -m bench.path_cost``.

Each figure is the Python cost alone, timed over many queries with no
client, no server loop and no system call (the upstream's socket is a
stand-in that keeps what is sent), the best of ``--repeat`` runs:

* a forwarded query, whole: ``Pipeline.datagram`` for a name never asked
  before (admission, the exact-bytes caches, reading, the dispatch, the
  forwarder's plan and its send), then the upstream's reply handed to the
  UDP channel as its read watcher would (id and question matched, the
  well-formedness check, the relay with the client's header, the counters);
  with the forward cache off and on;
* a local answer from the exact-bytes cache (a repeated query), and the
  same lookup and splice written as the ceiling does it (``bench.ceiling``:
  one dict lookup, no counters), for scale.

Each as dnscock runs by default (no counters: only /metrics reads them,
and -http is off unless set), with -http (the counters), and with -http and
-query-log (the last 1,000 queries kept).

The rest of a query's cost is its system calls and the event loop, which
dnsperf against a running dnscock (``python -m bench.run``) adds back.

``--table N`` also times a local lookup with no reply cache (the trie, the
aliases, the answer) and the forward decision, over a small table and over
one of N containers, N records-file names and N wildcard aliases: the two
should cost the same.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence

import dns.message
import dns.rrset

from dnscock import wire
from dnscock.config import Address
from dnscock.pipeline import Pipeline
from dnscock.query import Callback, Query
from dnscock.records import Record
from dnscock.upstream import Forwarder
from tests.support.resolver_kit import make_resolver

CLIENT = ("127.0.0.1", 53053)


class _Sent:
    """Stands in for an upstream's socket: keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def close(self) -> None:
        pass


class _Dropped:
    """A transport that sends nowhere."""

    def send(self, query: Query, reply: bytes) -> None:
        pass

    def send_to(self, reply: bytes, address: tuple) -> None:
        pass


def reply_to(query: bytes) -> bytes:
    message = dns.message.from_wire(query)
    reply = dns.message.make_response(message)
    reply.answer.append(dns.rrset.from_text(message.question[0].name, 3600, "IN", "A", "192.0.2.1"))
    return reply.to_wire()


def containers(count: int) -> list[Record]:
    return [Record(f"{i:064x}", f"c{i}", (f"c{i}", f"img{i % 10}"), ipv4=(f"10.0.{i // 250}.{i % 250 + 1}",))
            for i in range(count)]


def forwarded_cost(count: int, cache_size: int, counters: bool, query_log: int = 0) -> float:
    """A forwarded query for a new name, from the client's datagram to the reply sent back."""
    forwarder = Forwarder([Address("127.0.0.1", 9)], 2.0)
    pipeline, _ = make_resolver(containers(200), forwarder=forwarder, cache_size=cache_size, counters=counters,
                                query_log=query_log)
    channel = forwarder.upstreams[0].channel()
    upstream = _Sent()
    channel._socket = upstream  # nothing leaves: what would be sent is kept
    header = dns.message.make_query("x.test", "A", id=0).to_wire()[:wire.HEADER_LENGTH]
    queries = [header + wire.name_to_wire(f"q{i:07d}.cost.test") + b"\x00\x01\x00\x01" for i in range(count)]
    answer = reply_to(queries[0])[len(queries[0]):]  # the answer record, its owner a pointer to the question
    replies = [query[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + query[12:] + answer for query in queries]
    datagram, dispatch, sent, transport = pipeline.datagram, channel._dispatch, upstream.sent, _Dropped()
    try:
        start = time.perf_counter()
        for query, reply in zip(queries, replies):
            datagram(query, CLIENT, transport)
            dispatch(sent.pop()[:2] + reply[2:])
        elapsed = time.perf_counter() - start
        assert forwarder.in_flight == 0 and pipeline.stats.forwarded.answers[1 << 4] == (count if counters else 0)
    finally:
        forwarder.close()
    return elapsed / count


def local_cost(count: int, counters: bool, query_log: int = 0) -> tuple[float, float]:
    """(a repeated local query answered from the exact-bytes cache, the ceiling's lookup and splice alone)."""
    pipeline, _ = make_resolver(containers(200), counters=counters, query_log=query_log)
    names = [dns.message.make_query(f"c{i}.img{i % 10}.docker", "A", id=i).to_wire() for i in range(200)]
    for name in names:
        pipeline.datagram(name, CLIENT, _Dropped())
    queries = [bytes((i >> 8 & 255, i & 255)) + names[i % 200][2:] for i in range(count)]
    datagram, transport = pipeline.datagram, _Dropped()
    start = time.perf_counter()
    for query in queries:
        datagram(query, CLIENT, transport)
    ours = (time.perf_counter() - start) / count
    kept = {name[2:]: name[2:] for name in names}
    send = transport.send_to
    start = time.perf_counter()
    for query in queries:
        send(query[:2] + kept[query[2:]], CLIENT)
    return ours, (time.perf_counter() - start) / count


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


class _Answering:
    """The forwarder's interface, answering every query at once with one canned A record."""

    in_flight = 0
    upstreams: list = []

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def submit(self, query: Query, done) -> None:
        done(query, query.data[:2] + self.reply[2:], "")


def lookup_cost(count: int, size: int, name: str) -> float:
    """One query for ``name`` answered (or forwarded) with no reply cache, over a table of ``size``."""
    query = dns.message.make_query(name, "A").to_wire()
    pipeline: Pipeline
    pipeline, _ = make_resolver(table(size), forwarder=_Answering(reply_to(query)), cache_size=0, local_cache_size=0)
    replies: list[bytes] = []
    transport = Callback(replies.append)
    start = time.perf_counter()
    for _ in range(count):
        pipeline.datagram(query, CLIENT, transport)
    elapsed = time.perf_counter() - start
    assert len(replies) == count
    return elapsed / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.path_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50_000, help="queries per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="measurements of each; the best is shown")
    parser.add_argument("--table", type=int, default=0, metavar="N",
                        help="also time lookups over a table of N containers, N records-file names and N wildcard "
                        "aliases against one of 10 of each")
    options = parser.parse_args(argv)
    gc.freeze()  # as dnscock does after its start-up (app.tune_garbage_collector)
    gc.set_threshold(50_000, 50, 100)
    best = min
    # (counters, query log): the default; -http; -http with -query-log.
    settings = ((False, 0), (True, 0), (True, 1000))
    print(f"{'':34} {'default':>12} {'-http':>12} {'+query-log':>12}")
    for label, cache_size in (("forwarded, forward cache off", 0), ("forwarded, forward cache on", 10_000)):
        costs = [best(forwarded_cost(options.queries, cache_size, *setting) for _ in range(options.repeat))
                 for setting in settings]
        print(f"{label:34} " + " ".join(f"{cost * 1e6:9.2f} us" for cost in costs))
    local = {setting: [local_cost(options.queries * 3, *setting) for _ in range(options.repeat)]
             for setting in settings}
    print(f"{'local, exact-bytes cache':34} " + " ".join(f"{best(ours for ours, _ in local[setting]) * 1e6:9.2f} us"
                                                        for setting in settings))
    print(f"{'the ceiling: one lookup, a splice':34} {best(theirs for _, theirs in local[settings[0]]) * 1e6:9.2f} us")
    if options.table:
        for what, name in (("container", "web7.img7.docker"), ("records-file name", "h7.lan"),
                           ("wildcard alias", "x.app7.test"), ("forwarded name", "www.example.com")):
            costs = [best(lookup_cost(options.queries // 10, size, name) for _ in range(options.repeat))
                     for size in (10, options.table)]
            print(f"lookup, {what:18} {costs[0] * 1e6:6.2f} us with 10 of each, {costs[1] * 1e6:6.2f} us with "
                  f"{options.table} of each (x{costs[1] / costs[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
