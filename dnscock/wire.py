"""DNS messages as raw bytes (RFC 1035 §4.1): the header, the question of a query, and the flags of a reply.

The query path reads plain queries here by hand (one question, at most an
OPT record): parsing a whole message with a library would cost more than
answering it. This module is also the one home of the rule for the flags of
a reply (``reply_flags``), used by every reply dnscock sends, and of the
replies that are only a header (and perhaps the question).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER_LENGTH = 12
CLASSIC_UDP_LIMIT = 512  # a UDP message without EDNS0 (RFC 1035 §4.2.1)
TCP_LIMIT = 65535  # a TCP message's length is a 16-bit number (RFC 1035 §4.2.2)
MAX_NAME_OCTETS = 255  # RFC 1035 §2.3.4, length octets and the root included

# Header flags (RFC 1035 §4.1.1; AD and CD from RFC 4035 §3.2).
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
Z = 0x0040
AD = 0x0020
CD = 0x0010
RCODE_MASK = 0x000F

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16  # an extended rcode: its upper 8 bits travel in the OPT record (RFC 6891 §6.1.3)

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_HINFO = 13
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41
TYPE_IXFR = 251
TYPE_AXFR = 252
TYPE_ANY = 255
CLASS_IN = 1
CLASS_ANY = 255
EDNS_VERSION = 0  # the only version there is (RFC 6891 §6.1.3)
EDNS_DO = 0x8000  # "DNSSEC OK", in the OPT record's TTL field (RFC 3225 §3)

_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength


def reply_flags(query_flags: int, answer_flags: int) -> int:
    """The flags of a reply: QR set; opcode, RD and CD from the query; AA, TC, RA, AD and rcode from the answer.

    CD is echoed (RFC 4035 §3.1.6) and Z is always zero (RFC 1035 §4.1.1).
    A cached reply gets these from each new query, so nothing of the query
    that filled the cache leaks into the next one.
    """
    return QR | (query_flags & (OPCODE_MASK | RD | CD)) | (answer_flags & (AA | TC | RA | AD | RCODE_MASK))


def header_fields(data: bytes) -> tuple[int, int] | None:
    """(id, flags) of a message, or None when it has no complete header."""
    if len(data) < HEADER_LENGTH:
        return None
    return struct.unpack_from("!HH", data)


def opcode(flags: int) -> int:
    return (flags & OPCODE_MASK) >> 11


def rcode(message: bytes) -> int:
    return message[3] & RCODE_MASK


def with_id(message: bytes, message_id: int) -> bytes:
    return struct.pack("!H", message_id) + message[2:]


def opt_record(udp_payload: int, dnssec_ok: bool, extended_rcode: int = 0) -> bytes:
    """An OPT pseudo-record with no options: the root name, our payload size, the DO bit echoed (RFC 6891 §6.1)."""
    ttl = (extended_rcode >> 4) << 24 | (EDNS_DO if dnssec_ok else 0)
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, udp_payload, ttl, 0)


OPT_LENGTH = 11


def _reply_header(data: bytes, rcode: int, tc: bool = False) -> tuple[int, int] | None:
    """(id, flags) of a reply to ``data``, or None for a response (answering one could start a loop)."""
    fields = header_fields(data)
    if fields is None or fields[1] & QR:
        return None
    message_id, flags = fields
    if opcode(flags):
        # RD, RA, CD and the rest mean something only for QUERY (genreport's opcodeflg test).
        return message_id, QR | (flags & OPCODE_MASK) | (rcode & RCODE_MASK)
    return message_id, reply_flags(flags, RA | (TC if tc else 0) | rcode)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply (a header, no sections) to ``data`` with ``rcode``, or None when unreadable or a response."""
    header = _reply_header(data, rcode)
    return None if header is None else _HEADER.pack(*header, 0, 0, 0, 0)


def short_reply(data: bytes, rcode: int, tc: bool = False) -> bytes | None:
    """A reply no larger than the query: its header and first question (when readable), no records.

    For clients dnscock will not serve (REFUSED), serves only over TCP (TC),
    and messages it cannot make sense of beyond the question (FORMERR).
    """
    header = _reply_header(data, rcode, tc)
    if header is None:
        return None
    end = question_end(data)
    if end is None or end > CLASSIC_UDP_LIMIT:
        return _HEADER.pack(*header, 0, 0, 0, 0)
    return _HEADER.pack(*header, 1, 0, 0, 0) + data[HEADER_LENGTH:end]


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


class Question(NamedTuple):
    """What dnscock needs of a query to answer it: its header, its one question, its EDNS0 facts."""

    id: int
    flags: int
    name: bytes  # the question name in wire format, as asked, root label included
    qtype: int
    qclass: int
    end: int  # offset just past the question section
    edns_payload: int | None  # the client's UDP payload size; None without EDNS0
    edns_version: int
    dnssec_ok: bool

    def reply_limit(self, tcp: bool, udp_payload: int) -> int:
        """The most bytes a reply may have: 512 over UDP without EDNS0, else what both sides allow (RFC 6891 §6.2.5)."""
        if tcp:
            return TCP_LIMIT
        if self.edns_payload is None:
            return CLASSIC_UDP_LIMIT
        return max(CLASSIC_UDP_LIMIT, min(self.edns_payload, udp_payload))


def parse_question(data: bytes) -> Question | None:
    """Reads a plain query by hand; None for anything else (``queries.read_query`` takes those)."""
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
    if end > size or name_end - HEADER_LENGTH > MAX_NAME_OCTETS:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(data, name_end)
    payload, version, dnssec_ok = None, 0, False
    if arcount:
        # Only an OPT record with the root name, and nothing after it.
        if end + OPT_LENGTH > size or data[end] != 0:
            return None
        rtype, payload, ttl, rdlength = _RR_FIXED.unpack_from(data, end + 1)
        if rtype != TYPE_OPT or end + OPT_LENGTH + rdlength != size:
            return None
        version = (ttl >> 16) & 0xFF
        dnssec_ok = bool(ttl & EDNS_DO)
    elif end != size:
        return None
    return Question(message_id, flags, data[HEADER_LENGTH:name_end], qtype, qclass, end, payload, version, dnssec_ok)


def name_labels(name: bytes) -> tuple[str, ...]:
    """Lower-case labels of a wire-format name without compression.

    latin-1 keeps every octet (DNS allows any, RFC 2181 §11); bytes.lower()
    folds ASCII letters only, as DNS does.
    """
    labels = []
    offset = 0
    while offset < len(name) and name[offset]:
        length = name[offset]
        labels.append(name[offset + 1:offset + 1 + length].lower().decode("latin-1"))
        offset += 1 + length
    return tuple(labels)


def name_to_wire(name: str) -> bytes:
    """``"web.docker"`` -> ``b"\\x03web\\x06docker\\x00"`` (labels as given; "" and "." are the root)."""
    encoded = [label.encode("latin-1") for label in name.strip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in encoded) + b"\x00"


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


def soa_minimum(message: bytes, rdata_offset: int, rdlength: int) -> int | None:
    """The MINIMUM field of an SOA record's RDATA: its last 4 octets (None when too short for an SOA)."""
    if rdlength < 22:
        return None
    return struct.unpack_from("!I", message, rdata_offset + rdlength - 4)[0]
