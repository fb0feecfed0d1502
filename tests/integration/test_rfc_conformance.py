"""Replies correct to the letter, as real resolvers and genreport (ISC's DNS compliance tester) check them.

The real ``python -m dnscock`` on loopback, its containers from the fake
Engine API server (``tests/support/fake_engine``, in this process), upstreams
from ``tests/support/fake_upstream.py``. Each test here is one defect that
resolvers in front of dnscock tripped over (issue 12); every one failed
before the query path was rebuilt around one home per rule.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.dnscock_process import DnscockProcess, rcode
from tests.support.fake_engine import FakeEngine
from tests.support.fake_upstream import FakeUpstream

Z = 0x0040  # the reserved header bit (RFC 1035 §4.1.1); dnspython has no name for it
DO = dns.flags.DO


class ValidatingUpstream(FakeUpstream):
    """Answers like a validating resolver for a zone whose signatures are bogus (RFC 4035 §3.2.2):
    SERVFAIL without CD, the (unvalidated) data with CD."""

    def reply_to(self, query: dns.message.Message, tcp: bool) -> dns.message.Message | None:
        reply = super().reply_to(query, tcp)
        if reply is not None and not query.flags & dns.flags.CD:
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.SERVFAIL)
        if reply is not None:
            reply.flags |= query.flags & dns.flags.CD
        return reply


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEngine]:
    with FakeEngine(tmp_path_factory.mktemp("engine") / "docker.sock") as engine:
        engine.add_container("redis1", image="redis")
        engine.add_container("web", image="nginx",
                             env=["DNSDOCK_ALIAS=api.internal.docker,www.example.com,x.y.www.example.com"])
        yield engine


@pytest.fixture
def dnscock(start_dnscock, engine, upstream) -> DnscockProcess:
    server = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", "-ttl=5")
    server.wait_for_log("connected to the Docker engine")
    return server


def ask(server: DnscockProcess, name: str, rdtype: str = "A", *, flags: int | None = None, tcp: bool = False,
        **make_kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **make_kwargs)
    if flags is not None:
        query.flags = flags
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=5)


def test_a_cd_answer_from_a_validating_upstream_is_never_served_to_a_query_without_cd(start_dnscock, engine):
    validating = ValidatingUpstream()
    try:
        server = start_dnscock(f"-docker={engine.url}", f"-nameserver={validating.address}")
        for tcp in (False, True):
            name = f"a{int(tcp)}.signed.test"
            checked = ask(server, name, flags=dns.flags.RD | dns.flags.CD, tcp=tcp)
            assert rcode(checked) == "NOERROR" and checked.answer and checked.flags & dns.flags.CD
            plain = ask(server, name, flags=dns.flags.RD, tcp=tcp)
            assert rcode(plain) == "SERVFAIL", "the bogus data was served from the cache to a query without CD"
            assert not plain.flags & dns.flags.CD
            again = ask(server, name, flags=dns.flags.RD | dns.flags.CD, tcp=tcp)
            assert rcode(again) == "NOERROR" and again.flags & dns.flags.CD
    finally:
        validating.close()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_local_replies_echo_this_querys_cd_and_never_z(dnscock, tcp):
    first = ask(dnscock, "redis1.redis.docker", flags=dns.flags.CD | Z, tcp=tcp)  # dig +norec +cd +zflag
    assert first.flags & dns.flags.CD and not first.flags & Z
    second = ask(dnscock, "redis1.redis.docker", flags=0, tcp=tcp)  # dig +norec, from the reply cache
    assert not second.flags & (dns.flags.CD | Z | dns.flags.RD)
    third = ask(dnscock, "REDIS1.redis.docker", flags=dns.flags.RD, tcp=tcp)  # another case, the template
    assert third.flags & dns.flags.RD and not third.flags & (dns.flags.CD | Z)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(("name", "rdtype", "expected"), [
    ("redis1.redis.docker", "A", "NOERROR"), ("nope.docker", "A", "NXDOMAIN"),
    ("redis1.redis.docker", "MX", "NOERROR"), ("docker", "SOA", "NOERROR"), ("redis.docker", "A", "BADVERS"),
])
def test_the_do_bit_is_echoed_in_every_local_reply(dnscock, name, rdtype, expected, tcp):
    version = 1 if expected == "BADVERS" else 0
    for _ in range(2):  # packed, then from the reply cache
        reply = ask(dnscock, name, rdtype, use_edns=version, ednsflags=DO, tcp=tcp)
        assert rcode(reply) == expected
        assert reply.ednsflags & DO, "RFC 3225 §3: the DO bit is copied into the response"
        assert reply.edns == 0


def test_another_opcode_gets_a_bare_notimp(dnscock):
    for flags in (0, dns.flags.RD | dns.flags.CD | dns.flags.AD | dns.flags.AA | dns.flags.RA | Z | dns.flags.TC):
        query = dns.message.Message()  # dig +header-only +opcode=15 (and opcodeflg: every flag set)
        query.flags = flags
        query.set_opcode(15)
        reply = dns.query.udp(query, dnscock.host, port=dnscock.port, timeout=5)
        assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == 15
        # genreport: no ra, rd, cd, ad, aa or z in a reply to opcode 15.
        assert reply.flags & ~(dns.flags.QR | 0x7800 | 0x000F) == 0
        assert not reply.question


def test_the_apex_has_an_ns_whose_name_answers_the_listen_address(dnscock):
    reply = ask(dnscock, "docker", "NS")
    assert reply.flags & dns.flags.AA
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["ns.dnscock.docker."]
    glue = {rrset.name.to_text(): [rr.address for rr in rrset] for rrset in reply.additional}
    assert glue == {"ns.dnscock.docker.": ["127.0.0.1"]}
    assert [rr.address for rr in ask(dnscock, "ns.dnscock.docker").answer[0]] == ["127.0.0.1"]
    soa = ask(dnscock, "docker", "SOA").answer[0][0]
    assert soa.mname.to_text() == "ns.dnscock.docker."
    assert rcode(ask(dnscock, soa.mname.to_text())) == "NOERROR"
    between = ask(dnscock, "dnscock.docker")
    assert rcode(between) == "NOERROR" and not between.answer, "an empty non-terminal (RFC 8020)"


def test_the_ns_address_can_be_given(start_dnscock, engine, upstream):
    server = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}",
                           "-ns-address=192.168.7.53,fd00::53", listen="0.0.0.0:0")
    server.wait_for_log(r"NS ns\.dnscock\.docker\. at 192\.168\.7\.53, fd00::53")
    reply = ask(server, "docker", "NS")
    glue = sorted(rr.to_text() for rrset in reply.additional for rr in rrset)
    assert glue == ["192.168.7.53", "fd00::53"]


def test_names_above_an_alias_are_empty_non_terminals(dnscock):
    assert rcode(ask(dnscock, "api.internal.docker")) == "NOERROR"
    above = ask(dnscock, "internal.docker")
    assert rcode(above) == "NOERROR" and not above.answer, "RFC 8020: a name with names below it exists"
    assert above.authority[0].name.to_text() == "docker."
    # Outside the domain, www.example.com is the apex of a zone of its own: y.www.example.com is
    # between two aliases (empty), and names below it that are nobody's are forwarded.
    between = ask(dnscock, "y.www.example.com")
    assert rcode(between) == "NOERROR" and not between.answer
    assert between.authority[0].name.to_text() == "www.example.com."
    assert rcode(ask(dnscock, "x.y.www.example.com")) == "NOERROR"
    forwarded = ask(dnscock, "other.www.example.com")
    assert [rr.address for rr in forwarded.answer[0]] == ["192.0.2.53"]  # the fake upstream's answer


def test_the_soa_names_are_canonical_whatever_the_case_of_the_question(dnscock):
    for name in ("nope.docker", "NoPe.DoCkEr", "NOPE.DOCKER"):  # the first fills the reply cache
        reply = ask(dnscock, name)
        assert rcode(reply) == "NXDOMAIN"
        soa = reply.authority[0]
        assert soa.name.to_wire() == b"\x06docker\x00"
        assert soa[0].mname.to_wire() == b"\x02ns\x07dnscock\x06docker\x00"
        assert soa[0].rname.to_wire() == b"\x0ahostmaster\x06docker\x00"


def test_the_zone_of_an_alias_outside_the_domain_is_consistent(dnscock):
    nodata = ask(dnscock, "www.example.com", "MX")
    assert rcode(nodata) == "NOERROR" and not nodata.answer
    owner = nodata.authority[0].name
    soa = ask(dnscock, owner.to_text(), "SOA")
    assert soa.answer and soa.answer[0].rdtype == dns.rdatatype.SOA and soa.answer[0].name == owner
    assert soa.answer[0][0].serial == nodata.authority[0][0].serial


def test_the_soa_serial_only_grows_across_restarts(start_dnscock, engine, upstream):
    serials = []
    for _ in range(2):
        server = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}")
        server.wait_for_log("connected to the Docker engine")
        serials.append(ask(server, "docker", "SOA").answer[0][0].serial)
        server.stop()
        time.sleep(1.1)  # a restart a second later: the table is built anew from the start
    assert serials[1] > serials[0] >= int(time.time()) - 60


def test_a_second_opt_record_or_one_with_a_name_is_formerr(dnscock):
    wire = dns.message.make_query("redis1.redis.docker", "A", use_edns=0).to_wire()
    opt = wire[-11:]
    two = wire[:10] + b"\x00\x02" + wire[12:] + opt  # ARCOUNT 2, the OPT record twice
    named = wire[:-11] + b"\x01x" + opt  # the OPT record owned by "x." instead of the root
    for message in (two, named):
        reply = dns.message.from_wire(exchange_raw(dnscock, message), question_only=True)
        assert reply.rcode() == dns.rcode.FORMERR  # RFC 6891 §6.1.1


def exchange_raw(server: DnscockProcess, message: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(message, (server.host, server.port))
        return sock.recv(65535)


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_not_implemented(dnscock, rdtype):
    reply = ask(dnscock, "docker", rdtype, tcp=True)
    assert rcode(reply) == "NOTIMP" and not reply.answer


def test_qclass_any_under_the_domain_is_answered_without_aa(dnscock):
    reply = ask(dnscock, "redis1.redis.docker", "A", rdclass=dns.rdataclass.ANY)
    assert rcode(reply) == "NOERROR" and reply.answer
    assert not reply.flags & dns.flags.AA, "RFC 6895 §3.2: no server can vouch for every class"
    assert rcode(ask(dnscock, "redis1.redis.docker", "A", rdclass=dns.rdataclass.CH)) == "REFUSED"


def test_badvers_has_no_aa_and_no_soa(dnscock):
    for name in ("docker", "redis1.redis.docker", "nope.docker"):
        reply = ask(dnscock, name, "SOA", use_edns=1)
        assert reply.rcode() == dns.rcode.BADVERS
        assert not reply.flags & dns.flags.AA and not reply.answer and not reply.authority
