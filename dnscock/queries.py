"""Reading the queries the hand reader leaves: dnslib parses them, and the RFCs decide what they get.

``Query.read`` reads plain queries (one question, at most one OPT record,
nothing else) without a library. Everything else comes here: a
response, another opcode, no question or several, records in the answer or
authority section, more additional records (a TSIG, a second OPT), a
compressed question name, or bytes that are not DNS at all.
``read_query`` fills in the question of a query dnscock can answer, as
the hand reader does, or returns an ``Unanswerable`` with the reply it
gets:

* a response, or fewer bytes than a header: nothing (answering a response
  could start a loop);
* an opcode other than QUERY: NOTIMP, a bare header (RFC 1035 §4.1.1;
  genreport's opcode test);
* a message dnslib cannot read: FORMERR, a bare header;
* no question or several, a question name that breaks RFC 1035's limits
  (labels of 64 octets and more, names over 255) or is compressed, more
  than one OPT record, an OPT record outside the additional section or with
  a name other than the root (RFC 6891 §6.1.1): FORMERR, with the first
  question when it is readable.
"""

from __future__ import annotations

from typing import NamedTuple

from dnslib import DNSRecord

from dnscock import wire
from dnscock.query import Query


class Unanswerable(NamedTuple):
    reply: bytes | None  # what to send, or None: nothing
    reason: str  # why, for the dropped counter and the debug log


# dnslib reads only UTF-8 labels, where DNS allows any octet (RFC 2181 §11): such a question is read
# with its high octets masked. Only the verdict is taken from the parse; replies echo the raw question.
_MASK_HIGH_OCTETS = bytes.maketrans(bytes(range(0x80, 0x100)), b"?" * 0x80)


def read_query(query: Query) -> Unanswerable | None:
    """Fills in the question of ``query`` as ``Query.read`` would, or says why it gets no answer of its own."""
    data = query.data
    if len(data) < wire.HEADER_LENGTH:
        return Unanswerable(None, "malformed")
    flags = wire.flags_of(data)
    if flags & wire.QR:
        return Unanswerable(None, "response")
    if wire.opcode(flags):
        return Unanswerable(wire.error_reply(data, wire.RCODE_NOTIMP), "opcode")
    message = _parse(data)
    if message is None:
        return Unanswerable(wire.error_reply(data, wire.RCODE_FORMERR), "malformed")
    end = wire.question_end(data)
    infos = wire.records(data) if end is not None else None
    options = [info for info in infos or () if info.rtype == wire.TYPE_OPT]
    if len(message.questions) != 1 or end is None or infos is None or len(options) > 1:
        return Unanswerable(wire.short_reply(data, wire.RCODE_FORMERR), "malformed")
    opt = None
    if options:
        found = wire.read_opt(data, options[0].owner_offset)
        if found is None or options[0].section != wire.ADDITIONAL:
            return Unanswerable(wire.short_reply(data, wire.RCODE_FORMERR), "malformed")
        opt = found[0]
    labels, name_end = wire.read_name(data, wire.HEADER_LENGTH)
    query.question(labels, name_end, opt)
    return None


def _parse(data: bytes) -> DNSRecord | None:
    message = _parse_as_is(data)
    if message is None:
        end = wire.question_end(data)
        if end is not None and max(data[wire.HEADER_LENGTH:end - 4], default=0) >= 0x80:
            name = data[wire.HEADER_LENGTH:end - 4].translate(_MASK_HIGH_OCTETS)
            message = _parse_as_is(data[:wire.HEADER_LENGTH] + name + data[end - 4:])
    return message


def _parse_as_is(data: bytes) -> DNSRecord | None:
    try:
        return DNSRecord.parse(data)
    except Exception:  # dnslib raises several kinds on malformed input
        return None
