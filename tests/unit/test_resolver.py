"""The resolver on its own: local answers by the RFCs, deferral, forwarding and SERVFAIL; no sockets."""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import gevent
import pytest
from dnslib import DNSRecord

from dnscock.records import Record
from tests.support.resolver_kit import FakeForwarder, addresses, ask, exchange, make_resolver


def upstream_reply(name: str = "example.com", *answers: str) -> bytes:
    reply = dns.message.make_response(dns.message.make_query(name, "A"))
    for address in answers:
        reply.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "A", address))
    return reply.to_wire()


def test_a_records_with_per_container_ttl_and_aa():
    resolver, _ = make_resolver()
    reply = ask(resolver, "redis.docker")
    assert addresses(reply) == ["10.0.0.1", "10.0.0.2"]
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.QR
    # One RRset, one TTL (RFC 2181 §5.2): the lowest, here the -ttl of redis1 below redis2's 99.
    assert [rrset.ttl for rrset in reply.answer] == [7]
    assert ask(resolver, "redis2.redis.docker").answer[0].ttl == 99


def test_nxdomain_carries_the_soa_with_minimum_ttl():
    resolver, _ = make_resolver()
    reply = ask(resolver, "nobody.docker")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    soa = reply.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "docker."
    assert soa[0].minimum == 7 and soa.ttl == 7


