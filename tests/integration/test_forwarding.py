"""Forwarding to real (tiny) upstream nameservers on loopback."""

from __future__ import annotations

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import rcode
from tests.support.fake_upstream import ANSWER_IP


def test_forwards_to_upstream_and_restores_the_id(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    reply = dnscock.query("www.example.com", "A")
    assert rcode(reply) == "NOERROR"
    assert [rr.address for rr in reply.answer[0]] == [ANSWER_IP]
    assert upstream.queries[-1].question[0].name.to_text() == "www.example.com."


def test_silent_upstream_gives_servfail_within_the_timeout(start_dnscock, make_upstream):
    silent = make_upstream("silent")
    dnscock = start_dnscock(f"-nameserver={silent.address}", "-timeout=0.5", f"-docker={NO_ENGINE}")
    # The client's own timeout (5 s, ten times dnscock's) bounds the wait: a hang fails the test.
    reply = dnscock.query("www.example.com", "A", timeout=5)
    assert rcode(reply) == "SERVFAIL"
    assert silent.queries, "the query reached the silent upstream"


def test_formerr_upstream_gives_servfail(start_dnscock, make_upstream):
    broken = make_upstream("formerr")
    dnscock = start_dnscock(f"-nameserver={broken.address}", f"-docker={NO_ENGINE}")
    assert rcode(dnscock.query("www.example.com")) == "SERVFAIL"


def test_fails_over_to_the_next_nameserver(start_dnscock, make_upstream):
    silent, broken, good = make_upstream("silent"), make_upstream("formerr"), make_upstream("answer")
    dnscock = start_dnscock(
        f"-nameserver={silent.address},{broken.address}", f"-nameserver={good.address}",
        "-timeout=1.5", f"-docker={NO_ENGINE}",
    )
    reply = dnscock.query("www.example.com")
    assert rcode(reply) == "NOERROR"
    assert [rr.address for rr in reply.answer[0]] == [ANSWER_IP]
    assert silent.queries and broken.queries and good.queries


def test_refused_port_gives_servfail_at_once(start_dnscock, make_upstream):
    closed = make_upstream("answer")
    closed.close()  # nothing listens there any more: the kernel answers port unreachable
    dnscock = start_dnscock(f"-nameserver={closed.address}", "-timeout=30", f"-docker={NO_ENGINE}")
    # dnscock would wait 30 s for an answer; ICMP port unreachable must end the wait long before.
    assert rcode(dnscock.query("www.example.com", timeout=10)) == "SERVFAIL"


def test_local_names_get_servfail_while_the_engine_is_unreachable(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    dnscock.wait_for_log("cannot reach the Docker engine")
    assert rcode(dnscock.query("redis.docker")) == "SERVFAIL"
    assert not upstream.queries, "names under the domain are never forwarded"
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"
