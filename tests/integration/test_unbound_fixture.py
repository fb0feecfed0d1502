"""The unbound fixture (tests/support/unbound.py): it starts and stops, validates, and primes stubs as documented."""

from __future__ import annotations

import pytest

from tests.support.dnscock_process import rcode
from tests.support.fake_authority import FakeAuthority
from tests.support.fake_upstream import ANSWER_IP
from tests.support.ports import is_free
from tests.support.unbound import (
    SIGNED_ZONE,
    in_front_of_dnscock,
    refuse_other_names,
    stub_zone,
    validating_upstream,
)


def asked(server: FakeAuthority) -> list[tuple[str, str]]:
    return [(arrival.name, arrival.rdtype) for arrival in server.arrivals]


def test_starts_answers_and_stops_cleanly(start_unbound):
    unbound = start_unbound(refuse_other_names())
    assert rcode(unbound.query("www.example.com")) == "REFUSED"
    assert rcode(unbound.query("www.example.com", tcp=True)) == "REFUSED"
    assert unbound.stop() == 0
    assert is_free(unbound.port)
    assert "error" not in unbound.log()


def test_restarts_on_the_same_port(start_unbound):
    unbound = start_unbound(refuse_other_names())
    port = unbound.port
    unbound.stop()
    unbound.start()
    assert unbound.port == port
    assert rcode(unbound.query("www.example.com")) == "REFUSED"


def test_listens_on_ipv6_loopback(start_unbound):
    unbound = start_unbound(refuse_other_names(), host="::1")
    assert unbound.address.startswith("[::1]:")
    assert rcode(unbound.query("www.example.com")) == "REFUSED"


def test_validating_upstream_is_bogus_without_cd_and_gives_the_data_with_cd(start_unbound, make_authority):
    authority = make_authority(SIGNED_ZONE, "a A 192.0.2.1")
    unbound = start_unbound(validating_upstream(authority.address))
    assert rcode(unbound.query("a.signed.test")) == "SERVFAIL"
    with_cd = unbound.query("a.signed.test", cd=True)
    assert rcode(with_cd) == "NOERROR"
    assert [rr.address for rr in with_cd.answer[0]] == ["192.0.2.1"]
    # The data unbound now holds, checked or not, still goes to no query without CD.
    assert rcode(unbound.query("a.signed.test")) == "SERVFAIL"
    assert ("signed.test.", "DNSKEY") in asked(authority)


def test_validating_upstream_gives_the_data_with_cd_first_too(start_unbound, make_authority):
    authority = make_authority(SIGNED_ZONE, "a A 192.0.2.1")
    unbound = start_unbound(validating_upstream(authority.address))
    assert rcode(unbound.query("a.signed.test", cd=True)) == "NOERROR"
    assert rcode(unbound.query("a.signed.test")) == "SERVFAIL"


@pytest.mark.parametrize("glue_is_the_stub", [False, True], ids=["glue-elsewhere", "glue-is-the-stub"])
def test_a_primed_stub_is_asked_for_ns_then_queries_go_to_port_53_of_the_glue(
        start_unbound, make_authority, port_53_host, glue_is_the_stub):
    records = ("@ NS ns.dnscock", f"ns.dnscock A {port_53_host}")
    stub = make_authority("docker", *records, "web A 10.0.0.1", host=port_53_host if glue_is_the_stub else "127.0.0.1")
    at_port_53 = make_authority("docker", *records, "web A 10.0.0.53", host=port_53_host, port=53)
    unbound = start_unbound(in_front_of_dnscock(stub.address))
    reply = unbound.query("web.docker")
    assert [rr.address for rr in reply.answer[0]] == ["10.0.0.53"]
    assert asked(stub) == [("docker.", "NS")]
    assert asked(at_port_53) == [("web.docker.", "A")]


def test_a_primed_stub_without_ns_records_fails_the_whole_zone(start_unbound, make_authority):
    stub = make_authority("docker", "web A 10.0.0.1")
    unbound = start_unbound(in_front_of_dnscock(stub.address))
    assert rcode(unbound.query("web.docker")) == "SERVFAIL"
    assert asked(stub) == [("docker.", "NS")]


def test_an_unprimed_stub_is_asked_on_its_own_port(start_unbound, make_authority):
    stub = make_authority("docker", "web A 10.0.0.1")
    unbound = start_unbound(in_front_of_dnscock(stub.address, prime=False))
    assert [rr.address for rr in unbound.query("web.docker").answer[0]] == ["10.0.0.1"]
    assert asked(stub) == [("web.docker.", "A")]


def test_in_front_of_dnscock_forwards_other_names(start_unbound, make_authority, upstream, port_53_host):
    dnscock = make_authority("docker", "@ NS ns.dnscock", f"ns.dnscock A {port_53_host}", "web A 10.0.0.53",
                             host=port_53_host, port=53)
    unbound = start_unbound(in_front_of_dnscock(dnscock.address, forward_to=upstream.address))
    assert [rr.address for rr in unbound.query("web.docker").answer[0]] == ["10.0.0.53"]
    assert [rr.address for rr in unbound.query("www.example.com").answer[0]] == [ANSWER_IP]
    assert [arrival.name for arrival in upstream.arrivals] == ["www.example.com."]
    assert asked(dnscock) == [("docker.", "NS"), ("web.docker.", "A")]


def test_stub_zones_under_test_reach_their_servers(start_unbound, make_authority):
    """unbound answers test. itself (RFC 6761): stub_zone lets the zone's names through."""
    authority = make_authority("plain.test", "a A 192.0.2.7")
    unbound = start_unbound(stub_zone("plain.test", authority.address), refuse_other_names())
    assert [rr.address for rr in unbound.query("a.plain.test").answer[0]] == ["192.0.2.7"]
