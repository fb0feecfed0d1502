"""What the fuzzer found, pinned down: each of these once broke an invariant of tests/fuzz."""

from __future__ import annotations

import dns.flags
import dns.message
import gevent

from dnscock import wire
from dnscock.answers import reverse_address
from dnscock.records import Record
from dnscock.values import parse_networks
from tests.support.resolver_kit import make_resolver


def handle(resolver, data: bytes, tcp: bool = False) -> bytes:
    replies: list[bytes] = []
    resolver.handle(data, tcp, replies.append, "127.0.0.1")
    with gevent.Timeout(5):
        while not replies:  # a forwarded query is answered by a greenlet
            gevent.sleep(0.001)  # poll interval
    assert len(replies) == 1
    return replies[0]


def test_the_same_bytes_over_tcp_then_udp_get_a_udp_sized_reply():
    resolver, store = make_resolver()
    store.replace_all([Record(f"{i:064x}", f"c{i}", (f"c{i}", "many"), ipv4=(f"10.1.0.{i}",)) for i in range(60)])
    query = dns.message.make_query("many.docker", "A").to_wire()
    over_tcp = handle(resolver, query, tcp=True)
    assert len(over_tcp) > 512 and not dns.message.from_wire(over_tcp).flags & dns.flags.TC
    over_udp = handle(resolver, query)
    assert len(over_udp) <= 512 and dns.message.from_wire(over_udp).flags & dns.flags.TC
    again_tcp = handle(resolver, query, tcp=True)
    assert again_tcp == over_tcp, "and the truncated UDP reply never goes back over TCP"


def test_a_tc_bit_in_a_query_is_not_copied_into_the_reply():
    resolver, _ = make_resolver()
    query = dns.message.make_query("redis1.redis.docker", "A")
    query.flags |= dns.flags.TC
    for tcp in (False, True):
        reply = dns.message.from_wire(handle(resolver, query.to_wire(), tcp=tcp))
        assert reply.answer and not reply.flags & dns.flags.TC


def test_labels_that_are_not_utf8_are_answered_and_echoed():
    resolver, _ = make_resolver()
    data = bytes.fromhex("1234010000010000000000000281b2067265646973310572656469730664" "6f636b65720000010001")
    reply = handle(resolver, data)
    assert reply[12:len(data)] == data[12:], "the question as asked"
    parsed = dns.message.from_wire(reply)
    assert [rr.address for rrset in parsed.answer for rr in rrset] == ["10.0.0.1"]


def test_superscript_digits_are_no_reverse_address():
    assert reverse_address(("1", "0", "¹", "10", "in-addr", "arpa")) is None
    resolver, _ = make_resolver()
    data = bytes.fromhex("2e14000000010000000000000330313002343201b902313007494e2d41444452044152504100000c0001")
    assert dns.message.from_wire(handle(resolver, data)).id == 0x2E14


def test_refusals_never_echo_a_name_over_255_octets_or_grow_past_512():
    too_long = bytes.fromhex("c3d0002000010000000000003f" + "6d" * 63 + "3f" + "6d" * 63 + "3f" + "6d" * 63 + "3e"
                             + "4d" * 62 + "00001c0001")
    reply = wire.short_reply(too_long, wire.RCODE_REFUSED)
    assert reply is not None and len(reply) == 12 and dns.message.from_wire(reply).rcode() == 5
    resolver, _ = make_resolver(allow_from=parse_networks("10.0.0.0/8"))
    assert len(handle(resolver, too_long)) == 12


def test_a_label_holding_a_dot_is_not_an_alias():
    resolver, _ = make_resolver()  # web has the alias www.example.com
    data = bytes.fromhex("000101000001000000000000" "0b7777772e6578616d706c6503636f6d0000010001")  # "www\\.example" "com"
    reply = dns.message.from_wire(handle(resolver, data))
    assert not any(rr.address == "10.0.0.3" for rrset in reply.answer for rr in rrset)


def test_a_formerr_to_a_message_without_a_question_invents_none():
    resolver, _ = make_resolver()
    reply = handle(resolver, bytes.fromhex("123401000000000000000000"))
    assert reply[4:6] == b"\x00\x00" and reply[3] & 0x0F == 1
