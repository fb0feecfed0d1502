"""DNS messages as raw bytes (RFC 1035 §4.1): the one toolkit every part of the query path reads and writes with.

The one home of:

* the label walk (``read_name``): an uncompressed name, its labels of at
  most 63 octets, the whole at most 255 (RFC 1035 §2.3.4); questions,
  names given by other parts and the slow reader's checks all go through it;
* the OPT record's fields (``read_opt``): payload size, version, DO
  (RFC 6891 §6.1.3, RFC 3225 §3);
* the flags of a reply (``reply_flags``) and the splice that puts a
  query's id and flags on a reply made for another (``spliced``), used by
  forwarding and by the reply caches alike;
* the replies that are only a header (and perhaps the question);
* where the records of a message sit (``records``), for the forward
  cache's TTLs and the check that an upstream's reply is well formed.

Rcodes, types and classes are named here; no other module writes their numbers.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER_LENGTH = 12
CLASSIC_UDP_LIMIT = 512  # a UDP message without EDNS0 (RFC 1035 §4.2.1)
TCP_LIMIT = 65535  # a TCP message's length is a 16-bit number (RFC 1035 §4.2.2)
MAX_NAME_OCTETS = 255  # RFC 1035 §2.3.4, length octets and the root included
MAX_LABEL_OCTETS = 63

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
# The same flags as seen in the header's third octet alone (the cheapest test on raw bytes).
QR_OCTET = QR >> 8
OPCODE_OCTET = OPCODE_MASK >> 8
TC_OCTET = TC >> 8

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

# Sections of a message, as ``RecordInfo.section`` numbers them.
ANSWER, AUTHORITY, ADDITIONAL = 1, 2, 3

HEADER = struct.Struct("!HHHHHH")
FLAGS = struct.Struct("!H")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
OPT_LENGTH = 11  # an OPT record without options: the root name and the fixed fields
_COUNTS = struct.Struct("!HHHH")
_TTL = struct.Struct("!I")
# Flags a reply keeps from the query that asked it, and the ones from whoever made the answer.
_FROM_QUERY = OPCODE_MASK | RD | CD
_FROM_ANSWER = AA | TC | RA | AD | RCODE_MASK


def reply_flags(query_flags: int, answer_flags: int) -> int:
    """The flags of a reply: QR set; opcode, RD and CD from the query; AA, TC, RA, AD and rcode from the answer.

    CD is echoed (RFC 4035 §3.1.6) and Z is always zero (RFC 1035 §4.1.1).
    A cached reply gets these from each new query, so nothing of the query
    that filled the cache leaks into the next one.
    """
    return QR | (query_flags & _FROM_QUERY) | (answer_flags & _FROM_ANSWER)


def spliced(query: bytes, reply: bytes) -> bytes:
    """``reply`` as the answer to ``query``: the query's id, and the flags ``reply_flags`` gives them both."""
    flags = QR | ((query[2] << 8 | query[3]) & _FROM_QUERY) | ((reply[2] << 8 | reply[3]) & _FROM_ANSWER)
    return query[:2] + FLAGS.pack(flags) + reply[4:]


def flags_of(message: bytes) -> int:
    return message[2] << 8 | message[3]


def opcode(flags: int) -> int:
    return (flags & OPCODE_MASK) >> 11


def rcode(message: bytes) -> int:
    return message[3] & RCODE_MASK


def with_id(message: bytes, message_id: int) -> bytes:
    return FLAGS.pack(message_id) + message[2:]


# -- names --

def read_name(data: bytes, offset: int) -> tuple[tuple[str, ...], int] | None:
    """The uncompressed name at ``offset``: (its lower-case labels, the offset just past it), or None.

    None for a name that runs past the end, has a label of 64 octets or
    more (or a compression pointer: no name dnscock reads this way may use
    one), or more than 255 octets. latin-1 keeps every octet (DNS allows
    any, RFC 2181 §11); ``lower`` folds ASCII letters only, as DNS does.
    """
    start = offset
    pieces = []
    try:
        length = data[offset]
        while length:
            if length > MAX_LABEL_OCTETS:
                return None
            offset += 1
            pieces.append(data[offset:offset + length])
            offset += length
            length = data[offset]
    except IndexError:
        return None
    offset += 1
    if offset - start > MAX_NAME_OCTETS:
        return None
    if not pieces:
        return (), offset
    text = b".".join(pieces).lower().decode("latin-1")
    labels = tuple(text.split("."))
    if len(labels) != len(pieces):  # a label holds a dot: decode them one by one
        labels = tuple(piece.lower().decode("latin-1") for piece in pieces)
    return labels, offset


def name_to_wire(name: str) -> bytes:
    """``"web.docker"`` -> ``b"\\x03web\\x06docker\\x00"`` (labels as given; "" and "." are the root)."""
    encoded = [label.encode("latin-1") for label in name.strip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in encoded) + b"\x00"


def text_of(labels: tuple[str, ...]) -> str:
    """Labels as a name for people: ``web.docker.``."""
    return ".".join(labels) + "."


# -- the question and OPT --

def question_end(data: bytes) -> int | None:
    """Offset just past the first question of a message, or None when there is no readable one."""
    if len(data) < HEADER_LENGTH or data[4:6] == b"\x00\x00":
        return None
    read = read_name(data, HEADER_LENGTH)
    if read is None or read[1] + 4 > len(data):
        return None
    return read[1] + 4


