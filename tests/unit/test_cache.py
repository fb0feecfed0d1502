"""The reply caches on their own: bounds and expiry, keys, templates rewritten per query, TTLs, what is cacheable.

Pure: replies are built with dnspython, run through ``dnscock.cache``, and read back with dnspython.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from dnscock import cache, wire
from dnscock.cache import CachedReply, ReplyCache, ReplyCaches
from dnscock.query import Query

NAME = "www.example.com."
DAY, HOUR = 86400, 3600
NOW = 1000.0


def query(name: str = NAME, rdtype: str = "A", rdclass: str = "IN", flags: int = dns.flags.RD,
          message_id: int = 0x1234, **kwargs) -> dns.message.QueryMessage:
    message = dns.message.make_query(name, rdtype, rdclass, **kwargs)
    message.flags = flags
    message.id = message_id
    return message


def question_of(message: dns.message.Message | bytes) -> Query:
    parsed = Query(message if isinstance(message, bytes) else message.to_wire(), None, None, 0.0)
    assert parsed.read()
    return parsed


def key(parsed: Query, limit: int) -> tuple:
    """The question key of a query whose reply may have ``limit`` bytes."""
    parsed.limit = limit
    return ReplyCaches.key(parsed)


def answer(asked: dns.message.Message | None = None, *records: tuple[str, int, str, str],
           rcode: int = dns.rcode.NOERROR, authority: tuple[tuple[str, int, str, str], ...] = (),
           additional: tuple[tuple[str, int, str, str], ...] = ()) -> dns.message.Message:
    """A reply to ``asked`` (an A query for NAME by default) with (owner, ttl, type, rdata) records."""
    reply = dns.message.make_response(asked if asked is not None else query())
    reply.set_rcode(rcode)
    for section, rows in ((reply.answer, records), (reply.authority, authority), (reply.additional, additional)):
        for owner, ttl, rdtype, rdata in rows:
            section.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, rdata))
    return reply


def soa(ttl: int, minimum: int, owner: str = "example.com.") -> tuple[str, int, str, str]:
    return owner, ttl, "SOA", f"ns.example.com. hostmaster.example.com. 1 7200 900 1209600 {minimum}"


def a(ttl: int, address: str = "192.0.2.1", owner: str = NAME) -> tuple[str, int, str, str]:
    return owner, ttl, "A", address


def read_entry(reply: bytes, qtype: int = dns.rdatatype.A) -> CachedReply | None:
    """An upstream's reply to a ``qtype`` question, kept at NOW and read as when first served; None: not kept."""
    entry = CachedReply(reply, NOW, qtype)
    return entry if entry.read() else None


def lifetime(reply: dns.message.Message | bytes) -> float | None:
    entry = read_entry(reply if isinstance(reply, bytes) else reply.to_wire())
    return None if entry is None else entry.expires - NOW


def ttls(reply: bytes) -> list[int]:
    message = dns.message.from_wire(reply)
    return [rrset.ttl for section in (message.answer, message.authority, message.additional) for rrset in section]


# -- ReplyCache: bounded, oldest out first, expired on the way out --


def kept(template: bytes, expires: float = float("inf")) -> CachedReply:
    """An entry read already (no TTLs to count down), as ``ReplyCache`` holds them once served."""
    return CachedReply(template, ttl_offsets=(), expires=expires)


def test_a_full_cache_drops_its_oldest_entry_to_make_room():
    replies = ReplyCache(max_entries=2)
    first, second, third = kept(b"1"), kept(b"2"), kept(b"3")
    replies.put("first", first)
    replies.put("second", second)
    replies.put("third", third)
    assert len(replies) == 2
    assert replies.get("first", NOW) is None
    assert replies.get("second", NOW) is second and replies.get("third", NOW) is third


def test_replacing_an_entry_in_a_full_cache_evicts_nothing():
    replies = ReplyCache(max_entries=2)
    replies.put("first", kept(b"1"))
    replies.put("second", kept(b"2"))
    newer = kept(b"1 again")
    replies.put("first", newer)
    assert len(replies) == 2
    assert replies.get("first", NOW) is newer and replies.get("second", NOW) is not None


