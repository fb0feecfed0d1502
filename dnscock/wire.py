"""DNS wire-format helpers that work on raw bytes (RFC 1035 §4.1).

Used where parsing a whole message would be wasted work or impossible: to
answer FORMERR to a message whose header is all that can be read, to put a
client's id back on an upstream reply, and to compare question sections.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER_LENGTH = 12
CLASSIC_UDP_LIMIT = 512
MAX_NAME_OCTETS = 255  # RFC 1035 §2.3.4, length octets and the root included
QR = 0x8000
OPCODE_MASK = 0x7800
RD = 0x0100
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_REFUSED = 5


def header_fields(data: bytes) -> tuple[int, int] | None:
    """(id, flags) of a message, or None when it has no complete header."""
    if len(data) < HEADER_LENGTH:
        return None
    return struct.unpack_from("!HH", data)


def _reply_header(data: bytes, rcode: int, tc: bool = False) -> tuple[int, int] | None:
    """(id, flags) of a reply to ``data``: its id, opcode and RD bit kept, QR and RA set; None for a response."""
    fields = header_fields(data)
    if fields is None or fields[1] & QR:
        return None
    message_id, flags = fields
    return message_id, QR | (flags & (OPCODE_MASK | RD)) | 0x0080 | (rcode & 0xF) | (0x0200 if tc else 0)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply (no sections) to ``data`` with ``rcode``, or None when unreadable.

    Keeps the id, opcode and RD bit of the query; never answers a response.
    """
    header = _reply_header(data, rcode)
    return None if header is None else _HEADER.pack(*header, 0, 0, 0, 0)


def short_reply(data: bytes, rcode: int, tc: bool = False) -> bytes | None:
    """A reply no larger than the query: its header and first question (when readable), no records.

    For clients dnscock will not serve (REFUSED) or serves only over TCP (TC).
    """
    header = _reply_header(data, rcode, tc)
    if header is None:
        return None
    end = question_end(data)
    if end is None or end > CLASSIC_UDP_LIMIT:
        return _HEADER.pack(*header, 0, 0, 0, 0)
    return _HEADER.pack(*header, 1, 0, 0, 0) + data[HEADER_LENGTH:end]


def with_id(message: bytes, message_id: int) -> bytes:
    return struct.pack("!H", message_id) + message[2:]


def question_end(data: bytes) -> int | None:
    """Offset just past the first question, or None when it is not readable.

    Only plain labels are accepted: a query's first question cannot point
    back into anything but the header.
    """
    if len(data) < HEADER_LENGTH or struct.unpack_from("!H", data, 4)[0] < 1:
        return None
    offset = HEADER_LENGTH
    while offset < len(data) and offset - HEADER_LENGTH < MAX_NAME_OCTETS:
        length = data[offset]
        if length == 0:
            end = offset + 1 + 4  # the root label, then QTYPE and QCLASS
            return end if end <= len(data) and offset + 1 - HEADER_LENGTH <= MAX_NAME_OCTETS else None
        if length > 63:
            return None
        offset += 1 + length
    return None


def same_question(query: bytes, reply: bytes) -> bool:
    """Does ``reply`` carry the question of ``query`` (names compared case-insensitively)?"""
    end = question_end(query)
    if end is None:
        return True  # nothing to compare against; the id alone must do
    if reply[HEADER_LENGTH:end] == query[HEADER_LENGTH:end]:
        return True  # the usual case: the upstream echoed the question byte for byte
    name_end = end - 4
    return (
        reply[HEADER_LENGTH:name_end].lower() == query[HEADER_LENGTH:name_end].lower()
        and reply[name_end:end] == query[name_end:end]
    )


def rcode(message: bytes) -> int:
    return message[3] & 0xF


TYPE_OPT = 41
TYPE_SOA = 6
_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength


