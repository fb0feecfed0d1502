"""Records files: both line forms, every type, wildcards, CNAME chains, PTR, and what a bad line does."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from dnscock.records import Record, RecordStore
from dnscock.static_records import RecordsFileError, StaticFiles, parse
from tests.support.resolver_kit import FakeForwarder, ask, make_resolver

FILE = """\
# hosts-file lines
10.1.0.1   db.lan db-primary.lan
fd00::7    db.lan
# one-record lines
www.example.test   300  A      10.1.0.2
www.example.test        TXT    "hello world" second
mail.example.test       MX     10 mx.example.test
_http._tcp.example.test SRV    0 5 8080 www.example.test
alias.example.test      CNAME  www.example.test
outside.example.test    CNAME  elsewhere.org
chain.example.test      CNAME  alias.example.test
tocontainer.docker      CNAME  redis1.redis.docker
nowhere.docker          CNAME  nobody.docker
*.wild.test        60   A      10.1.0.9
2.0.1.10.in-addr.arpa   PTR    www.example.test
"""
CONTAINER = Record("1" * 64, "redis1", ("redis1", "redis"), ipv4=("10.0.0.1",))


@pytest.fixture
def resolver():
    forwarder = FakeForwarder(dns.message.make_response(dns.message.make_query("x.org", "A")).to_wire())
    resolver, _ = make_resolver([CONTAINER, *parse("test.records", FILE)], forwarder=forwarder)
    return resolver


def answers(reply) -> list[tuple[str, str, str]]:
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rr.to_text())
            for rrset in reply.answer for rr in rrset]


def test_hosts_lines_give_a_and_aaaa_for_each_name(resolver):
    assert answers(ask(resolver, "db.lan")) == [("db.lan.", "A", "10.1.0.1")]
    assert answers(ask(resolver, "db.lan", "AAAA")) == [("db.lan.", "AAAA", "fd00::7")]
    assert answers(ask(resolver, "db-primary.lan")) == [("db-primary.lan.", "A", "10.1.0.1")]


@pytest.mark.parametrize(("name", "rdtype", "expected"), [
    ("www.example.test", "A", [("www.example.test.", "A", "10.1.0.2")]),
    ("www.example.test", "TXT", [("www.example.test.", "TXT", '"hello world" "second"')]),
    ("mail.example.test", "MX", [("mail.example.test.", "MX", "10 mx.example.test.")]),
    ("_http._tcp.example.test", "SRV", [("_http._tcp.example.test.", "SRV", "0 5 8080 www.example.test.")]),
    ("2.0.1.10.in-addr.arpa", "PTR", [("2.0.1.10.in-addr.arpa.", "PTR", "www.example.test.")]),
    ("x.y.wild.test", "A", [("x.y.wild.test.", "A", "10.1.0.9")]),
])
def test_one_record_lines(resolver, name, rdtype, expected):
    reply = ask(resolver, name, rdtype)
    assert answers(reply) == expected
    assert reply.rcode() == dns.rcode.NOERROR


def test_a_type_a_name_lacks_is_nodata_and_ttls_are_the_lines(resolver):
    reply = ask(resolver, "mail.example.test", "A")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert ask(resolver, "www.example.test").answer[0].ttl == 300
    assert ask(resolver, "db.lan").answer[0].ttl == 7  # no TTL given: -ttl


def test_a_cname_carries_the_chain_as_far_as_dnscock_knows_it(resolver):
    assert answers(ask(resolver, "chain.example.test")) == [
        ("chain.example.test.", "CNAME", "alias.example.test."),
        ("alias.example.test.", "CNAME", "www.example.test."),
        ("www.example.test.", "A", "10.1.0.2"),
    ]
    assert answers(ask(resolver, "tocontainer.docker")) == [
        ("tocontainer.docker.", "CNAME", "redis1.redis.docker."), ("redis1.redis.docker.", "A", "10.0.0.1"),
    ]
    outside = ask(resolver, "outside.example.test")  # not ours: the client's resolver follows it
    assert outside.rcode() == dns.rcode.NOERROR
    assert answers(outside) == [("outside.example.test.", "CNAME", "elsewhere.org.")]
    dangling = ask(resolver, "nowhere.docker")
    assert dangling.rcode() == dns.rcode.NXDOMAIN and answers(dangling) == [
        ("nowhere.docker.", "CNAME", "nobody.docker.")]
    assert answers(ask(resolver, "alias.example.test", "CNAME")) == [
        ("alias.example.test.", "CNAME", "www.example.test.")]


def test_addresses_of_a_records_answer_ptr(resolver):
    assert answers(ask(resolver, "1.0.1.10.in-addr.arpa", "PTR")) == [
        ("1.0.1.10.in-addr.arpa.", "PTR", "db-primary.lan."), ("1.0.1.10.in-addr.arpa.", "PTR", "db.lan.")]


def test_a_container_and_a_static_name_are_both_answered():
    static = parse("f", "redis1.redis.docker A 10.9.9.9\n")
    resolver, _ = make_resolver([CONTAINER, *static])
    assert sorted(rr.address for rrset in ask(resolver, "redis1.redis.docker").answer for rr in rrset) == [
        "10.0.0.1", "10.9.9.9"]


@pytest.mark.parametrize(("text", "why"), [
    ("www.example.test A 300.1.1.1\n", "f:1: '300.1.1.1' is not an IP address"),
    ("ok.test A 10.0.0.1\nbad..name A 10.0.0.1\n", "f:2: 'bad..name' is not a domain name"),
    ("x.test AAAA 10.0.0.1\n", "is not an IPv6 address"),
    ("x.test NAPTR 1 2 3\n", "'NAPTR' is not one of A, AAAA, CNAME, TXT, SRV, MX, PTR"),
    ("x.test\n", "no type"),
    ("x.test SRV 0 5 99999 y.test\n", "port '99999' is not a number from 0 to 65535"),
    ("x.test MX y.test\n", "MX takes a preference and an exchange"),
    ('x.test TXT "unterminated\n', "No closing quotation"),
    ("x.test CNAME y.test\nx.test A 10.0.0.1\n", "x.test has a CNAME and other records"),
    ("10.0.0.1\n", "an address with no name"),
])
def test_a_bad_line_is_named_with_its_file_and_line(text, why):
    with pytest.raises(RecordsFileError, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse("f", text)


def test_a_rejected_change_keeps_the_last_version_serving(tmp_path):
    path = tmp_path / "records"
    path.write_text("a.test A 10.0.0.1\n")
    store = RecordStore()
    files = StaticFiles([str(path)], store)
    files.load()
    assert [r.ipv4 for r in store.by_alias("a.test")] == [("10.0.0.1",)]
    path.write_text("a.test A 10.0.0.2\nb.test A nonsense\n")
    files.reload()
    assert [r.ipv4 for r in store.by_alias("a.test")] == [("10.0.0.1",)], "nothing half-loaded"
    assert files.failures[str(path)].startswith(f"{path}:2:")
    path.write_text("a.test A 10.0.0.2\n")
    files.reload()
    assert [r.ipv4 for r in store.by_alias("a.test")] == [("10.0.0.2",)] and not files.failures
