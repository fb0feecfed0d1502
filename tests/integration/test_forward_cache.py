"""The forward cache against a real upstream on loopback: TTLs, negative answers, what is never cached."""

from __future__ import annotations

import time

import dns.flags
import dns.rdatatype

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import rcode
from tests.support.fake_upstream import ANSWER_IP


def asked(upstream, name: str) -> int:
    return sum(1 for query in upstream.queries + upstream.tcp_queries
               if query.question[0].name.to_text().lower() == name.lower())


def test_answers_are_cached_for_their_ttl_which_counts_down(start_dnscock, make_upstream):
    upstream = make_upstream("answer", ttl=30)
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    first = dnscock.query("www.example.com")
    assert first.answer[0].ttl == 30
    time.sleep(1.1)  # let a second pass, so the served TTL has counted down
    second = dnscock.query("WWW.example.COM")
    assert [rr.address for rr in second.answer[0]] == [ANSWER_IP]
    assert second.answer[0].name.to_text() == "WWW.example.COM.", "the question is echoed as asked"
    assert 28 <= second.answer[0].ttl <= 29
    assert asked(upstream, "www.example.com.") == 1


def test_negative_answers_are_cached_for_the_soa_minimum(start_dnscock, make_upstream):
    upstream = make_upstream("answer", ttl=30)
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    for _ in range(3):
        reply = dnscock.query("nxdomain.example.com")
        assert rcode(reply) == "NXDOMAIN"
        assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert asked(upstream, "nxdomain.example.com.") == 1


def test_short_ttls_expire(start_dnscock, make_upstream):
    upstream = make_upstream("answer", ttl=1)
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    dnscock.query("short.example.com")
    time.sleep(1.1)  # past the TTL
    dnscock.query("short.example.com")
    assert asked(upstream, "short.example.com.") == 2


def test_failures_and_truncated_replies_are_never_cached(start_dnscock, make_upstream):
    broken = make_upstream("formerr")
    dnscock = start_dnscock(f"-nameserver={broken.address}", f"-docker={NO_ENGINE}", "-max-fails=0")
    for _ in range(2):
        assert rcode(dnscock.query("broken.example.com")) == "SERVFAIL"
    assert asked(broken, "broken.example.com.") == 2

    truncating = make_upstream("truncate", records=100)
    dnscock = start_dnscock(f"-nameserver={truncating.address}", f"-docker={NO_ENGINE}")
    for _ in range(2):
        assert dnscock.query("big.example.com").flags & dns.flags.TC
    assert len([q for q in truncating.queries if q.question[0].name.to_text() == "big.example.com."]) == 2


def test_cache_size_zero_turns_the_cache_off(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}", "-cache-size=0")
    for _ in range(3):
        dnscock.query("www.example.com")
    assert asked(upstream, "www.example.com.") == 3