class Question(NamedTuple):
    """What the fast path needs of a plain query (one question, at most an OPT record)."""

    id: int
    flags: int
    name: bytes  # the question name in wire format, as asked, root label included
    qtype: int
    qclass: int
    end: int  # offset just past the question section
    edns_payload: int | None  # the client's UDP payload size; None without EDNS0
    edns_version: int
    dnssec_ok: bool


def parse_question(data: bytes) -> Question | None:
    """Reads a plain query by hand; None for anything else (the full parser takes those)."""
    if len(data) < HEADER_LENGTH + 5:
        return None
    message_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & (QR | OPCODE_MASK) or qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    offset = HEADER_LENGTH
    size = len(data)
    while True:
        if offset >= size:
            return None
        length = data[offset]
        if length == 0:
            break
        if length > 63:
            return None  # a compression pointer or a reserved label type
        offset += 1 + length
    name_end = offset + 1
    end = name_end + 4
    if end > size or name_end - HEADER_LENGTH > 255:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(data, name_end)
    payload, version, dnssec_ok = None, 0, False
    if arcount:
        # Only an OPT record with the root name, and nothing after it.
        if end + 11 > size or data[end] != 0:
            return None
        rtype, payload, ttl, rdlength = _RR_FIXED.unpack_from(data, end + 1)
        if rtype != TYPE_OPT or end + 11 + rdlength != size:
            return None
        version = (ttl >> 16) & 0xFF
        dnssec_ok = bool(ttl & 0x8000)
    elif end != size:
        return None
    return Question(message_id, flags, data[HEADER_LENGTH:name_end], qtype, qclass, end, payload, version, dnssec_ok)


def name_labels(name: bytes) -> tuple[str, ...]:
    """Lower-case labels of a wire-format name without compression."""
    labels = []
    offset = 0
    while offset < len(name) and name[offset]:
        length = name[offset]
        labels.append(name[offset + 1:offset + 1 + length].lower().decode("latin-1"))
        offset += 1 + length
    return tuple(labels)


class RecordInfo(NamedTuple):
    ttl_offset: int
    rtype: int
    ttl: int
    rdata_offset: int
    rdlength: int
    section: int  # 1 answer, 2 authority, 3 additional


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length > 63:
            raise ValueError("bad label")
        offset += 1 + length


def records(message: bytes) -> list[RecordInfo] | None:
    """Where each resource record of a message sits; None when the message is malformed."""
    try:
        _, _, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(message)
        offset = HEADER_LENGTH
        for _ in range(qdcount):
            offset = _skip_name(message, offset) + 4
        found = []
        for section, count in ((1, ancount), (2, nscount), (3, arcount)):
            for _ in range(count):
                offset = _skip_name(message, offset)
                rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(message, offset)
                found.append(RecordInfo(offset + 4, rtype, ttl, offset + 10, rdlength, section))
                offset += 10 + rdlength
        if offset != len(message):
            return None
        return found
    except (struct.error, IndexError, ValueError):
        return None


def soa_minimum(message: bytes, info: RecordInfo) -> int | None:
    """The MINIMUM field of an SOA record: the last 4 octets of its RDATA."""
    if info.rtype != TYPE_SOA or info.rdlength < 22:
        return None
    return struct.unpack_from("!I", message, info.rdata_offset + info.rdlength - 4)[0]


def reply_without_records(query: bytes, question: Question, rcode: int, *, tc: bool = False,
                          udp_payload: int = 1232) -> bytes:
    """A reply with the query's question and no records (SERVFAIL, or TC to say "use TCP").

    It carries an OPT record when the query did (RFC 6891 §7).
    """
    flags = QR | (question.flags & (OPCODE_MASK | RD | 0x0010)) | 0x0080 | (rcode & 0xF)  # 0x10: CD, 0x80: RA
    if tc:
        flags |= 0x0200
    edns = question.edns_payload is not None
    header = struct.pack("!HHHHHH", question.id, flags, 1, 0, 0, 1 if edns else 0)
    opt = b"\x00" + _RR_FIXED.pack(TYPE_OPT, udp_payload, 0, 0) if edns else b""
    return header + query[HEADER_LENGTH:question.end] + opt
