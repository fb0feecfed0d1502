"""The resolver on its own: local answers by the RFCs, deferral and SERVFAIL; no sockets."""

from __future__ import annotations

import dns.edns
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

from dnscock.config import load_config
from dnscock.records import Record, RecordStore
from dnscock.resolver import Query, Resolver
from dnscock.upstream import UpstreamError


class FakeForwarder:
    """Answers with a canned reply, or raises; records what it was asked."""

    def __init__(self, reply: bytes | None = None, block: float = 0.0) -> None:
        self.reply, self.block, self.asked = reply, block, []
        self.in_flight = 0

    def submit(self, query: bytes, done, question_end: int | None = None) -> None:
        self.in_flight += 1

        def run():
            try:
                answer = self.forward(query)
            except UpstreamError as error:
                answer, problem = None, str(error)
            else:
                problem = ""
            self.in_flight -= 1
            done(answer, problem)

        gevent.spawn(run)

    def forward(self, query: bytes, tcp: bool = False) -> bytes:
        self.asked.append(query)
        if self.block:
            gevent.sleep(self.block)
        if self.reply is None:
            raise UpstreamError("down")
        return query[:2] + self.reply[2:]


def make_resolver(*argv: str, forwarder=None, synced=True) -> tuple[Resolver, RecordStore]:
    store = RecordStore()
    if synced:
        store.replace_all([
            Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",), ttl=None),
            Record("2" * 64, "redis2", ("redis2", "redis"), ipv4=("10.0.0.2",), ipv6=("fd00::2",), ttl=99),
            Record("3" * 64, "web", ("web", "nginx"), aliases=("www.example.com",), ipv4=("10.0.0.3",)),
        ])
    config = load_config(["-ttl=7", "-nameserver=127.0.0.1:9", *argv], {})
    return Resolver(config, store, forwarder or FakeForwarder()), store


def ask(resolver: Resolver, name: str, rdtype="A", *, tcp=False, **kwargs) -> dns.message.Message | None:
    wire = dns.message.make_query(name, rdtype, **kwargs).to_wire()
    reply = resolver.answer_now(Query(wire, DNSRecord.parse(wire), tcp=tcp))
    return None if reply is None else dns.message.from_wire(reply)


def addresses(reply) -> list[str]:
    return sorted(rr.address for rrset in reply.answer for rr in rrset)


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
    store = RecordStore()
    store.replace_all([Record("9" * 64, "lonely", ("lonely", "img"))])
    resolver = Resolver(load_config(["-nameserver=127.0.0.1:9"], {}), store, FakeForwarder())
    wire = dns.message.make_query("lonely.img.docker", "ANY").to_wire()
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
    assert reply.answer[0].rdtype == dns.rdatatype.HINFO
    assert reply.answer[0][0].cpu == b"RFC8482"


