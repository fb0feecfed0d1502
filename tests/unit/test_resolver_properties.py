"""Properties of the resolver over generated queries: a well-formed reply to every one, no exception."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import gevent.event
from hypothesis import given, settings
from hypothesis import strategies as st

from dnscock.records import Record
from tests.support.resolver_kit import FakeForwarder, make_resolver

LABEL = st.sampled_from(["redis", "web", "r1", "*", "docker", "prod", "_80", "_tcp", "x", "example", "com",
                         "in-addr", "arpa", "1", "0", "10", "ip6"])
QTYPE = st.sampled_from(["A", "AAAA", "ANY", "PTR", "SRV", "TXT", "SOA", "NS", "MX", "CNAME", "HINFO", "CAA"])
RECORDS = [
    Record("1" * 64, "r1", ("r1", "redis"), aliases=("r1.example.com",), ipv4=("10.0.0.1",), ttl=5,
           ports=((80, "tcp"),), image="redis"),
    Record("2" * 64, "web", ("web",), ipv6=("fd00::1",), extra_names=(("web", "prod"),)),
    Record("3" * 64, "gone", ("gone", "redis"), stopped=True, ttl=0),
    Record("4" * 64, "bare", ()),
]


def upstream_reply() -> bytes:
    return dns.message.make_response(dns.message.make_query("example.com", "A")).to_wire()


@settings(max_examples=400, deadline=None)
@given(labels=st.lists(LABEL, max_size=6), qtype=QTYPE, tcp=st.booleans(), edns=st.booleans(),
       store_size=st.integers(min_value=0, max_value=len(RECORDS)), environment=st.booleans())
def test_every_query_gets_one_well_formed_reply(labels, qtype, tcp, edns, store_size, environment):
    resolver, _ = make_resolver(RECORDS[:store_size], zone="prod.docker" if environment else "docker",
                                forwarder=FakeForwarder(upstream_reply()))
    query = dns.message.make_query(".".join(labels) + "." if labels else ".", qtype, use_edns=0 if edns else None)
    replies: list[bytes] = []
    done = gevent.event.Event()

    def respond(data: bytes) -> None:
        replies.append(data)
        done.set()

    assert resolver.handle(query.to_wire(), tcp, respond)
    done.wait(5)
    gevent.sleep(0)  # a second reply, were there one, comes now
    assert len(replies) == 1
    reply = dns.message.from_wire(replies[0])
    assert reply.id == query.id and reply.flags & dns.flags.QR
    assert reply.rcode() != dns.rcode.SERVFAIL, "SERVFAIL here would mean a bug (the upstream answers)"
    assert tcp or len(replies[0]) <= (1232 if edns else 512)