def test_nodata_for_a_type_the_name_lacks():
    resolver, _ = make_resolver()
    for name, rdtype in (("redis1.redis.docker", "AAAA"), ("redis1.redis.docker", "MX"), ("www.example.com", "MX")):
        reply = ask(resolver, name, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, (name, rdtype)
        assert reply.authority[0].rdtype == dns.rdatatype.SOA


def test_aaaa_and_any():
    resolver, _ = make_resolver()
    assert addresses(ask(resolver, "redis2.redis.docker", "AAAA")) == ["fd00::2"]
    # RFC 8482: ANY over UDP gets one RRset; over TCP, the addresses of both families.
    assert addresses(ask(resolver, "redis2.redis.docker", "ANY")) == ["10.0.0.2"]
    assert addresses(ask(resolver, "redis2.redis.docker", "ANY", tcp=True)) == ["10.0.0.2", "fd00::2"]


def test_any_for_a_container_without_addresses_is_an_rfc8482_hinfo():
    resolver, _ = make_resolver([Record("9" * 64, "lonely", ("lonely", "img"))])
    reply = ask(resolver, "lonely.img.docker", "ANY")
    assert reply.answer[0].rdtype == dns.rdatatype.HINFO
    assert reply.answer[0][0].cpu == b"RFC8482"


def test_ptr_for_container_addresses_and_forwarding_for_others():
    forwarder = FakeForwarder(upstream_reply())
    resolver, _ = make_resolver(zone="prod.docker", forwarder=forwarder)
    reply = ask(resolver, "1.0.0.10.in-addr.arpa", "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["redis1.redis.prod.docker."]
    assert reply.flags & dns.flags.AA
    reply = ask(resolver, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["redis2.redis.prod.docker."]
    assert not forwarder.asked
    ask(resolver, "9.9.0.10.in-addr.arpa", "PTR")
    ask(resolver, "0.10.in-addr.arpa", "PTR")
    assert len(forwarder.asked) == 2


def test_srv_for_exposed_ports_with_addresses_in_additional():
    resolver, _ = make_resolver([
        Record("1" * 64, "web1", ("web1", "nginx"), ipv4=("10.0.0.1",), ports=((80, "tcp"), (53, "udp"))),
        Record("2" * 64, "web2", ("web2", "nginx"), ipv4=("10.0.0.2",), ports=((80, "tcp"),)),
    ])
    reply = ask(resolver, "_80._tcp.nginx.docker", "SRV")
    assert sorted((rr.port, rr.target.to_text()) for rr in reply.answer[0]) == [
        (80, "web1.nginx.docker."), (80, "web2.nginx.docker."),
    ]
    assert sorted(rr[0].address for rr in reply.additional) == ["10.0.0.1", "10.0.0.2"]
    for name, answered in (("_53._udp.web1.*.docker", True), ("_53._tcp.web1.nginx.docker", False)):
        reply = ask(resolver, name, "SRV")
        assert reply.rcode() == dns.rcode.NOERROR
        assert bool(reply.answer) is answered, name


def test_txt_metadata():
    resolver, _ = make_resolver([Record("ab" * 32, "web1", ("web1", "nginx"), image="nginx:1.25",
                                        metadata=(("compose_project", "shop"), ("compose_service", "web")))])
    reply = ask(resolver, "web1.nginx.docker", "TXT")
    assert [s.decode() for s in reply.answer[0][0].strings] == [
        "id=abababababab", "image=nginx:1.25", "compose_project=shop", "compose_service=web",
    ]


def test_soa_at_the_zone_apex():
    resolver, _ = make_resolver(zone="prod.docker")
    reply = ask(resolver, "prod.docker", "SOA")
    assert reply.answer[0].rdtype == dns.rdatatype.SOA
    assert reply.answer[0].name.to_text() == "prod.docker."


def test_an_alias_outside_the_zone_is_answered_with_its_own_soa():
    resolver, _ = make_resolver()
    assert addresses(ask(resolver, "WWW.example.com")) == ["10.0.0.3"]
    reply = ask(resolver, "www.example.com", "MX")
    assert reply.authority[0].name.to_text() == "www.example.com."


def test_names_outside_the_zone_are_forwarded():
    forwarder = FakeForwarder(upstream_reply())
    resolver, _ = make_resolver(forwarder=forwarder)
    for name in ("example.com", "docker.example.com", "sub.www.example.com"):
        ask(resolver, name)
    assert [dns.message.from_wire(query).question[0].name.to_text() for query in forwarder.asked] == [
        "example.com.", "docker.example.com.", "sub.www.example.com.",
    ]


def test_edns_opt_is_answered_and_unknown_versions_get_badvers():
    resolver, _ = make_resolver()
    reply = ask(resolver, "redis.docker", use_edns=0, payload=4096)
    assert reply.edns == 0 and reply.payload == 1232
    reply = ask(resolver, "redis.docker", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize(("kwargs", "limit"), [({}, 512), ({"use_edns": 0, "payload": 4096}, 1232),
                                               ({"use_edns": 0, "payload": 100}, 512)])
def test_udp_replies_are_truncated_to_the_clients_limit(kwargs, limit):
    resolver, _ = make_resolver([Record(f"{i:064d}", f"c{i}", (f"c{i}", "many"), ipv4=(f"10.1.{i // 250}.{i % 250}",))
                                 for i in range(300)])
    query = dns.message.make_query("many.docker", "A", **kwargs).to_wire()
    udp = exchange(resolver, query)
    assert len(udp) <= limit
    reply = dns.message.from_wire(udp)
    assert reply.flags & dns.flags.TC
    assert 0 < len(addresses(reply)) < 300
    tcp = dns.message.from_wire(exchange(resolver, query, tcp=True))
    assert len(addresses(tcp)) == 300 and not tcp.flags & dns.flags.TC


def test_other_opcodes_get_notimp_and_other_classes_refused():
    resolver, _ = make_resolver()
    message = dns.message.make_query("redis.docker", "A")
    message.set_opcode(dns.opcode.STATUS)
    reply = dns.message.from_wire(exchange(resolver, message.to_wire()), question_only=True)
    assert reply.rcode() == dns.rcode.NOTIMP
    reply = ask(resolver, "redis.docker", rdclass=dns.rdataclass.CH)
    assert reply.rcode() == dns.rcode.REFUSED


def test_before_the_first_sync_local_queries_wait_or_fail_when_the_engine_is_down():
    resolver, store = make_resolver(synced=False)
    store.set_reachable("", False)
    assert ask(resolver, "redis.docker").rcode() == dns.rcode.SERVFAIL


def test_a_deferred_local_query_is_answered_after_the_sync():
    resolver, store = make_resolver(synced=False)
    waiting = gevent.spawn(ask, resolver, "redis1.redis.docker")
    with gevent.Timeout(5):
        while resolver.busy != 1:  # deferred until the first sync
            gevent.sleep(0.001)
    assert not waiting.ready()
    store.replace_all([Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",))])
    assert addresses(waiting.get(timeout=5)) == ["10.0.0.1"]


def test_forwarded_replies_and_failures():
    resolver, _ = make_resolver(forwarder=FakeForwarder(upstream_reply()))
    assert ask(resolver, "example.com").rcode() == dns.rcode.NOERROR
    resolver, _ = make_resolver(forwarder=FakeForwarder(None))
    assert ask(resolver, "example.com").rcode() == dns.rcode.SERVFAIL


def test_a_query_over_tcp_is_forwarded_over_tcp():
    forwarder = FakeForwarder(upstream_reply())
    resolver, _ = make_resolver(forwarder=forwarder)
    ask(resolver, "example.com", tcp=True)
    ask(resolver, "example.org")
    assert forwarder.over_tcp == [True, False]


def test_a_full_forward_pool_answers_servfail_at_once():
    resolver, _ = make_resolver(forward_pool=1, forwarder=FakeForwarder(upstream_reply(), block=0.2))
    first = gevent.spawn(ask, resolver, "one.example.com")
    gevent.sleep(0)  # the first runs until it blocks on the forwarder, holding the pool's one place
    assert ask(resolver, "two.example.com").rcode() == dns.rcode.SERVFAIL
    assert first.get(timeout=5).rcode() == dns.rcode.NOERROR


def test_a_changed_container_is_never_answered_from_a_stale_cache():
    resolver, store = make_resolver()
    assert addresses(ask(resolver, "redis1.redis.docker")) == ["10.0.0.1"]
    assert len(resolver.local_cache) == 2  # under the folded key and the query's exact bytes
    assert addresses(ask(resolver, "REDIS1.redis.docker")) == ["10.0.0.1"]  # from the cache
    store.put(Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.9.9.9",)))
    assert addresses(ask(resolver, "redis1.redis.docker")) == ["10.9.9.9"]
    store.remove("1" * 64)
    assert ask(resolver, "redis1.redis.docker").rcode() == dns.rcode.NXDOMAIN


def test_cached_replies_echo_the_question_and_id_as_asked():
    resolver, _ = make_resolver()
    ask(resolver, "redis1.redis.docker")
    message = dns.message.make_query("ReDiS1.rEdIs.DoCkEr", "A")
    reply = dns.message.from_wire(exchange(resolver, message.to_wire()))
    assert reply.id == message.id
    assert reply.question[0].name.to_text() == "ReDiS1.rEdIs.DoCkEr."
    assert reply.answer[0].name.to_text() == "ReDiS1.rEdIs.DoCkEr."


def test_a_forwarded_answer_is_not_served_once_the_name_becomes_an_alias():
    forwarder = FakeForwarder(upstream_reply("shop.example.org", "192.0.2.1"))
    resolver, store = make_resolver(forwarder=forwarder)
    assert addresses(ask(resolver, "shop.example.org")) == ["192.0.2.1"]
    assert addresses(ask(resolver, "shop.example.org")) == ["192.0.2.1"]
    assert len(forwarder.asked) == 1, "the second answer came from the cache"
    store.put(Record("4" * 64, "shop", ("shop", "web"), aliases=("shop.example.org",), ipv4=("10.0.0.4",)))
    assert addresses(ask(resolver, "shop.example.org")) == ["10.0.0.4"]


def test_replies_never_claim_authenticated_data():
    resolver, _ = make_resolver()
    message = dns.message.make_query("redis.docker", "A")
    message.flags |= dns.flags.AD | dns.flags.CD
    for _ in range(2):  # built, then from the cache
        reply = dns.message.from_wire(exchange(resolver, message.to_wire()))
        assert not reply.flags & dns.flags.AD
        assert reply.flags & dns.flags.CD


def test_two_questions_are_formerr():
    resolver, _ = make_resolver()
    message = DNSRecord.question("redis.docker", "A")
    message.add_question(DNSRecord.question("web.docker", "A").q)
    reply = dns.message.from_wire(exchange(resolver, bytes(message.pack())), question_only=True)
    assert reply.rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("rdtype", ["SOA", "A", "ANY", "TXT", "NS"])
def test_the_zone_apex_exists_without_containers(rdtype):
    resolver, _ = make_resolver([])
    reply = ask(resolver, "docker", rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    if rdtype in ("SOA", "ANY"):
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.SOA]
    elif rdtype == "NS":
        assert reply.answer[0][0].target.to_text() == "ns.dnscock.docker."
    else:
        assert not reply.answer and reply.authority[0].rdtype == dns.rdatatype.SOA


# -- wildcard aliases (RFC 4592) --

WILD = (
    Record("w" * 64, "wild", ("wild", "img"), aliases=("*.app.test", "*.dev.docker"), ipv4=("10.0.9.1",)),
    Record("x" * 64, "exact", ("exact", "img"), aliases=("api.app.test", "deep.below.app.test"), ipv4=("10.0.9.2",)),
    Record("d" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",)),
)


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answer"), [
    ("foo.app.test", "A", "NOERROR", ["10.0.9.1"]),  # covered by *.app.test
    ("a.b.c.app.test", "A", "NOERROR", ["10.0.9.1"]),  # wildcards cover any depth below their closest encloser
    ("FOO.App.Test", "A", "NOERROR", ["10.0.9.1"]),
    ("foo.app.test", "AAAA", "NOERROR", []),  # NODATA: the container has no IPv6 address
    ("foo.app.test", "MX", "NOERROR", []),
    ("api.app.test", "A", "NOERROR", ["10.0.9.2"]),  # an exact alias of another container wins
    ("below.app.test", "A", "NOERROR", []),  # an empty non-terminal exists: not covered (RFC 4592 §2.2.2)
    ("x.below.app.test", "A", "FORWARDED", None),  # its closest encloser has no wildcard: not ours
    ("app.test", "A", "NOERROR", []),  # the wildcard's parent is not covered (the apex of its zone)
    ("app.test", "SOA", "NOERROR", None),
    ("x.dev.docker", "A", "NOERROR", ["10.0.9.1"]),  # inside the domain too
    ("dev.docker", "A", "NOERROR", []),
    ("redis1.dev.docker", "A", "NOERROR", ["10.0.9.1"]),
    ("nothing.docker", "A", "NXDOMAIN", []),
])
def test_wildcard_aliases(name, rdtype, rcode, answer):
    forwarder = FakeForwarder(upstream_reply())
    resolver, _ = make_resolver(WILD, forwarder=forwarder)
    reply = ask(resolver, name, rdtype)
    if rcode == "FORWARDED":
        assert len(forwarder.asked) == 1
        return
    assert not forwarder.asked
    assert dns.rcode.to_text(reply.rcode()) == rcode
    if answer is not None:
        assert addresses(reply) == answer
    if rdtype == "A" and answer:
        assert reply.answer[0].name.to_text().lower() == name.lower() + ".", "the owner is the name asked"
    if rdtype == "SOA":
        assert reply.answer[0].name.to_text() == "app.test."


# -- split horizon --

BOTH = Record("b" * 64, "both", ("both", "img"), ipv4=("172.20.0.2", "172.21.0.2"),
              places=(("172.20.0.2", "172.20.0.0/16", "front"), ("172.21.0.2", "172.21.0.0/16", "back")),
              gateways=("172.20.0.1", "172.21.0.1"))
FRONT_ONLY = Record("f" * 64, "edge", ("edge", "img"), ipv4=("172.20.0.9",),
                    places=(("172.20.0.9", "172.20.0.0/16", "front"),))


@pytest.mark.parametrize(("client", "expected"), [
    ("172.20.0.5", ["172.20.0.2"]),  # on front: front's address only
    ("172.21.0.7", ["172.21.0.2"]),  # on back
    ("127.0.0.1", ["172.20.0.2", "172.21.0.2"]),  # the host: every address, as without split horizon
    ("10.9.9.9", ["172.20.0.2", "172.21.0.2"]),  # a network the container is not on
    ("::ffff:172.21.0.7", ["172.21.0.2"]),  # a dual-stack socket's IPv4-mapped client
    ("172.20.0.1", ["172.20.0.2", "172.21.0.2"]),  # front's gateway: the host's own address, not a container's
    ("::ffff:172.21.0.1", ["172.20.0.2", "172.21.0.2"]),  # back's gateway, on a dual-stack socket
])
def test_split_horizon_answers_each_client_the_addresses_on_its_networks(client, expected):
    resolver, _ = make_resolver([BOTH, FRONT_ONLY])
    query = dns.message.make_query("both.img.docker", "A").to_wire()
    for _ in range(2):  # packed, then from the reply caches (which must never mix two clients' views)
        assert addresses(dns.message.from_wire(exchange(resolver, query, client=client))) == expected
    # A container on one network only: every client gets its address.
    reply = dns.message.from_wire(exchange(resolver, dns.message.make_query("edge.img.docker", "A").to_wire(),
                                           client=client))
    assert addresses(reply) == ["172.20.0.9"]


def test_cached_replies_never_cross_from_one_networks_clients_to_anothers():
    resolver, _ = make_resolver([BOTH])
    query = dns.message.make_query("both.img.docker", "A").to_wire()
    answered = [addresses(dns.message.from_wire(exchange(resolver, query, client=client)))
                for client in ("172.20.0.5", "172.21.0.7", "127.0.0.1", "172.20.0.5", "172.21.0.7", "127.0.0.1")]
    assert answered == [["172.20.0.2"], ["172.21.0.2"], ["172.20.0.2", "172.21.0.2"]] * 2


def test_without_split_horizon_every_client_gets_every_address():
    resolver, _ = make_resolver([BOTH], split_horizon=False)
    query = dns.message.make_query("both.img.docker", "A").to_wire()
    assert addresses(dns.message.from_wire(exchange(resolver, query, client="172.20.0.5"))) == [
        "172.20.0.2", "172.21.0.2"]


# -- the reverse zones of the networks' subnets --

ON_20 = Record("d" * 64, "web", ("web", "img"), ttl=30, ipv4=("192.168.17.5",), ipv6=("fd00:dc::5",),
               places=(("192.168.17.5", "192.168.16.0/20", "front"), ("fd00:dc::5", "fd00:dc::/64", "front")))


def test_reverse_zones_of_the_subnets_are_answered_never_forwarded():
    forwarder = FakeForwarder(upstream_reply())
    resolver, store = make_resolver([ON_20], forwarder=forwarder)
    reply = ask(resolver, "5.17.168.192.in-addr.arpa", "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["web.img.docker."]
    reply = ask(resolver, ipaddress.ip_address("fd00:dc::5").reverse_pointer, "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["web.img.docker."]
    # Another address of the subnet: NXDOMAIN, with the SOA of the zone (a /24 of the /20), authoritative.
    reply = ask(resolver, "6.17.168.192.in-addr.arpa", "PTR")
    assert dns.rcode.to_text(reply.rcode()) == "NXDOMAIN" and reply.flags & dns.flags.AA
    assert [rrset.name.to_text() for rrset in reply.authority] == ["17.168.192.in-addr.arpa."]
    assert dns.rcode.to_text(ask(resolver, "9.31.168.192.in-addr.arpa", "PTR").rcode()) == "NXDOMAIN"
    # Another type at a container's address, and the name between the zone and it: NODATA.
    for name, rdtype in (("5.17.168.192.in-addr.arpa", "A"), ("0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.d.0.0.0.0.d.f.ip6.arpa",
                                                                "PTR")):
        reply = ask(resolver, name, rdtype)
        assert (dns.rcode.to_text(reply.rcode()), reply.answer) == ("NOERROR", []), name
        assert reply.authority[0].rdtype == dns.rdatatype.SOA
    # The apex: SOA and NS.
    reply = ask(resolver, "16.168.192.in-addr.arpa", "SOA")
    assert reply.answer[0].rdtype == dns.rdatatype.SOA and reply.flags & dns.flags.AA
    assert ask(resolver, "16.168.192.in-addr.arpa", "NS").answer[0][0].target.to_text() == "ns.dnscock.docker."
    assert not forwarder.asked
    # Outside the /20 (never widened to 168.192.in-addr.arpa): forwarded.
    ask(resolver, "5.32.168.192.in-addr.arpa", "PTR")
    ask(resolver, "168.192.in-addr.arpa", "SOA")
    assert len(forwarder.asked) == 2
    # The last container of the network gone: its zones go too.
    store.replace_all([])
    ask(resolver, "6.17.168.192.in-addr.arpa", "PTR")
    assert len(forwarder.asked) == 3