def test_ptr_for_container_addresses_and_forwarding_for_others():
    resolver, _ = make_resolver("-environment=prod")
    reply = ask(resolver, "1.0.0.10.in-addr.arpa", "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["redis1.redis.prod.docker."]
    assert reply.flags & dns.flags.AA
    reply = ask(resolver, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR")
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["redis2.redis.prod.docker."]
    assert ask(resolver, "9.9.0.10.in-addr.arpa", "PTR") is None
    assert ask(resolver, "0.10.in-addr.arpa", "PTR") is None


def test_srv_for_exposed_ports_with_addresses_in_additional():
    store = RecordStore()
    store.replace_all([
        Record("1" * 64, "web1", ("web1", "nginx"), ipv4=("10.0.0.1",), ports=((80, "tcp"), (53, "udp"))),
        Record("2" * 64, "web2", ("web2", "nginx"), ipv4=("10.0.0.2",), ports=((80, "tcp"),)),
    ])
    resolver = Resolver(load_config(["-nameserver=127.0.0.1:9"], {}), store, FakeForwarder())
    wire = dns.message.make_query("_80._tcp.nginx.docker", "SRV").to_wire()
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
    assert sorted((rr.port, rr.target.to_text()) for rr in reply.answer[0]) == [
        (80, "web1.nginx.docker."), (80, "web2.nginx.docker."),
    ]
    assert sorted(rr[0].address for rr in reply.additional) == ["10.0.0.1", "10.0.0.2"]
    for name, rcode_expected in (("_53._udp.web1.*.docker", dns.rcode.NOERROR), ("_53._tcp.web1.nginx.docker", None)):
        wire = dns.message.make_query(name, "SRV").to_wire()
        reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
        assert reply.rcode() == dns.rcode.NOERROR
        assert bool(reply.answer) is (rcode_expected is not None), name


def test_txt_metadata():
    store = RecordStore()
    store.replace_all([Record("ab" * 32, "web1", ("web1", "nginx"), image="nginx:1.25",
                              metadata=(("compose_project", "shop"), ("compose_service", "web")))])
    resolver = Resolver(load_config(["-nameserver=127.0.0.1:9"], {}), store, FakeForwarder())
    wire = dns.message.make_query("web1.nginx.docker", "TXT").to_wire()
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
    assert [s.decode() for s in reply.answer[0][0].strings] == [
        "id=abababababab", "image=nginx:1.25", "compose_project=shop", "compose_service=web",
    ]


def test_soa_at_the_zone_apex():
    resolver, _ = make_resolver("-environment=prod")
    reply = ask(resolver, "prod.docker", "SOA")
    assert reply.answer[0].rdtype == dns.rdatatype.SOA
    assert reply.answer[0].name.to_text() == "prod.docker."


def test_an_alias_outside_the_zone_is_answered_with_its_own_soa():
    resolver, _ = make_resolver()
    assert addresses(ask(resolver, "WWW.example.com")) == ["10.0.0.3"]
    reply = ask(resolver, "www.example.com", "MX")
    assert reply.authority[0].name.to_text() == "www.example.com."


def test_names_outside_the_zone_are_not_answered_locally():
    resolver, _ = make_resolver()
    assert ask(resolver, "example.com") is None
    assert ask(resolver, "docker.example.com") is None


def test_edns_opt_is_answered_and_unknown_versions_get_badvers():
    resolver, _ = make_resolver()
    reply = ask(resolver, "redis.docker", use_edns=0, payload=4096)
    assert reply.edns == 0 and reply.payload == 1232
    reply = ask(resolver, "redis.docker", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize(("kwargs", "limit"), [({}, 512), ({"use_edns": 0, "payload": 4096}, 1232),
                                               ({"use_edns": 0, "payload": 100}, 512)])
def test_udp_replies_are_truncated_to_the_clients_limit(kwargs, limit):
    store = RecordStore()
    store.replace_all([Record(f"{i:064d}", f"c{i}", (f"c{i}", "many"), ipv4=(f"10.1.{i // 250}.{i % 250}",))
                       for i in range(300)])
    resolver = Resolver(load_config(["-nameserver=127.0.0.1:9"], {}), store, FakeForwarder())
    wire = dns.message.make_query("many.docker", "A", **kwargs).to_wire()
    udp = resolver.answer_now(Query(wire, DNSRecord.parse(wire)))
    assert len(udp) <= limit
    reply = dns.message.from_wire(udp)
    assert reply.flags & dns.flags.TC
    assert 0 < len(addresses(reply)) < 300
    tcp = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire), tcp=True)))
    assert len(addresses(tcp)) == 300 and not tcp.flags & dns.flags.TC


def test_other_opcodes_get_notimp_and_other_classes_refused():
    resolver, _ = make_resolver()
    message = dns.message.make_query("redis.docker", "A")
    message.set_opcode(dns.opcode.STATUS)
    wire = message.to_wire()
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
    assert reply.rcode() == dns.rcode.NOTIMP
    wire = dns.message.make_query("redis.docker", "A", rdclass=dns.rdataclass.CH).to_wire()
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))))
    assert reply.rcode() == dns.rcode.REFUSED


def test_before_the_first_sync_local_queries_wait_or_fail_when_the_engine_is_down():
    resolver, store = make_resolver(synced=False)
    assert ask(resolver, "redis.docker") is None  # deferred: it will wait for the sync
    store.unavailable = True
    assert ask(resolver, "redis.docker").rcode() == dns.rcode.SERVFAIL


def resolve(resolver: Resolver, name: str) -> dns.message.Message:
    wire = dns.message.make_query(name, "A").to_wire()
    result = gevent.event.AsyncResult()
    resolver.resolve(Query(wire, DNSRecord.parse(wire)), result.set)
    return dns.message.from_wire(result.get(timeout=5))