@pytest.mark.parametrize("max_entries", [0, -1])
def test_a_cache_of_no_entries_stores_nothing(max_entries):
    replies = ReplyCache(max_entries)
    replies.put("key", kept(b"reply"))
    assert len(replies) == 0
    assert replies.get("key", NOW) is None


def test_an_entry_is_served_until_it_expires_and_dropped_when_asked_for_after():
    replies = ReplyCache(max_entries=10)
    entry = kept(b"reply", expires=NOW + 30)
    replies.put("key", entry)
    assert replies.get("key", NOW + 29.99) is entry
    assert replies.get("key", NOW + 30) is None
    assert len(replies) == 0  # gone, not just hidden


def test_discard_and_clear_remove_entries():
    replies = ReplyCache(max_entries=10)
    for name in ("one", "two", "three"):
        replies.put(name, CachedReply(name.encode()))
    replies.discard("two")
    replies.discard("never there")
    assert len(replies) == 2 and replies.get("two", NOW) is None
    replies.clear()
    assert len(replies) == 0


# -- key: what a query decides about the reply it may share --

BASE_LIMIT = wire.CLASSIC_UDP_LIMIT


@pytest.mark.parametrize(("other", "limit"), [
    pytest.param(query("mail.example.com."), BASE_LIMIT, id="the name"),
    pytest.param(query(rdtype="AAAA"), BASE_LIMIT, id="the type"),
    pytest.param(query(rdclass="CH"), BASE_LIMIT, id="the class"),
    pytest.param(query(), 1232, id="the reply size limit"),
    pytest.param(query(use_edns=0), BASE_LIMIT, id="EDNS0 being there"),
    pytest.param(query(use_edns=0, want_dnssec=True), BASE_LIMIT, id="the DO bit"),
    pytest.param(query(flags=dns.flags.RD | dns.flags.AD), BASE_LIMIT, id="the AD bit"),
    pytest.param(query(flags=dns.flags.RD | dns.flags.CD), BASE_LIMIT, id="the CD bit"),
    pytest.param(query(flags=dns.flags.RD | dns.flags.AD | dns.flags.CD), BASE_LIMIT, id="both AD and CD"),
])
def test_a_query_that_differs_by_what_changes_the_answer_gets_its_own_key(other, limit):
    assert key(question_of(other), limit) != key(question_of(query()), BASE_LIMIT)


def test_edns_with_and_without_do_and_ad_versus_cd_are_keys_apart():
    # The table above compares each with a plain query; these pairs must not collapse either.
    plain_edns, with_do = question_of(query(use_edns=0)), question_of(query(use_edns=0, want_dnssec=True))
    assert key(plain_edns, 1232) != key(with_do, 1232)
    ad, cd = question_of(query(flags=dns.flags.AD)), question_of(query(flags=dns.flags.CD))
    assert key(ad, BASE_LIMIT) != key(cd, BASE_LIMIT)


@pytest.mark.parametrize("other", [
    pytest.param(query("WwW.ExAmPle.COM."), id="the name's letter case"),
    pytest.param(query(message_id=0x9999), id="the id"),
    pytest.param(query(flags=0), id="the RD bit"),
])
def test_a_query_that_differs_only_by_what_the_reply_echoes_shares_the_key(other):
    assert key(question_of(other), BASE_LIMIT) == key(question_of(query()), BASE_LIMIT)


# -- for_query: the template rewritten for one query --


def template_entry(template_flags: int, asked_flags: int = dns.flags.RD) -> tuple[CachedReply, dns.message.Message]:
    """An entry made from the reply to an A query for NAME; its header flags set to ``template_flags`` outright."""
    reply = answer(query(flags=asked_flags), a(300), authority=(soa(600, 300),))
    entry = read_entry(reply.to_wire())
    assert entry is not None
    template = entry.template[:2] + template_flags.to_bytes(2, "big") + entry.template[4:]
    return entry.rewritten(template), reply


