"""Fuzz inputs for dnscock: random bytes and structure-aware DNS messages, good and bad.

Every generator here draws its choices from a ``Chooser``, so the same code
serves two masters:

* ``RandomChooser`` (``random.Random``): fast, for ``scripts/fuzz.py``'s
  million-case runs and ``scripts/fuzz_atheris.py``'s seeds;
* ``DrawChooser`` (a hypothesis ``draw``): for the tests in ``tests/fuzz``,
  where hypothesis shrinks a failing case to a small one.

What the structure-aware generators make (RFC 1035 §4.1, RFC 6891):

* names under the local zone (``docker``) and outside it, reverse names
  (``in-addr.arpa``, ``ip6.arpa``), SRV service names, ``*`` labels, mixed
  letter case, binary labels, the empty (root) name and names of exactly
  255 octets and just over;
* broken names: label lengths over 63 (the reserved 0x40 and 0x80 label
  types), a length byte that runs past the end, compression pointers to
  themselves, into the header, past the end, forward, in loops and in long
  chains;
* every opcode (0-15), QR set, odd flag bits and header rcodes;
* every qtype of note (A, AAAA, ANY, AXFR, IXFR, OPT, PTR, SRV, TXT, SOA,
  NS, MX, ..., 0, 65535, unknown ones) and every class (IN, CH, HS, NONE,
  ANY, 0, random);
* OPT records with odd versions, payload sizes (0, 511, 512, 513, 1232,
  65535...), the DO bit, options good and truncated, repeated OPT records,
  an OPT cut short, an OPT with a non-root owner;
* header counts that lie (larger or smaller than what follows, 0xFFFF
  questions), trailing garbage, messages cut at any byte, flipped bits.

``FuzzCase.valid`` marks the well-formed queries: one question, honest
counts, labels of at most 63 octets (any octets: RFC 2181 §11), at most
255 octets of name, at most one well-formed OPT record. The checks in
``tests/fuzz/harness.py`` hold those to more (never FORMERR, the question
echoed byte for byte).
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

ZONE = b"docker"
HEADER_LENGTH = 12
QR, TC, RD = 0x8000, 0x0200, 0x0100
TYPE_OPT = 41

# Names the in-process record store and the fake engine both know (see harness.py): containers
# c00001..c00040 of images img0001..img0005 (every 10th with an alias alias<N>.example.test),
# and a few more made by hand in-process (r1.redis with the alias r1.example.com, web, a, ...).
LOCAL_LABELS: tuple[bytes, ...] = (
    b"a", b"r1", b"redis", b"web", b"prod", b"bare", b"gone", b"nobody", b"*", b"c00001", b"c00002",
    b"c00010", b"c00040", b"img0001", b"img0002", b"img0005", b"app", b"x", b"www", b"docker",
)
SRV_PREFIXES: tuple[tuple[bytes, bytes], ...] = (
    (b"_80", b"_tcp"), (b"_53", b"_udp"), (b"_6379", b"_tcp"), (b"_0", b"_tcp"), (b"_65536", b"_tcp"),
    (b"_x", b"_tcp"), (b"_80", b"_sctp"), (b"_\xb2", b"_tcp"), (b"_", b"_udp"),
)
# The first label of a name outside the zone tells the fake upstream (harness.py) how to answer.
UPSTREAM_MODES: tuple[bytes, ...] = (
    b"www", b"www", b"www", b"nx1", b"nodata", b"big", b"huge", b"tc", b"noise", b"cookie", b"ttl0", b"cname",
    b"servfail", b"refused", b"r1", b"alias10",
)
OUTSIDE_SUFFIXES: tuple[tuple[bytes, ...], ...] = (
    (b"example", b"com"), (b"example", b"org"), (b"example", b"test"), (b"com",), (b"dockerx",),
    (b"docker", b"com"), (b"arpa",), (),
)
ALIASES: tuple[tuple[bytes, ...], ...] = (
    (b"r1", b"example", b"com"), (b"alias10", b"example", b"test"), (b"alias20", b"example", b"test"),
)
REVERSE_OCTETS: tuple[bytes, ...] = (
    b"0", b"1", b"2", b"10", b"17", b"42", b"172", b"255", b"256", b"010", b"00", b"-1", b"a", b"1e2",
    b"\xb2", b"\xb3", b"\xb9", b"\xbd", b"\xd9\xa3", b"\xef\xbc\x91", b" 1", b"1\xb2",
)
NIBBLES: tuple[bytes, ...] = tuple(bytes([c]) for c in b"0123456789abcdefABCDEFgz") + (b"10", b"\xb2")

QTYPES: tuple[int, ...] = (
    1, 1, 1, 28, 28, 255, 255, 252, 251, 41, 12, 12, 33, 33, 16, 16, 6, 6, 2, 15, 5, 13, 257, 253, 254, 0,
    65535, 65280, 250, 249, 43, 46, 99, 64, 65, 99,
)
QCLASSES: tuple[int, ...] = (1, 1, 1, 1, 1, 3, 4, 254, 255, 0, 2, 65535)
OPT_PAYLOADS: tuple[int, ...] = (0, 1, 511, 512, 513, 1024, 1232, 1233, 1400, 4096, 65535)
OPT_VERSIONS: tuple[int, ...] = (0, 0, 0, 0, 1, 2, 255)


class Chooser(Protocol):
    """Where generators get their choices from."""

    def integer(self, low: int, high: int) -> int:
        """A whole number in [low, high]."""

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``."""

    def chance(self, probability: float) -> bool:
        """True with about ``probability`` (shrinks to False)."""

    def raw(self, max_size: int, min_size: int = 0) -> bytes:
        """Random bytes, ``min_size`` to ``max_size`` of them."""


