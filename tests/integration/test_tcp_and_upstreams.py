"""DNS over TCP (RFC 7766), forwarding over TCP, and upstream health."""

from __future__ import annotations

import socket
import struct
import subprocess

import dns.flags
import dns.message
import dns.query
import dns.rcode

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import rcode
from tests.support.fake_upstream import ANSWER_IP


def framed(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_framed(sock: socket.socket) -> dns.message.Message | None:
    header = sock.recv(2, socket.MSG_WAITALL)
    if len(header) < 2:
        return None
    return dns.message.from_wire(sock.recv(struct.unpack("!H", header)[0], socket.MSG_WAITALL))


def test_dig_over_tcp_is_forwarded_over_tcp(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    output = subprocess.run(["dig", "+tcp", "+short", "+tries=1", "-p", str(dnscock.port), "@127.0.0.1",
                             "www.example.com"], capture_output=True, text=True, check=True).stdout
    assert output.split() == [ANSWER_IP]
    assert upstream.tcp_queries and not upstream.queries


def test_a_truncated_upstream_answer_is_asked_again_over_tcp(start_dnscock, make_upstream):
    truncating = make_upstream("truncate", records=100)
    dnscock = start_dnscock(f"-nameserver={truncating.address}", f"-docker={NO_ENGINE}")
    # Too big for the client's 512 bytes: the client is told to come back by TCP...
    reply = dnscock.query("big.example.com")
    assert reply.flags & dns.flags.TC and not reply.answer
    # ...where it gets every record.
    reply = dnscock.query("big.example.com", tcp=True)
    assert len(reply.answer[0]) == 100
    # With EDNS0 and room enough, UDP gets everything, fetched by dnscock over TCP.
    small = make_upstream("truncate", records=2)
    dnscock = start_dnscock(f"-nameserver={small.address}", f"-docker={NO_ENGINE}")
    reply = dnscock.query("two.example.com", use_edns=0, payload=1232)
    assert len(reply.answer[0]) == 2 and not reply.flags & dns.flags.TC
    assert small.queries and small.tcp_queries


def test_pipelined_queries_are_answered_out_of_order(start_dnscock, make_upstream):
    silent = make_upstream("silent")
    dnscock = start_dnscock(f"-nameserver={silent.address}", f"-docker={NO_ENGINE}", "-timeout=1")
    dnscock.wait_for_log("cannot reach the Docker engine")
    slow = dns.message.make_query("slow.example.com", "A")  # waits for the silent upstream
    quick = dns.message.make_query("quick.docker", "A")  # SERVFAIL at once: no engine
    with socket.create_connection((dnscock.host, dnscock.port), timeout=10) as sock:
        sock.sendall(framed(slow) + framed(quick))
        first, second = read_framed(sock), read_framed(sock)
    assert (first.id, second.id) == (quick.id, slow.id)
    assert first.rcode() == second.rcode() == dns.rcode.SERVFAIL


def test_half_closed_connections_still_get_their_answers(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    queries = [dns.message.make_query(f"n{i}.example.com", "A") for i in range(5)]
    with socket.create_connection((dnscock.host, dnscock.port), timeout=10) as sock:
        sock.sendall(b"".join(framed(query) for query in queries))
        sock.shutdown(socket.SHUT_WR)
        ids = {read_framed(sock).id for _ in queries}
        assert read_framed(sock) is None, "closed once everything was answered"
    assert ids == {query.id for query in queries}


def test_idle_connections_are_closed(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}", "-tcp-idle-timeout=0.3")
    with socket.create_connection((dnscock.host, dnscock.port), timeout=10) as sock:
        assert sock.recv(1) == b"", "the server closed the idle connection"


def test_malformed_tcp_messages_get_formerr(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    garbage = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07exa"
    with socket.create_connection((dnscock.host, dnscock.port), timeout=10) as sock:
        sock.sendall(struct.pack("!H", len(garbage)) + garbage)
        header = sock.recv(2, socket.MSG_WAITALL)
        reply = sock.recv(struct.unpack("!H", header)[0], socket.MSG_WAITALL)
    message_id, flags = struct.unpack("!HH", reply[:4])
    assert message_id == 0x4242 and flags & 0xF == dns.rcode.FORMERR


def test_a_failing_upstream_is_skipped_then_probed_back(start_dnscock, make_upstream):
    flaky, good = make_upstream("silent"), make_upstream("answer", answer_ip="192.0.2.77")
    dnscock = start_dnscock(f"-nameserver={flaky.address},{good.address}", "-timeout=0.4", "-max-fails=2",
                            f"-docker={NO_ENGINE}")
    for i in range(2):
        assert dnscock.addresses(f"a{i}.example.com") == ["192.0.2.77"]
    dnscock.wait_for_log(f"upstream {flaky.address} left 2 queries in a row unanswered")
    asked = len([q for q in flaky.queries if q.question[0].name.to_text() != "."])
    for i in range(5):
        assert dnscock.addresses(f"b{i}.example.com") == ["192.0.2.77"]
    assert len([q for q in flaky.queries if q.question[0].name.to_text() != "."]) == asked, "skipped while down"
    flaky.mode = "answer"  # it recovers: the background probe notices
    dnscock.wait_for_log(f"upstream {flaky.address} answers again")
    assert dnscock.addresses("c.example.com") == [ANSWER_IP]


def test_all_upstreams_down_is_servfail(start_dnscock, make_upstream):
    silent = make_upstream("silent")
    dnscock = start_dnscock(f"-nameserver={silent.address}", "-timeout=0.3", "-max-fails=1", f"-docker={NO_ENGINE}")
    assert rcode(dnscock.query("a.example.com")) == "SERVFAIL"
    dnscock.wait_for_log("left 1 queries in a row unanswered")
    assert rcode(dnscock.query("b.example.com")) == "SERVFAIL"
    asked = [q.question[0].name.to_text() for q in silent.queries]
    assert "b.example.com." not in asked, "SERVFAIL at once: the only upstream is down"