def test_a_deferred_local_query_is_answered_after_the_sync():
    resolver, store = make_resolver(synced=False)
    waiting = gevent.spawn(resolve, resolver, "redis1.redis.docker")
    gevent.sleep(0.01)
    store.replace_all([Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",))])
    assert addresses(waiting.get(timeout=5)) == ["10.0.0.1"]


def test_forwarded_replies_and_failures():
    upstream = dns.message.make_response(dns.message.make_query("example.com", "A"))
    resolver, _ = make_resolver(forwarder=FakeForwarder(upstream.to_wire()))
    assert resolve(resolver, "example.com").rcode() == dns.rcode.NOERROR
    resolver, _ = make_resolver(forwarder=FakeForwarder(None))
    assert resolve(resolver, "example.com").rcode() == dns.rcode.SERVFAIL


def test_a_full_forward_pool_answers_servfail_at_once():
    upstream = dns.message.make_response(dns.message.make_query("example.com", "A"))
    resolver, _ = make_resolver("-forward-pool=1", forwarder=FakeForwarder(upstream.to_wire(), block=0.2))
    first = gevent.spawn(resolve, resolver, "one.example.com")
    gevent.sleep(0)
    assert resolve(resolver, "two.example.com").rcode() == dns.rcode.SERVFAIL
    assert first.get(timeout=5).rcode() == dns.rcode.NOERROR


def handle(resolver: Resolver, name: str, rdtype="A", **kwargs) -> dns.message.Message:
    wire = dns.message.make_query(name, rdtype, **kwargs).to_wire()
    result = gevent.event.AsyncResult()
    assert resolver.handle(wire, False, result.set)
    return dns.message.from_wire(result.get(timeout=5))


def test_a_changed_container_is_never_answered_from_a_stale_cache():
    resolver, store = make_resolver()
    assert addresses(handle(resolver, "redis1.redis.docker")) == ["10.0.0.1"]
    assert len(resolver.local_cache) == 2  # under the folded key and the query's exact bytes
    assert addresses(handle(resolver, "REDIS1.redis.docker")) == ["10.0.0.1"]  # from the cache
    store.put(Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.9.9.9",)))
    assert addresses(handle(resolver, "redis1.redis.docker")) == ["10.9.9.9"]
    store.remove("1" * 64)
    assert handle(resolver, "redis1.redis.docker").rcode() == dns.rcode.NXDOMAIN


def test_cached_replies_echo_the_question_and_id_as_asked():
    resolver, _ = make_resolver()
    handle(resolver, "redis1.redis.docker")
    message = dns.message.make_query("ReDiS1.rEdIs.DoCkEr", "A")
    result = gevent.event.AsyncResult()
    resolver.handle(message.to_wire(), False, result.set)
    reply = dns.message.from_wire(result.get(timeout=5))
    assert reply.id == message.id
    assert reply.question[0].name.to_text() == "ReDiS1.rEdIs.DoCkEr."
    assert reply.answer[0].name.to_text() == "ReDiS1.rEdIs.DoCkEr."


def test_a_forwarded_answer_is_not_served_once_the_name_becomes_an_alias():
    upstream = dns.message.make_response(dns.message.make_query("shop.example.org", "A"))
    upstream.answer.append(dns.rrset.from_text("shop.example.org.", 300, "IN", "A", "192.0.2.1"))
    forwarder = FakeForwarder(upstream.to_wire())
    resolver, store = make_resolver(forwarder=forwarder)
    assert addresses(handle(resolver, "shop.example.org")) == ["192.0.2.1"]
    assert addresses(handle(resolver, "shop.example.org")) == ["192.0.2.1"]
    assert len(forwarder.asked) == 1, "the second answer came from the cache"
    store.put(Record("4" * 64, "shop", ("shop", "web"), aliases=("shop.example.org",), ipv4=("10.0.0.4",)))
    assert addresses(handle(resolver, "shop.example.org")) == ["10.0.0.4"]


def test_replies_never_claim_authenticated_data():
    resolver, _ = make_resolver()
    message = dns.message.make_query("redis.docker", "A")
    message.flags |= dns.flags.AD | dns.flags.CD
    wire = message.to_wire()
    for _ in range(2):  # built, then from the cache
        result = gevent.event.AsyncResult()
        resolver.handle(wire, False, result.set)
        reply = dns.message.from_wire(result.get(timeout=5))
        assert not reply.flags & dns.flags.AD
        assert reply.flags & dns.flags.CD


def test_two_questions_are_formerr():
    resolver, _ = make_resolver()
    message = DNSRecord.question("redis.docker", "A")
    message.add_question(DNSRecord.question("web.docker", "A").q)
    wire = bytes(message.pack())
    reply = dns.message.from_wire(resolver.answer_now(Query(wire, DNSRecord.parse(wire))), question_only=True)
    assert reply.rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("rdtype", ["SOA", "A", "ANY", "TXT", "NS"])
def test_the_zone_apex_exists_without_containers(rdtype):
    resolver, store = make_resolver()
    store.replace_all([])
    reply = ask(resolver, "docker", rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    if rdtype == "SOA":
        assert reply.answer[0].rdtype == dns.rdatatype.SOA
    else:
        assert not reply.answer and reply.authority[0].rdtype == dns.rdatatype.SOA