class RandomChooser:
    """Choices from ``random.Random``: fast, for long runs."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[int(self.rng.random() * len(options))]

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def raw(self, max_size: int, min_size: int = 0) -> bytes:
        return self.rng.randbytes(self.rng.randint(min_size, max_size))


class DrawChooser:
    """Choices from a hypothesis ``draw``, so that failing cases shrink."""

    def __init__(self, draw: Callable) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.draw(st.integers(0, len(options) - 1))]

    def chance(self, probability: float) -> bool:
        return self.draw(st.integers(0, 999)) >= 1000 - int(probability * 1000)

    def raw(self, max_size: int, min_size: int = 0) -> bytes:
        return self.draw(st.binary(min_size=min_size, max_size=max_size))


@dataclass(frozen=True, slots=True)
class FuzzCase:
    """One message for the resolver, and how it comes."""

    data: bytes
    tcp: bool = False
    kind: str = "random"  # random | header | malformed | valid | repeat
    valid: bool = False  # a well-formed query: see the module docstring
    client: str = "127.0.0.1"

    def with_id(self, message_id: int) -> FuzzCase:
        if len(self.data) < 2:
            return self
        return replace(self, data=struct.pack("!H", message_id) + self.data[2:])


CLIENTS: tuple[str, ...] = ("127.0.0.1", "127.0.0.1", "::1", "10.1.2.3", "172.17.0.5", "192.0.2.1", "")


# -- names --


def encode_name(labels: Sequence[bytes]) -> bytes:
    """Wire form of ``labels`` (no compression), root label included."""
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def mangle_case(c: Chooser, label: bytes) -> bytes:
    """The label in lower, upper or mixed letter case (DNS matches case-insensitively)."""
    how = c.integer(0, 5)
    if how <= 2:
        return label
    if how == 3:
        return label.upper()
    if how == 4:
        return label.swapcase()
    flips = bytearray(label)
    for i, octet in enumerate(flips):
        if 0x61 <= octet <= 0x7A and c.chance(0.5):
            flips[i] = octet - 0x20
    return bytes(flips)


def binary_label(c: Chooser) -> bytes:
    """1 to 63 octets of anything: dots, NULs, non-UTF-8 (all legal, RFC 2181 §11)."""
    kind = c.integer(0, 3)
    if kind == 0:
        return c.raw(63, 1)
    if kind == 1:
        return bytes([c.integer(0x80, 0xFF)]) * c.integer(1, 3)
    if kind == 2:
        return c.choice((b"a.b", b"r1.example", b"\x00", b"a\x00b", b" ", b"\\", b"\xff", b"\xc3\xa9t\xc3\xa9"))
    return bytes([c.integer(0, 255)])


def local_labels(c: Chooser) -> list[bytes]:
    """A name under the zone: ``[...labels, docker]``."""
    labels = [c.choice(LOCAL_LABELS) for _ in range(c.integer(0, 4))]
    if c.chance(0.15):
        service = c.choice(SRV_PREFIXES)
        labels = [service[0], service[1], *labels]
    if c.chance(0.05):
        labels.insert(c.integer(0, len(labels)), binary_label(c))
    return labels + [ZONE]


def outside_labels(c: Chooser) -> list[bytes]:
    kind = c.integer(0, 9)
    if kind <= 4:
        first = b"drop" if c.chance(0.01) else c.choice(UPSTREAM_MODES)  # rare: it costs a timeout
        if c.chance(0.3):
            first += str(c.integer(0, 99)).encode()
        return [first, *c.choice(OUTSIDE_SUFFIXES)]
    if kind == 5:
        return list(c.choice(ALIASES))
    if kind == 6:  # IPv4 reverse names, good and bad octets
        if c.chance(0.5):
            octets = [c.choice((b"2", b"3", b"5", b"1")), b"0", c.choice((b"0", b"1")), b"10"]
        else:
            octets = [c.choice(REVERSE_OCTETS) for _ in range(c.choice((4, 4, 4, 3, 5)))]
        return [*octets, b"in-addr", b"arpa"]
    if kind == 7:  # IPv6 reverse names: 32 nibbles
        nibbles = [c.choice(NIBBLES) if c.chance(0.1) else b"0123456789abcdef"[i % 16:i % 16 + 1]
                   for i in range(c.choice((32, 32, 31, 33)))]
        return [*nibbles, b"ip6", b"arpa"]
    if kind == 8:
        return [binary_label(c) for _ in range(c.integer(1, 3))] + list(c.choice(OUTSIDE_SUFFIXES))
    return []  # the root


def long_labels(c: Chooser, total: int, under_zone: bool) -> list[bytes]:
    """Labels whose wire name is exactly ``total`` octets (255 is the most RFC 1035 allows)."""
    tail = [ZONE] if under_zone else []
    room = total - 1 - sum(len(label) + 1 for label in tail)
    labels: list[bytes] = []
    while room > 0:
        size = min(63, room - 1)
        if size < 1:  # a 1-octet remainder cannot hold a label: make the previous one shorter
            labels[-1] = labels[-1][:-1]
            size = 1
        labels.append((b"m" if c.chance(0.5) else b"M") * size)
        room -= size + 1
    return labels + tail


def name_labels(c: Chooser) -> list[bytes]:
    """The labels of a well-formed name (at most 255 octets, labels of at most 63)."""
    kind = c.integer(0, 19)
    if kind <= 9:
        labels = local_labels(c)
    elif kind <= 17:
        labels = outside_labels(c)
    elif kind == 18:
        labels = long_labels(c, c.choice((255, 254, 200)), c.chance(0.5))
    else:
        labels = []
    return [mangle_case(c, label) for label in labels]


# -- resource records --


def rr(name: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes, rdlength: int | None = None) -> bytes:
    rdlength = len(rdata) if rdlength is None else rdlength
    return name + struct.pack("!HHIH", rtype, rclass & 0xFFFF, ttl & 0xFFFFFFFF, rdlength & 0xFFFF) + rdata


def edns_options(c: Chooser) -> bytes:
    kind = c.integer(0, 7)
    if kind <= 2:
        return b""
    if kind == 3:  # a client cookie (RFC 7873)
        return struct.pack("!HH", 10, 8) + c.raw(8, 8)
    if kind == 4:  # padding (RFC 7830)
        size = c.integer(0, 300)
        return struct.pack("!HH", 12, size) + bytes(size)
    if kind == 5:  # client subnet (RFC 7871), maybe nonsense
        return struct.pack("!HHHBB", 8, 8, 1, 24, 0) + c.raw(4, 0)
    if kind == 6:  # an option whose length runs past its data
        return struct.pack("!HH", c.integer(0, 65535), c.integer(5, 65535)) + c.raw(4)
    return struct.pack("!HH", c.integer(0, 65535), 3) + c.raw(3, 3)  # an unknown option


def opt_record(c: Chooser, *, well_formed: bool = False) -> bytes:
    """An OPT pseudo-record (RFC 6891 §6.1.2): payload in the class, rcode/version/DO in the TTL."""
    payload = c.integer(0, 65535) if c.chance(0.1) else c.choice(OPT_PAYLOADS)
    version = c.choice(OPT_VERSIONS) if not well_formed or c.chance(0.2) else 0
    do_bit = 0x8000 if c.chance(0.3) else 0
    z = c.integer(0, 0x7FFF) if c.chance(0.1) else 0
    extended_rcode = c.integer(0, 255) if not well_formed and c.chance(0.1) else 0
    ttl = extended_rcode << 24 | version << 16 | do_bit | z
    if well_formed:
        options = c.choice((b"", b"", struct.pack("!HH", 10, 8) + b"\x01" * 8, struct.pack("!HH", 12, 4) + bytes(4)))
        return rr(b"\x00", TYPE_OPT, payload, ttl, options)
    owner = c.choice((b"\xc0\x0c", encode_name([b"opt"]))) if c.chance(0.1) else b"\x00"
    options = edns_options(c)
    rdlength = c.choice((len(options) + 1, max(0, len(options) - 1), 65535, 0)) if c.chance(0.15) else None
    return rr(owner, TYPE_OPT, payload, ttl, options, rdlength)


def random_record(c: Chooser, offset: int) -> bytes:
    """An answer/authority/additional record a query should not carry, good or bad."""
    owner = broken_name(c, offset) if c.chance(0.2) else c.choice((b"\x00", b"\xc0\x0c", encode_name([b"x", ZONE])))
    rtype = c.choice((1, 28, 6, 5, 2, 250, 249, 41, 0, 65535, 46, 16))
    if rtype == 1:
        rdata = c.raw(8) if c.chance(0.2) else c.raw(4, 4)
    elif rtype == 6:  # an SOA, as IXFR queries carry in the authority section
        rdata = b"\xc0\x0c\xc0\x0c" + struct.pack("!IIIII", *(c.integer(0, 2**32 - 1) for _ in range(5)))
    else:
        rdata = c.raw(40)
    rdlength = c.integer(0, 65535) if c.chance(0.1) else None
    return rr(owner, rtype, c.choice(QCLASSES), c.integer(0, 2**32 - 1), rdata, rdlength)


# -- broken names --


def broken_name(c: Chooser, offset: int) -> bytes:
    """A name that breaks RFC 1035's rules, written at ``offset`` of the message."""
    prefix = encode_name([mangle_case(c, c.choice(LOCAL_LABELS)) for _ in range(c.integer(0, 2))])[:-1]
    here = offset + len(prefix)  # where the broken part starts
    kind = c.integer(0, 11)
    if kind == 0:  # a label length over 63: the reserved 0x40 (extended) and 0x80 label types
        length = c.choice((64, 65, 0x40, 0x41, 0x7F, 0x80, 0xBF, 100))
        return prefix + bytes([length]) + c.raw(length) + b"\x00"
    if kind == 1:  # a length byte that runs past the end of the name (and maybe of the message)
        return prefix + bytes([c.integer(1, 63)]) + c.raw(3)
    if kind == 2:  # a pointer to itself
        return prefix + _pointer(here)
    if kind == 3:  # a pointer into the header
        return prefix + _pointer(c.integer(0, HEADER_LENGTH - 1))
    if kind == 4:  # a pointer past the end
        return prefix + _pointer(c.choice((0x3FFF, 0x3000, here + 2, here + 200, 1000)))
    if kind == 5:  # a loop through a label: a.a.a.a...
        return prefix + b"\x01a" + _pointer(here)
    if kind == 6:  # a pointer to the start of this very name (a loop when the prefix is not empty)
        return prefix + _pointer(offset)
    if kind == 7:  # a name over 255 octets
        return encode_name([b"L" * 63] * c.integer(5, 8))
    if kind == 8:  # exactly 256 octets: one over
        return encode_name(long_labels(c, 256, c.chance(0.5)))
    if kind == 9:  # a forward pointer (to whatever comes after the question)
        return prefix + _pointer(here + 6 + c.integer(0, 20))
    if kind == 10:  # the other kind bits: 0b01 and 0b10 as a "pointer"
        return prefix + bytes([c.choice((0x40, 0x80)) | c.integer(0, 0x3F), c.integer(0, 255)])
    return prefix  # no root label: the name runs into QTYPE