def same_question(query: bytes, reply: bytes, end: int) -> bool:
    """Does ``reply`` carry the question of ``query`` (which ends at ``end``), the name in any letter case?"""
    if reply[HEADER_LENGTH:end] == query[HEADER_LENGTH:end]:
        return True  # the usual case: the upstream echoed the question byte for byte
    name_end = end - 4
    return (reply[HEADER_LENGTH:name_end].lower() == query[HEADER_LENGTH:name_end].lower()
            and reply[name_end:end] == query[name_end:end])


class Opt(NamedTuple):
    payload: int  # the sender's UDP payload size
    version: int
    dnssec_ok: bool


def read_opt(data: bytes, offset: int) -> tuple[Opt, int] | None:
    """The OPT record at ``offset`` (its name must be the root, RFC 6891 §6.1.1) and the offset past it; None
    when it is not one."""
    if offset + OPT_LENGTH > len(data) or data[offset]:
        return None
    rtype, payload, ttl, rdlength = RR_FIXED.unpack_from(data, offset + 1)
    end = offset + OPT_LENGTH + rdlength
    if rtype != TYPE_OPT or end > len(data):
        return None
    # The TTL field holds the extended rcode's upper bits, the version, and the DO bit.
    return Opt(payload, (ttl >> 16) & 0xFF, bool(ttl & EDNS_DO)), end


def opt_record(udp_payload: int, dnssec_ok: bool, extended_rcode: int = 0) -> bytes:
    """An OPT pseudo-record with no options: the root name, our payload size, the DO bit echoed (RFC 6891 §6.1)."""
    ttl = (extended_rcode >> 4) << 24 | (EDNS_DO if dnssec_ok else 0)
    return b"\x00" + RR_FIXED.pack(TYPE_OPT, udp_payload, ttl, 0)


# -- replies without records --

def _reply_header(data: bytes, rcode: int, tc: bool = False) -> tuple[int, int] | None:
    """(id, flags) of a reply to ``data``, or None for a response (answering one could start a loop)."""
    if len(data) < HEADER_LENGTH:
        return None
    message_id, flags = data[0] << 8 | data[1], flags_of(data)
    if flags & QR:
        return None
    if opcode(flags):
        # RD, RA, CD and the rest mean something only for QUERY (genreport's opcodeflg test).
        return message_id, QR | (flags & OPCODE_MASK) | (rcode & RCODE_MASK)
    return message_id, reply_flags(flags, RA | (TC if tc else 0) | rcode)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply (a header, no sections) to ``data`` with ``rcode``, or None when unreadable or a response."""
    header = _reply_header(data, rcode)
    return None if header is None else HEADER.pack(*header, 0, 0, 0, 0)


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
        return HEADER.pack(*header, 0, 0, 0, 0)
    return HEADER.pack(*header, 1, 0, 0, 0) + data[HEADER_LENGTH:end]


# -- records --

class RecordInfo(NamedTuple):
    owner_offset: int
    ttl_offset: int
    rtype: int
    ttl: int
    rdata_offset: int
    rdlength: int
    section: int  # ANSWER, AUTHORITY or ADDITIONAL


_new_info = tuple.__new__  # RecordInfo without its Python-level constructor: this runs for every forwarded reply


def records(message: bytes, keep: bool = True) -> list[RecordInfo] | None:
    """Where each resource record of a message sits; None when the message is malformed.

    With ``keep`` false only the check is made (and [] returned for a well-formed message).
    Names may end in a compression pointer (RFC 1035 §4.1.4); labels of the reserved
    types 0x40 and 0x80 make the message malformed.
    """
    try:
        qdcount, ancount, nscount, arcount = _COUNTS.unpack_from(message, 4)
    except struct.error:
        return None
    found: list[RecordInfo] = []
    answers_end = qdcount + ancount
    authority_end = answers_end + nscount
    offset = HEADER_LENGTH
    try:
        for index in range(authority_end + arcount):
            owner = offset
            length = message[offset]
            while length:
                if length >= 0xC0:  # a pointer: two octets end the name
                    offset += 1
                    break
                if length > MAX_LABEL_OCTETS:
                    return None
                offset += 1 + length
                length = message[offset]
            offset += 1
            if index < qdcount:
                offset += 4  # QTYPE, QCLASS
                continue
            rdlength = message[offset + 8] << 8 | message[offset + 9]
            if keep:
                section = ANSWER if index < answers_end else AUTHORITY if index < authority_end else ADDITIONAL
                found.append(_new_info(RecordInfo, (owner, offset + 4, message[offset] << 8 | message[offset + 1],
                                                    _TTL.unpack_from(message, offset + 4)[0], offset + 10, rdlength,
                                                    section)))
            offset += 10 + rdlength
    except (IndexError, struct.error):
        return None
    return found if offset == len(message) else None


def soa_minimum(message: bytes, rdata_offset: int, rdlength: int) -> int | None:
    """The MINIMUM field of an SOA record's RDATA: its last 4 octets (None when too short for an SOA)."""
    if rdlength < 22:
        return None
    return _TTL.unpack_from(message, rdata_offset + rdlength - 4)[0]