@pytest.mark.parametrize(("query_flags", "template_flags"), [
    (dns.flags.RD, wire.QR | wire.RA),
    (0, wire.QR | wire.RD | wire.RA),  # the filling query's RD must not leak
    (dns.flags.RD | dns.flags.CD, wire.QR | wire.RA | wire.AD),
    (dns.flags.CD, wire.QR | wire.CD | wire.Z | wire.AA | wire.RA | wire.AD),  # Z cleared
    (dns.flags.RD, wire.QR | wire.CD | wire.Z | wire.TC | wire.RCODE_NXDOMAIN),
    (dns.flags.RD | dns.flags.CD | dns.flags.AD, wire.QR),  # the query's AD is no answer's AD
])
def test_a_cached_reply_gets_the_flags_of_the_query_it_answers(query_flags, template_flags):
    entry, _ = template_entry(template_flags)
    asked = query(flags=query_flags).to_wire()
    flags = int.from_bytes(cache.for_query(entry, question_of(asked)).template[2:4], "big")
    assert flags == wire.reply_flags(query_flags, template_flags)
    assert flags & wire.QR and not flags & wire.Z
    assert flags & (wire.RD | wire.CD) == query_flags & (wire.RD | wire.CD)
    assert flags & (wire.AA | wire.TC | wire.RA | wire.AD | wire.RCODE_MASK) == template_flags & (
        wire.AA | wire.TC | wire.RA | wire.AD | wire.RCODE_MASK)


def test_a_cached_reply_carries_the_question_as_asked_and_the_records_of_the_template():
    entry, original = template_entry(wire.QR | wire.RD | wire.RA)
    asked = query("WWW.Example.COM.", message_id=0x7777).to_wire()
    question = question_of(asked)
    rewritten = cache.for_query(entry, question)
    assert rewritten.template[wire.HEADER_LENGTH:question.end] == asked[wire.HEADER_LENGTH:question.end]
    assert rewritten.template[question.end:] == entry.template[question.end:]
    assert entry.template[wire.HEADER_LENGTH:question.end] != asked[wire.HEADER_LENGTH:question.end]  # untouched
    reply = dns.message.from_wire(rewritten.reply_to(asked, NOW))
    assert reply.id == 0x7777
    assert reply.question[0].name.to_text() == "WWW.Example.COM."
    # The owner name points at the question: it echoes the name as asked too.
    assert reply.answer[0].name.to_text() == "WWW.Example.COM."
    assert reply.answer == original.answer and reply.authority == original.authority  # names compare without case
    assert (rewritten.ttl_offsets, rewritten.ttls, rewritten.expires) == (entry.ttl_offsets, entry.ttls, entry.expires)


def test_a_rewritten_entry_does_not_serve_the_counted_bytes_of_the_original():
    entry, _ = template_entry(wire.QR | wire.RD | wire.RA)
    first = query(message_id=1).to_wire()
    entry.reply_to(first, NOW + 5)  # fills the original's counted bytes for second 5
    asked = query("WWW.EXAMPLE.COM.", message_id=2).to_wire()
    rewritten = cache.for_query(entry, question_of(asked))
    reply = dns.message.from_wire(rewritten.reply_to(asked, NOW + 5))
    assert reply.question[0].name.to_text() == "WWW.EXAMPLE.COM."
    assert ttls(rewritten.reply_to(asked, NOW + 5)) == [295, 595]


# -- render: the id put in, TTLs counted down --


def test_render_puts_the_query_id_in_and_leaves_a_local_reply_as_it_is():
    reply = answer(query(message_id=1), a(30)).to_wire()
    asked = query(message_id=0xBEEF).to_wire()
    rendered = CachedReply(reply).reply_to(asked, NOW + 500)  # no TTL offsets: nothing counts down
    assert rendered == asked[:2] + reply[2:]
    assert dns.message.from_wire(rendered).id == 0xBEEF


@pytest.mark.parametrize(("elapsed", "expected"), [
    (0.0, [300, 600]),
    (0.99, [300, 600]),  # whole seconds only
    (1.0, [299, 599]),
    (10.5, [290, 590]),
    (299.9, [1, 301]),
    (450.0, [0, 150]),  # never below zero
])
def test_render_counts_ttls_down_by_whole_seconds(elapsed, expected):
    entry = read_entry(answer(None, a(300), authority=(soa(600, 400),)).to_wire())
    assert ttls(entry.reply_to(query(message_id=5).to_wire(), NOW + elapsed)) == expected