def _pointer(target: int) -> bytes:
    return struct.pack("!H", 0xC000 | (target & 0x3FFF))


def pointer_chain(offset: int, hops: int) -> bytes:
    """``hops`` pointers in a row, each to the one before, the first to a name at 12."""
    out = bytearray()
    target = HEADER_LENGTH
    for _ in range(hops):
        here = offset + len(out)
        out += _pointer(target)
        target = here
    return bytes(out)


# -- messages --


def header(c: Chooser, counts: Sequence[int], *, query: bool = True) -> bytes:
    flags = 0
    if not query or c.chance(0.06):
        flags |= QR
    opcode = 0 if c.chance(0.75) else c.integer(0, 15)
    flags |= opcode << 11
    for bit in (0x0400, TC, RD, 0x0080, 0x0040, 0x0020, 0x0010):  # AA TC RD RA Z AD CD
        if c.chance(0.5 if bit in (RD, 0x0020) else 0.1):
            flags |= bit
    if c.chance(0.1):
        flags |= c.integer(0, 15)  # an rcode in a query
    return struct.pack("!HHHHHH", c.integer(0, 0xFFFF), flags, *counts)


def lying_count(c: Chooser, honest: int) -> int:
    if not c.chance(0.2):
        return honest
    return c.choice((honest + 1, max(0, honest - 1), 0, 0xFFFF, honest + 2, c.integer(0, 0xFFFF), 2, 1))


