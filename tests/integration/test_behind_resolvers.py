"""A real resolver in front of dnscock, and a real validating resolver behind it (Debian's unbound).

In front: unbound with a stub zone for the domain (``stub-prime: yes``, its
recommended setting, and QNAME minimisation on) and every other name
forwarded to dnscock too, as a resolver on a Docker host would be set up.
Priming asks ``docker. NS``; unbound then sends the zone's queries to the NS
name's address on port 53, so dnscock listens on port 53 of a loopback
address of its own. Behind: a validating unbound that finds its zone's data
bogus, which dnscock's forward cache must never hand to a query without CD.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.flags
import pytest

from tests.support.dnscock_process import rcode
from tests.support.fake_engine import FakeEngine
from tests.support.fake_upstream import ANSWER_IP
from tests.support.unbound import SIGNED_ZONE, in_front_of_dnscock, validating_upstream


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEngine]:
    with FakeEngine(tmp_path_factory.mktemp("engine") / "docker.sock") as engine:
        engine.add_container("redis1", image="redis")
        engine.add_container("api", image="backend", env=["DNSDOCK_ALIAS=api.internal.docker"])
        yield engine


@pytest.fixture
def dnscock_behind_unbound(start_dnscock, start_unbound, engine, upstream, port_53_host):
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}",
                            listen=f"{port_53_host}:53")
    dnscock.wait_for_log("connected to the Docker engine")
    unbound = start_unbound(in_front_of_dnscock(f"{port_53_host}:53", forward_to=f"{port_53_host}:53"))
    return dnscock, unbound


def test_a_container_through_a_priming_minimising_unbound(dnscock_behind_unbound, engine):
    _, unbound = dnscock_behind_unbound
    redis1 = engine.find("redis1")
    reply = unbound.query("redis1.redis.docker")
    assert rcode(reply) == "NOERROR"
    assert [rr.address for rr in reply.answer[0]] == [redis1.ip]


def test_a_negative_answer_through_unbound(dnscock_behind_unbound):
    _, unbound = dnscock_behind_unbound
    reply = unbound.query("nobody.docker")
    assert rcode(reply) == "NXDOMAIN"
    assert reply.authority and reply.authority[0].name.to_text() == "docker."


def test_an_alias_under_an_empty_non_terminal_through_unbound(dnscock_behind_unbound, engine):
    dnscock, unbound = dnscock_behind_unbound
    api = engine.find("api")
    reply = unbound.query("api.internal.docker")
    assert rcode(reply) == "NOERROR"
    assert [rr.address for rr in reply.answer[0]] == [api.ip]
    # QNAME minimisation asked for internal.docker on the way, and must have got NODATA.
    assert rcode(unbound.query("internal.docker")) == "NOERROR"


def test_a_forwarded_name_through_unbound(dnscock_behind_unbound, upstream):
    _, unbound = dnscock_behind_unbound
    reply = unbound.query("www.example.org")
    assert rcode(reply) == "NOERROR"
    assert [rr.address for rr in reply.answer[0]] == [ANSWER_IP]
    assert any(arrival.name == "www.example.org." for arrival in upstream.arrivals)


def test_a_validating_upstreams_cd_answer_never_reaches_a_query_without_cd(start_dnscock, start_unbound,
                                                                           make_authority, engine):
    authority = make_authority(SIGNED_ZONE, "a A 192.0.2.1")
    validating = start_unbound(validating_upstream(authority.address))
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={validating.address}")
    for tcp in (False, True):
        checked = dnscock.query(f"a.{SIGNED_ZONE}", tcp=tcp, flags=dns.flags.RD | dns.flags.CD)
        assert rcode(checked) == "NOERROR" and checked.answer  # dig +cd: the unvalidated data
        plain = dnscock.query(f"a.{SIGNED_ZONE}", tcp=tcp, flags=dns.flags.RD)
        assert rcode(plain) == "SERVFAIL", "bogus data served from the forward cache without CD"


def test_unbound_in_front_with_its_own_forwarders_for_other_names(start_dnscock, start_unbound, engine, upstream,
                                                                 port_53_host):
    """The other common setup: unbound sends only the domain to dnscock."""
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", listen=f"{port_53_host}:53")
    dnscock.wait_for_log("connected to the Docker engine")
    unbound = start_unbound(in_front_of_dnscock(f"{port_53_host}:53", forward_to=upstream.address))
    assert rcode(unbound.query("redis1.redis.docker")) == "NOERROR"
    assert rcode(unbound.query("www.example.org")) == "NOERROR"
