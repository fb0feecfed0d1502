"""Replies as bytes: header, the question as asked, records with name compression, OPT, and truncation.

The one home of:

* the size of a reply: ``query.limit`` (``Query.reply_limit``) is never
  exceeded. Records are dropped from the end, whole, and TC is set when an
  answer or authority record had to go; additional records (addresses of
  SRV and NS targets) are dropped without TC, since the answer is complete
  without them (RFC 2181 §9). An upstream's answer larger than the client
  can take (it came over TCP, the client asked over UDP) is relayed as an
  empty reply with TC, so that the client asks again over TCP (``relayed``);
* the OPT record of a reply: present when the query had one, with our
  payload size and the query's DO bit (RFC 6891 §7, RFC 3225 §3), and the
  upper bits of an extended rcode (BADVERS);
* name compression that keeps a reply a template. A reply is cached and
  served again to queries that differ in letter case, with their own
  question spliced in (``cache.for_query``), so the only pointer into the
  question is the one that means "the name as asked" (``QNAME``, the owner
  of answers). Every other name is compressed only against names outside
  the question, matching byte for byte, so a canonical ``docker.`` never
  turns into a client's ``DoCkEr.``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from dnscock import wire
from dnscock.query import Query

QNAME = b""  # as an owner: the question's name, as asked (a pointer to offset 12)
_POINTER_TO_QUESTION = b"\xc0\x0c"
_MAX_POINTER = 0x3FFF
_POINTER = struct.Struct("!H")


class Name(bytes):
    """A wire-format domain name inside RDATA that may be compressed (NS, SOA, PTR, MX, CNAME; not SRV, RFC 2782)."""

    __slots__ = ()


class RR(NamedTuple):
    """One resource record of class IN, ready to pack."""

    owner: bytes  # a wire-format name, or QNAME
    rtype: int
    ttl: int
    rdata: bytes | tuple[bytes, ...]  # bytes, or pieces of which ``Name`` ones may be compressed


class Answer(NamedTuple):
    """What a reply says, before packing."""

    rcode: int
    authoritative: bool
    answer: Sequence[RR] = ()
    authority: Sequence[RR] = ()
    additional: Sequence[RR] = ()


class _Writer:
    __slots__ = ("out", "names")

    def __init__(self, out: bytearray) -> None:
        self.out = out
        self.names: dict[bytes, int] = {}  # a name's wire form (exact octets) -> where it was written

    def name(self, name: bytes) -> None:
        if not name:  # QNAME
            self.out += _POINTER_TO_QUESTION
            return
        out, names = self.out, self.names
        offset = 0
        while name[offset]:
            suffix = name[offset:]
            pointer = names.get(suffix)
            if pointer is not None:
                out += _POINTER.pack(0xC000 | pointer)
                return
            if len(out) <= _MAX_POINTER:
                names[suffix] = len(out)
            end = offset + 1 + name[offset]
            out += name[offset:end]
            offset = end
        out.append(0)

    def record(self, rr: RR) -> None:
        out = self.out
        self.name(rr.owner)
        start = len(out)
        out += wire.RR_FIXED.pack(rr.rtype, wire.CLASS_IN, rr.ttl, 0)
        rdata = rr.rdata
        if isinstance(rdata, tuple):
            for piece in rdata:
                if isinstance(piece, Name):
                    self.name(piece)
                else:
                    out += piece
        else:
            out += rdata
        _POINTER.pack_into(out, start + 8, len(out) - start - 10)

    def rollback(self, mark: int) -> None:
        """Forgets everything written from ``mark`` on (a record that did not fit)."""
        del self.out[mark:]
        for suffix in [suffix for suffix, offset in self.names.items() if offset >= mark]:
            del self.names[suffix]

    def section(self, records: Iterable[RR], budget: int) -> tuple[int, bool]:
        """Writes records while they fit in ``budget`` bytes; (how many did, whether all did)."""
        count = 0
        for rr in records:
            mark = len(self.out)
            self.record(rr)
            if len(self.out) > budget:
                self.rollback(mark)
                return count, False
            count += 1
        return count, True


def pack_reply(query: Query, answer: Answer, udp_payload: int, *, truncated: bool = False) -> bytes:
    """The reply to ``query`` saying ``answer``, in at most ``query.limit`` bytes.

    ``truncated`` sets TC whatever fits (an upstream answer too large for
    the client: it is to ask again over TCP).
    """
    data = query.data
    out = bytearray(wire.HEADER_LENGTH)
    out += data[wire.HEADER_LENGTH:query.end]
    opt = query.opt
    budget = query.limit - (wire.OPT_LENGTH if opt is not None else 0)
    writer = _Writer(out)
    ancount, complete = writer.section(answer.answer, budget)
    nscount = arcount = 0
    if complete:
        nscount, complete = writer.section(answer.authority, budget)
        if complete:
            arcount, _ = writer.section(answer.additional, budget)  # optional: no TC when it does not fit
    if not complete:
        truncated = True
    if opt is not None:
        out += wire.opt_record(udp_payload, opt.dnssec_ok, answer.rcode)
        arcount += 1
    flags = wire.RA | (wire.AA if answer.authoritative else 0) | (wire.TC if truncated else 0) | (answer.rcode & wire.RCODE_MASK)
    wire.HEADER.pack_into(out, 0, data[0] << 8 | data[1], wire.reply_flags(query.flags, flags), 1, ancount, nscount,
                          arcount)
    return bytes(out)


def relayed(query: Query, answer: bytes, udp_payload: int) -> bytes:
    """An upstream's ``answer`` as the reply to ``query``: its header spliced on, or TC when too large for it."""
    if len(answer) > query.limit:
        # The upstream answered by TCP, the client asked by UDP: tell it to come by TCP.
        return pack_reply(query, Answer(wire.rcode(answer), False), udp_payload, truncated=True)
    return wire.spliced(query.data, answer)