def question(c: Chooser, offset: int) -> bytes:
    if c.chance(0.05):
        name = pointer_chain(offset, c.integer(1, 40))  # not even a name to point to first
    elif c.chance(0.2):
        name = broken_name(c, offset)
    else:
        name = encode_name(name_labels(c))
    qtype = c.integer(0, 65535) if c.chance(0.1) else c.choice(QTYPES)
    qclass = c.integer(0, 65535) if c.chance(0.1) else c.choice(QCLASSES)
    return name + struct.pack("!HH", qtype, qclass)


def malformed_message(c: Chooser) -> bytes:
    """A message built by the rules, with one or more of them broken."""
    body = bytearray()
    qdcount = c.choice((1, 1, 1, 1, 0, 2, 3))
    for _ in range(qdcount):
        body += question(c, HEADER_LENGTH + len(body))
    counts = [qdcount, 0, 0, 0]
    for section in (1, 2):
        if c.chance(0.1):
            for _ in range(c.integer(1, 3)):
                body += random_record(c, HEADER_LENGTH + len(body))
                counts[section] += 1
    if c.chance(0.5):
        body += opt_record(c)
        counts[3] += 1
        if c.chance(0.15):  # a second OPT (RFC 6891 §6.1.1: FORMERR)
            body += opt_record(c)
            counts[3] += 1
    if c.chance(0.1):
        body += random_record(c, HEADER_LENGTH + len(body))
        counts[3] += 1
    if c.chance(0.05):  # a chain of pointers, each to the one before, as owner names
        body += pointer_chain(HEADER_LENGTH + len(body), c.integer(2, 100)) + struct.pack("!HHIH", 1, 1, 0, 0)
        counts[3] += 1
    counts = [lying_count(c, count) for count in counts]
    message = bytearray(header(c, counts) + body)
    if c.chance(0.1):
        message += c.raw(20, 1)  # trailing garbage
    if c.chance(0.15) and len(message) > 1:
        del message[c.integer(1, len(message) - 1):]  # cut short
    if c.chance(0.15):
        for _ in range(c.integer(1, 4)):  # flip a few bits
            position = c.integer(0, len(message) - 1)
            message[position] ^= 1 << c.integer(0, 7)
    return bytes(message)


