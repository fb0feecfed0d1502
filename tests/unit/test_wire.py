"""The wire toolkit on its own: the one label walk, the OPT reader, the header splice, the record walk."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rrset
import pytest

from dnscock import wire
from dnscock.query import Query


def label(length: int, octet: bytes = b"a") -> bytes:
    return bytes([length]) + octet * length


@pytest.mark.parametrize(("name", "expected"), [
    (b"\x00", ()),
    (b"\x03WwW\x07Example\x03COM\x00", ("www", "example", "com")),
    (b"\x03a.b\x01c\x00", ("a.b", "c")),  # a dot inside a label stays inside it
    (b"\x02\xc3\xa9\x00", ("\xc3\xa9",)),  # any octet (RFC 2181 §11): only ASCII letters fold
    (label(63) + b"\x00", ("a" * 63,)),
    (label(63) * 3 + label(61) + b"\x00", ("a" * 63,) * 3 + ("a" * 61,)),  # 255 octets in all
])
def test_read_name_reads_labels_lower_case_and_where_the_name_ends(name, expected):
    assert wire.read_name(b"pad" + name + b"rest", 3) == (expected, 3 + len(name))


@pytest.mark.parametrize("name", [
    pytest.param(label(64) + b"\x00", id="a label of 64 octets"),
    pytest.param(label(63) * 3 + label(62) + b"\x00", id="256 octets"),
    pytest.param(b"\x03www\xc0\x0c", id="a compression pointer"),
    pytest.param(b"\x03www\x40abc\x00", id="a reserved label type"),
    pytest.param(b"\x03www\x07exam", id="cut short"),
    pytest.param(b"\x03www", id="no root label"),
])
def test_read_name_refuses_what_rfc_1035_does_not_allow_in_a_question(name):
    assert wire.read_name(name, 0) is None


def test_read_opt_reads_payload_version_and_do_and_insists_on_the_root_name():
    query = dns.message.make_query("example.com", "A", use_edns=0, payload=1400, want_dnssec=True).to_wire()
    end = wire.question_end(query)
    assert wire.read_opt(query, end) == (wire.Opt(1400, 0, True), len(query))
    not_root = query[:end] + b"\x01" + query[end + 1:]
    assert wire.read_opt(not_root, end) is None
    assert wire.read_opt(query[:-1], end) is None


@pytest.mark.parametrize("query_flags", [0, wire.RD, wire.CD, wire.RD | wire.CD | wire.AD | wire.Z])
@pytest.mark.parametrize("reply_flags", [wire.QR | wire.RA, wire.QR | wire.AA | wire.TC | wire.RD | wire.CD | wire.Z
                                         | wire.AD | wire.RCODE_NXDOMAIN])
def test_spliced_puts_the_querys_id_and_flags_on_a_reply_made_for_another(query_flags, reply_flags):
    query = b"\xbe\xef" + query_flags.to_bytes(2, "big") + b"\x00" * 8
    reply = b"\x12\x34" + reply_flags.to_bytes(2, "big") + b"rest of the reply"
    spliced = wire.spliced(query, reply)
    assert spliced[:2] == b"\xbe\xef" and spliced[4:] == reply[4:]
    assert wire.flags_of(spliced) == wire.reply_flags(query_flags, reply_flags)


def answer_with(*records: str) -> bytes:
    reply = dns.message.make_response(dns.message.make_query("www.example.com", "A", use_edns=0))
    for text in records:
        reply.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", *text.split(" ", 1)))
    return reply.to_wire()


def test_records_finds_every_record_and_the_check_alone_agrees():
    reply = answer_with("A 192.0.2.1", "TXT hello")
    infos = wire.records(reply)
    assert [(info.rtype, info.ttl, info.section) for info in infos] == [
        (wire.TYPE_A, 300, wire.ANSWER), (wire.TYPE_TXT, 300, wire.ANSWER), (wire.TYPE_OPT, 0, wire.ADDITIONAL)]
    assert reply[infos[0].owner_offset] >= 0xC0  # the owner is a pointer to the question
    assert wire.records(reply, keep=False) == []


@pytest.mark.parametrize("damage", [
    pytest.param(lambda reply: reply[:-1], id="cut short"),
    pytest.param(lambda reply: reply + b"\x00", id="a stray octet"),
    pytest.param(lambda reply: reply[:4] + b"\x00\x01\x00\x09" + reply[8:], id="more answers than there are"),
    pytest.param(lambda reply: reply[:wire.question_end(reply)] + b"\x80" + reply[wire.question_end(reply) + 1:],
                 id="a reserved label type"),
])
def test_a_malformed_message_has_no_records_and_fails_the_check(damage):
    broken = damage(answer_with("A 192.0.2.1"))
    assert wire.records(broken) is None and wire.records(broken, keep=False) is None


def test_a_plain_query_is_read_by_hand_and_anything_else_is_left_to_the_slow_reader():
    plain = dns.message.make_query("WWW.example.com", "AAAA", use_edns=0, payload=4096, want_dnssec=True)
    query = Query(plain.to_wire(), None, ("192.0.2.7", 5353), 0.0)
    assert query.read()
    assert (query.labels, query.qtype, query.qclass, query.client) == (("www", "example", "com"), 28, 1, "192.0.2.7")
    assert query.opt == wire.Opt(4096, 0, True) and query.end == len(plain.to_wire()) - wire.OPT_LENGTH
    assert query.reply_limit(1232) == 1232 and Query(plain.to_wire(), None, None, 0.0, tcp=True).reply_limit(1232) \
        == wire.TCP_LIMIT
    response = dns.message.make_response(plain)
    two_questions = plain.to_wire()[:5] + b"\x02" + plain.to_wire()[6:]
    for message in (response.to_wire(), two_questions, plain.to_wire() + b"\x00"):
        assert not Query(message, None, None, 0.0).read()
