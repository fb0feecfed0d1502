"""A resolver without sockets, for unit tests: a store of records, a fake forwarder, and a way to ask it.

``make_resolver`` builds the query path the way ``app.build_pipeline`` does,
from ``PipelineOptions`` and an ``Authority``, with no option parsing;
``exchange`` and ``ask`` hand a query to ``Pipeline.handle`` and wait for
its one reply (local answers come at once, forwarded ones from a greenlet).
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.message
import gevent
import gevent.event

from dnscock.answers import DefaultTtl
from dnscock.authority import Authority
from dnscock.query import Query
from dnscock.records import Record, RecordStore
from dnscock.pipeline import Pipeline, PipelineOptions

RECORDS = (
    Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",), ttl=None),
    Record("2" * 64, "redis2", ("redis2", "redis"), ipv4=("10.0.0.2",), ipv6=("fd00::2",), ttl=99),
    Record("3" * 64, "web", ("web", "nginx"), aliases=("www.example.com",), ipv4=("10.0.0.3",)),
)


class FakeForwarder:
    """Answers every query with a canned reply (under the asked id), or fails; records what it was asked."""

    def __init__(self, reply: bytes | None = None, block: float = 0.0) -> None:
        self.reply, self.block = reply, block
        self.asked: list[bytes] = []
        self.over_tcp: list[bool] = []
        self.in_flight = 0
        self.upstreams: list = []

    def submit(self, query: Query, done) -> None:
        self.in_flight += 1
        self.asked.append(query.data)
        self.over_tcp.append(query.tcp)

        def run() -> None:
            if self.block:
                gevent.sleep(self.block)
            self.in_flight -= 1
            if self.reply is None:
                done(query, None, "down")
            else:
                done(query, query.data[:2] + self.reply[2:], "")

        gevent.spawn(run)


def make_resolver(records: Sequence[Record] = RECORDS, *, forwarder: FakeForwarder | None = None, synced: bool = True,
                  zone: str = "docker", ttl: int = 7, ns_addresses: Sequence[str] = ("127.0.0.1",),
                  **options) -> tuple[Pipeline, RecordStore]:
    """A resolver over a store holding ``records`` (synced with the "engine" unless ``synced`` is False)."""
    store = RecordStore()
    if synced:
        store.replace_all(records)
    authority = Authority(store, zone, DefaultTtl(ttl, store.touch), ns_addresses)
    return Pipeline(PipelineOptions(**options), store, authority, forwarder or FakeForwarder()), store


def exchange(resolver: Pipeline, query: bytes, tcp: bool = False, client: str = "127.0.0.1",
             timeout: float = 5.0) -> bytes | None:
    """The one reply ``handle`` gives ``query``, or None when it promises none."""
    result = gevent.event.AsyncResult()
    if not resolver.handle(query, tcp, result.set, client):
        return None
    return result.get(timeout=timeout)


def ask(resolver: Pipeline, name: str, rdtype: str = "A", *, tcp: bool = False,
        **make_kwargs) -> dns.message.Message:
    """The reply to a query for ``name`` (``make_kwargs`` go to ``dns.message.make_query``)."""
    query = dns.message.make_query(name, rdtype, **make_kwargs)
    reply = exchange(resolver, query.to_wire(), tcp)
    assert reply is not None, "no reply"
    return dns.message.from_wire(reply)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.address for rrset in reply.answer for rr in rrset if hasattr(rr, "address"))