def test_render_keeps_the_counted_bytes_for_the_rest_of_the_second():
    entry = read_entry(answer(None, a(300)).to_wire())
    first = entry.reply_to(query(message_id=1).to_wire(), NOW + 7.1)
    counted = entry.counted
    second = entry.reply_to(query(message_id=2).to_wire(), NOW + 7.9)
    assert entry.counted is counted and entry.counted_second == 7
    assert first[2:] == second[2:] and (first[:2], second[:2]) == (b"\x00\x01", b"\x00\x02")
    entry.reply_to(query().to_wire(), NOW + 8.0)
    assert entry.counted is not counted and entry.counted_second == 8


def test_render_leaves_the_opt_record_and_its_do_bit_alone():
    asked = query(use_edns=0, want_dnssec=True)
    reply = answer(asked, a(300))
    reply.want_dnssec(True)  # the DO bit echoed: 0x8000 in the OPT record's TTL field
    entry = read_entry(reply.to_wire())
    assert entry is not None
    rendered = dns.message.from_wire(entry.reply_to(asked.to_wire(), NOW + 100))
    assert rendered.ednsflags & dns.flags.DO and rendered.edns == 0
    assert rendered.answer[0].ttl == 200


# -- CachedReply.read: how long an upstream's reply may be served, if at all --


@pytest.mark.parametrize(("reply", "expected"), [
    pytest.param(answer(None, a(300)), 300, id="one answer"),
    pytest.param(answer(None, a(300), (NAME, 120, "TXT", '"x"')), 120, id="the smallest answer TTL"),
    pytest.param(answer(None, (NAME, 900, "CNAME", "web.example.com."), a(60, owner="web.example.com.")), 60,
                 id="a CNAME chain"),
    pytest.param(answer(None, a(7 * DAY)), DAY, id="capped at a day"),
    pytest.param(answer(None, a(300), authority=(("example.com.", 30, "NS", "ns.example.com."),)), 300,
                 id="the answers alone"),
    pytest.param(answer(query(use_edns=0), a(300)), 300, id="with an OPT record without options"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(soa(600, 300),)), 300,
                 id="NXDOMAIN: the SOA minimum"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(soa(200, 900),)), 200,
                 id="NXDOMAIN: the SOA TTL"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(soa(DAY, DAY),)), HOUR,
                 id="NXDOMAIN: capped at an hour"),
    pytest.param(answer(None, authority=(soa(600, 45),)), 45, id="NODATA: the SOA minimum"),
    pytest.param(answer(None, authority=(soa(5 * HOUR, 2 * HOUR),)), HOUR, id="NODATA: capped at an hour"),
])
def test_a_forwarded_reply_lives_as_long_as_its_ttls_say(reply, expected):
    assert lifetime(reply) == expected


def damaged(reply: dns.message.Message, cut: int) -> bytes:
    return reply.to_wire()[:-cut]


def with_flags(reply: dns.message.Message, flags: int) -> bytes:
    data = bytearray(reply.to_wire())
    data[2:4] = (int.from_bytes(data[2:4], "big") | flags).to_bytes(2, "big")
    return bytes(data)


def with_cookie(reply: dns.message.Message) -> dns.message.Message:
    reply.use_edns(0, options=[dns.edns.CookieOption(b"\x01" * 8, b"\x02" * 16)])
    return reply


