"""-allow-from and -rate-limit on a live server: REFUSED for strangers, truncation and drops over the limit."""

from __future__ import annotations

import socket

import dns.flags
import dns.message

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import rcode


def test_clients_outside_allow_from_get_refused_no_larger_than_their_query(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-allow-from=10.0.0.0/8")
    for tcp in (False, True):
        reply = dnscock.query("www.example.com", tcp=tcp)
        assert rcode(reply) == "REFUSED" and not reply.answer
        assert reply.question[0].name.to_text() == "www.example.com."
    query = dns.message.make_query("x" * 60 + ".example.com", "ANY", use_edns=0).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query, (dnscock.host, dnscock.port))
        reply = sock.recv(65535)
    assert len(reply) <= len(query) and reply[3] & 0x0F == 5
    assert upstream.queries == [] and upstream.tcp_queries == [], "nothing was forwarded for a stranger"


def test_the_default_allows_loopback(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}")
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"


def test_rate_limit_truncates_some_and_drops_the_rest_over_udp_only(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-rate-limit=5",
                            "-rate-limit-slip=2")
    assert rcode(dnscock.query("warm.example.com")) == "NOERROR"  # cached from now on
    burst = 40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for message_id in range(burst):
            query = dns.message.make_query("warm.example.com", "A")
            query.id = message_id
            sock.sendto(query.to_wire(), (dnscock.host, dnscock.port))
        replies = []
        try:
            while True:
                replies.append(dns.message.from_wire(sock.recv(65535)))
        except TimeoutError:
            pass
    answered = [reply for reply in replies if reply.answer]
    truncated = [reply for reply in replies if reply.flags & dns.flags.TC]
    # 5 a second, a second's worth at most: whatever the timing, far fewer than the burst are answered.
    assert 1 <= len(answered) <= 10, len(answered)
    assert len(truncated) >= (burst - 10) // 2 - 1, "every second query over the limit gets TC"
    assert len(replies) < burst, "the rest are dropped"
    assert all(not reply.answer for reply in truncated)
    for _ in range(10):
        assert dnscock.query("warm.example.com", tcp=True).answer, "TCP is never limited"
