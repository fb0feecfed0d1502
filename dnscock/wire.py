"""DNS wire-format helpers that work on raw bytes (RFC 1035 §4.1).

Used where parsing a whole message would be wasted work or impossible: to
answer FORMERR to a message whose header is all that can be read, to put a
client's id back on an upstream reply, and to compare question sections.
"""

from __future__ import annotations

import struct

HEADER_LENGTH = 12
QR = 0x8000
OPCODE_MASK = 0x7800
RD = 0x0100
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2


def header_fields(data: bytes) -> tuple[int, int] | None:
    """(id, flags) of a message, or None when it has no complete header."""
    if len(data) < HEADER_LENGTH:
        return None
    return struct.unpack_from("!HH", data)


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply (no sections) to ``data`` with ``rcode``, or None when unreadable.

    Keeps the id, opcode and RD bit of the query; never answers a response.
    """
    fields = header_fields(data)
    if fields is None:
        return None
    message_id, flags = fields
    if flags & QR:
        return None
    flags = QR | (flags & (OPCODE_MASK | RD)) | 0x0080 | (rcode & 0xF)  # 0x0080: RA
    return struct.pack("!HHHHHH", message_id, flags, 0, 0, 0, 0)


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
    while offset < len(data):
        length = data[offset]
        if length == 0:
            end = offset + 1 + 4  # the root label, then QTYPE and QCLASS
            return end if end <= len(data) else None
        if length > 63:
            return None
        offset += 1 + length
    return None


def same_question(query: bytes, reply: bytes) -> bool:
    """Does ``reply`` carry the question of ``query`` (names compared case-insensitively)?"""
    end = question_end(query)
    if end is None:
        return True  # nothing to compare against; the id alone must do
    name_end = end - 4
    return (
        reply[HEADER_LENGTH:name_end].lower() == query[HEADER_LENGTH:name_end].lower()
        and reply[name_end:end] == query[name_end:end]
    )


def rcode(message: bytes) -> int:
    return message[3] & 0xF
