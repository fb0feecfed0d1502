"""Reading the queries the hand reader leaves: dnslib parses them, and the RFCs decide what they get.

``wire.parse_question`` reads plain queries (one question, at most one OPT
record, nothing else) without a library. Everything else comes here: a
response, another opcode, no question or several, records in the answer or
authority section, more additional records (a TSIG, a second OPT), a
compressed question name, or bytes that are not DNS at all.
``read_query`` returns the ``wire.Question`` of a query dnscock can
answer, like the hand reader's, or an ``Unanswerable`` with the reply it
gets:

* a response, or fewer bytes than a header: nothing (answering a response
  could start a loop);
* an opcode other than QUERY: NOTIMP, a bare header (RFC 1035 §4.1.1;
  genreport's opcode test);
* a message dnslib cannot read, or that breaks RFC 1035's limits (labels
  of 64 octets and more, names over 255): FORMERR, a bare header;
* no question or several, a compressed question name, more than one OPT
  record, an OPT record outside the additional section or with a name
  other than the root (RFC 6891 §6.1.1): FORMERR with the first question.
"""

from __future__ import annotations

from typing import NamedTuple

from dnslib import DNSRecord

from dnscock import wire


class Unanswerable(NamedTuple):
    reply: bytes | None  # what to send, or None: nothing
    reason: str  # why, for the dropped counter and the debug log


# dnslib reads only UTF-8 labels, where DNS allows any octet (RFC 2181 §11): such a question is read
# with its high octets masked. Only the verdict is taken from the parse; replies echo the raw question.
_MASK_HIGH_OCTETS = bytes.maketrans(bytes(range(0x80, 0x100)), b"?" * 0x80)


def read_query(data: bytes) -> wire.Question | Unanswerable:
    fields = wire.header_fields(data)
    if fields is None:
        return Unanswerable(None, "malformed")
    message_id, flags = fields
    if flags & wire.QR:
        return Unanswerable(None, "response")
    if wire.opcode(flags):
        return Unanswerable(wire.error_reply(data, wire.RCODE_NOTIMP), "opcode")
    message = _parse(data)
    if message is None:
        return Unanswerable(wire.error_reply(data, wire.RCODE_FORMERR), "malformed")
    end = wire.question_end(data)
    options = [rr for rr in message.ar if rr.rtype == wire.TYPE_OPT]
    if (
        len(message.questions) != 1
        or end is None
        or len(options) > 1
        or any(rr.rtype == wire.TYPE_OPT for rr in message.rr + message.auth)
        or (options and options[0].rname.label != ())
    ):
        return Unanswerable(wire.short_reply(data, wire.RCODE_FORMERR), "malformed")
    qtype, qclass = int.from_bytes(data[end - 4:end - 2], "big"), int.from_bytes(data[end - 2:end], "big")
    if not options:
        return wire.Question(message_id, flags, data[wire.HEADER_LENGTH:end - 4], qtype, qclass, end, None, 0, False)
    # The OPT record's class is the payload size, its TTL holds the version and the DO bit.
    opt = options[0]
    return wire.Question(message_id, flags, data[wire.HEADER_LENGTH:end - 4], qtype, qclass, end, opt.rclass,
                         (opt.ttl >> 16) & 0xFF, bool(opt.ttl & wire.EDNS_DO))


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
        message = DNSRecord.parse(data)
    except Exception:  # dnslib raises several kinds on malformed input
        return None
    # dnslib reads labels longer than 63 octets (and so names over 255) without complaint.
    for question in message.questions:
        labels = question.qname.label
        octets = sum(len(label) + 1 for label in labels) + 1
        if any(len(label) > 63 for label in labels) or octets > wire.MAX_NAME_OCTETS:
            return None
    return message