@pytest.mark.parametrize("reply", [
    pytest.param(answer(None, rcode=dns.rcode.SERVFAIL), id="SERVFAIL"),
    pytest.param(answer(None, a(300), rcode=dns.rcode.SERVFAIL), id="SERVFAIL with records"),
    pytest.param(answer(None, rcode=dns.rcode.REFUSED, authority=(soa(600, 300),)), id="REFUSED"),
    pytest.param(answer(None, rcode=dns.rcode.FORMERR), id="FORMERR"),
    pytest.param(answer(None, rcode=dns.rcode.NOTIMP), id="NOTIMP"),
    pytest.param(with_flags(answer(None, a(300)), wire.TC), id="truncated"),
    pytest.param(with_flags(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(soa(600, 300),)), wire.TC),
                 id="truncated NXDOMAIN"),
    pytest.param(damaged(answer(None, a(300)), 2), id="cut in a record"),
    pytest.param(answer(None, a(300)).to_wire() + b"\x00", id="a stray octet after the records"),
    pytest.param(answer(None, a(300)).to_wire()[:wire.HEADER_LENGTH - 1], id="shorter than a header"),
    pytest.param(answer(None, a(0)), id="TTL 0"),
    pytest.param(answer(None, a(300), (NAME, 0, "TXT", '"x"')), id="one answer with TTL 0"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(soa(0, 300),)), id="NXDOMAIN with SOA TTL 0"),
    pytest.param(answer(None, authority=(soa(600, 0),)), id="NODATA with SOA minimum 0"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN), id="NXDOMAIN without SOA"),
    pytest.param(answer(None), id="NODATA without SOA"),
    pytest.param(answer(None, rcode=dns.rcode.NXDOMAIN, authority=(("example.com.", 600, "NS", "ns.example.com."),)),
                 id="NXDOMAIN with an NS, no SOA"),
    pytest.param(with_cookie(answer(query(use_edns=0), a(300))), id="an OPT with a cookie"),
])
def test_a_forwarded_reply_that_must_not_be_kept_is_not_cached(reply):
    assert lifetime(reply) is None


def test_a_forwarded_entry_knows_where_every_ttl_but_the_opts_sits():
    reply = answer(query(use_edns=0), a(300), authority=(soa(600, 400),),
                   additional=(("ns.example.com.", 50, "A", "192.0.2.2"),)).to_wire()
    entry = read_entry(reply)
    infos = [info for info in wire.records(reply) if info.rtype != wire.TYPE_OPT]
    assert entry.template == reply and entry.stored == NOW and entry.expires == NOW + 300
    assert entry.ttl_offsets == tuple(info.ttl_offset for info in infos)
    assert entry.ttls == (300, 600, 50)
    assert [int.from_bytes(reply[offset:offset + 4], "big") for offset in entry.ttl_offsets] == [300, 600, 50]


def test_a_kept_reply_is_read_when_first_served_and_dropped_then_if_it_must_not_be_kept():
    replies = ReplyCache(max_entries=10)
    good = CachedReply(answer(None, a(300)).to_wire(), NOW, qtype=1)
    uncacheable = CachedReply(answer(None, a(0)).to_wire(), NOW, qtype=1)
    replies.put("good", good)
    replies.put("ttl 0", uncacheable)
    assert good.ttl_offsets is None and uncacheable.ttl_offsets is None  # not read when kept
    assert replies.get("good", NOW + 1) is good and good.expires == NOW + 300 and good.ttls == (300,)
    assert replies.get("ttl 0", NOW + 1) is None and len(replies) == 1


# -- negative answers behind a CNAME chain (RFC 2308 §5): once cached for the CNAME's TTL --

NX_BEHIND_A_CNAME = answer(None, (NAME, DAY, "CNAME", "gone.example.com."), rcode=dns.rcode.NXDOMAIN,
                           authority=(soa(60, 30),))


def test_an_nxdomain_behind_a_cname_lives_for_the_soa_minimum():
    assert lifetime(NX_BEHIND_A_CNAME) == 30


def test_an_nxdomain_behind_a_cname_without_soa_is_not_cached():
    reply = answer(None, (NAME, DAY, "CNAME", "gone.example.com."), rcode=dns.rcode.NXDOMAIN)
    assert lifetime(reply) is None


def test_nodata_at_the_end_of_a_cname_chain_lives_for_the_soa_minimum_and_needs_one():
    chain = (NAME, DAY, "CNAME", "target.example.com.")
    assert lifetime(answer(None, chain, authority=(soa(60, 30),))) == 30
    assert lifetime(answer(None, chain)) is None


def test_a_cname_chain_that_ends_in_the_asked_type_is_positive():
    reply = answer(None, (NAME, DAY, "CNAME", "target.example.com."), ("target.example.com.", 300, "A", "192.0.2.9"))
    assert lifetime(reply) == 300