def valid_query(c: Chooser) -> bytes:
    """A well-formed query: one question, honest counts, at most one well-formed OPT."""
    labels = name_labels(c)
    if c.chance(0.04):
        labels = [binary_label(c), *labels[-2:]]
        if sum(len(label) + 1 for label in labels) + 1 > 255:
            labels = labels[:1]
    qtype = c.integer(0, 65535) if c.chance(0.05) else c.choice(QTYPES)
    qclass = c.choice(QCLASSES) if c.chance(0.2) else 1
    edns = c.chance(0.5)
    flags = RD if c.chance(0.7) else 0
    if c.chance(0.05):
        flags |= c.integer(1, 15) << 11  # another opcode: NOTIMP, still with the question
    if c.chance(0.15):
        flags |= c.choice((0x0020, 0x0010, 0x0030))  # AD, CD
    if c.chance(0.03):
        flags |= TC  # meaningless in a query (RFC 1035 §4.1.1): the reply's TC must be its own
    head = struct.pack("!HHHHHH", c.integer(0, 0xFFFF), flags, 1, 0, 0, 1 if edns else 0)
    message = head + encode_name(labels) + struct.pack("!HH", qtype, qclass)
    return message + opt_record(c, well_formed=True) if edns else message


def random_message(c: Chooser) -> bytes:
    return c.raw(c.choice((12, 30, 64, 300, 700)))


def header_then_random(c: Chooser) -> bytes:
    """A plausible query header (QR clear, one question), then random bytes."""
    counts = (1, 0, 0, c.choice((0, 0, 1)))
    flags = RD if c.chance(0.5) else 0
    return struct.pack("!HHHHHH", c.integer(0, 0xFFFF), flags, *counts) + c.raw(80)


def requery(c: Chooser, previous: bytes) -> bytes:
    """``previous`` (a plain query) again: another id, maybe other letter case or RD bit (the caches' paths)."""
    message = bytearray(previous)
    message[0:2] = struct.pack("!H", c.integer(0, 0xFFFF))
    if c.chance(0.6):  # flip the case of letters in the question name
        offset = HEADER_LENGTH
        while offset < len(message) and 0 < message[offset] <= 63:
            end = min(len(message), offset + 1 + message[offset])
            for i in range(offset + 1, end):
                if (0x41 <= message[i] <= 0x5A or 0x61 <= message[i] <= 0x7A) and c.chance(0.5):
                    message[i] ^= 0x20
            offset = end
    if c.chance(0.2):
        message[2] ^= RD >> 8
    return bytes(message)


KINDS: tuple[str, ...] = ("random", "header", "malformed", "malformed", "malformed", "valid", "valid", "repeat")


def fuzz_case(c: Chooser, history: Sequence[bytes] = (), kind: str | None = None) -> FuzzCase:
    """One case of ``kind`` (else any); ``history`` holds earlier valid queries to repeat."""
    kind = kind or c.choice(KINDS)
    if kind == "repeat" and not history:
        kind = "valid"
    valid = False
    if kind == "random":
        data = random_message(c)
    elif kind == "header":
        data = header_then_random(c)
    elif kind == "malformed":
        data = malformed_message(c)
    elif kind == "valid":
        data, valid = valid_query(c), True
    else:
        data, valid = requery(c, c.choice(history)), True
    return FuzzCase(data, tcp=c.chance(0.3), kind=kind, valid=valid, client=c.choice(CLIENTS))


# -- hypothesis strategies --


@st.composite
def cases(draw: Callable, kind: str | None = None) -> FuzzCase:
    """Any fuzz case (or one of ``kind``)."""
    return fuzz_case(DrawChooser(draw), kind=kind)


@st.composite
def sessions(draw: Callable, max_size: int = 6) -> list[FuzzCase]:
    """A few cases in a row for one resolver, where later ones may repeat earlier valid queries."""
    chooser = DrawChooser(draw)
    history: list[bytes] = []
    out: list[FuzzCase] = []
    for _ in range(draw(st.integers(1, max_size))):
        case = fuzz_case(chooser, history)
        if case.valid:
            history.append(case.data)
        out.append(case)
    return out


def random_bytes() -> st.SearchStrategy[FuzzCase]:
    """Plain random bytes (hypothesis's own), over UDP or TCP."""
    return st.builds(FuzzCase, data=st.binary(max_size=600), tcp=st.booleans(), kind=st.just("random"))


# -- hypothesis settings --

PROFILE = "dnscock-fuzz"
settings.register_profile(
    PROFILE,
    deadline=None,  # no timing assertions: a busy machine is not a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)


def fuzz_settings(max_examples: int, **overrides) -> settings:
    """The fuzz profile with ``max_examples`` times ``$DNSCOCK_FUZZ_SCALE`` (default 1: the CI budget)."""
    scale = float(os.environ.get("DNSCOCK_FUZZ_SCALE", "1"))
    return settings(settings.get_profile(PROFILE), max_examples=max(1, int(max_examples * scale)), **overrides)
