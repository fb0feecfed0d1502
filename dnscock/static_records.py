"""Static records from files (``-records FILE``), read at start and again whenever a file changes.

Two kinds of line, mixed freely; ``#`` starts a comment; names are full
names (inside the domain or not), ``*.`` in front for a wildcard (RFC 4592):

* hosts-file lines, ``IP name [name...]``: A or AAAA records for each name;
* one-record lines, ``name [ttl] TYPE value``, for A, AAAA, CNAME, TXT
  (one or more strings, quoted when they hold spaces), SRV (``priority
  weight port target``), MX (``preference exchange``) and PTR.

Each name is one record of the table, matched like an alias (exactly, or
below a wildcard): A and AAAA records give PTR answers for their addresses,
as containers' do; a name that is also a container's answers both. A file
is taken whole or not at all: a bad line rejects it, with one log line
naming ``file:line`` and why, and the version read before keeps serving.

``StaticFiles`` watches the files (their size, time and inode, once a
second) and reads a changed one again; SIGHUP reads them all at once.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shlex
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import gevent

from dnscock import wire
from dnscock.dnsname import is_valid_name
from dnscock.errors import ConfigError
from dnscock.packing import Name
from dnscock.records import Record, RecordStore, StaticRR

log = logging.getLogger("dnscock.static")

MAX_TTL = 2**31 - 1
CHECK_INTERVAL = 1.0  # seconds between two looks at the files
SETTLE = 0.1  # a changed file is read once it has not changed for this long
TYPES = ("A", "AAAA", "CNAME", "TXT", "SRV", "MX", "PTR")


class RecordsFileError(ConfigError):
    """A line of a records file that cannot be used: ``file:line: why``."""


def _name(text: str, where: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not is_valid_name(name.removeprefix("*.")):
        raise RecordsFileError(f"{where}: {text!r} is not a domain name")
    return name


def _target(text: str, where: str) -> tuple[str, bytes]:
    name = _name(text, where)
    if name.startswith("*"):
        raise RecordsFileError(f"{where}: {text!r}: a target cannot be a wildcard")
    return name, wire.name_to_wire(name)


def _number(text: str, what: str, where: str, top: int) -> int:
    if not text.isdigit() or int(text) > top:
        raise RecordsFileError(f"{where}: {what} {text!r} is not a number from 0 to {top}")
    return int(text)


def _rdata(rtype: str, values: list[str], where: str) -> tuple[StaticRR | None, str | None]:
    """(a record of a type other than A/AAAA, or None; an address for A/AAAA, or None)."""
    if rtype in ("A", "AAAA"):
        if len(values) != 1:
            raise RecordsFileError(f"{where}: {rtype} takes one address")
        try:
            address = ipaddress.ip_address(values[0])
        except ValueError:
            raise RecordsFileError(f"{where}: {values[0]!r} is not an IP address") from None
        if (address.version == 4) != (rtype == "A"):
            raise RecordsFileError(f"{where}: {values[0]!r} is not an IPv{4 if rtype == 'A' else 6} address")
        return None, str(address)
    if rtype == "TXT":
        if not values:
            raise RecordsFileError(f"{where}: TXT takes one or more strings")
        strings = [value.encode("utf-8") for value in values]
        if any(len(string) > 255 for string in strings):
            raise RecordsFileError(f"{where}: a TXT string is longer than 255 octets")
        return StaticRR(wire.TYPE_TXT, b"".join(bytes([len(s)]) + s for s in strings)), None
    if rtype in ("CNAME", "PTR"):
        if len(values) != 1:
            raise RecordsFileError(f"{where}: {rtype} takes one name")
        name, encoded = _target(values[0], where)
        return StaticRR(wire.TYPE_CNAME if rtype == "CNAME" else wire.TYPE_PTR, (Name(encoded),), name), None
    if rtype == "MX":
        if len(values) != 2:
            raise RecordsFileError(f"{where}: MX takes a preference and an exchange")
        preference = _number(values[0], "preference", where, 65535)
        _, encoded = _target(values[1], where)
        return StaticRR(wire.TYPE_MX, (struct.pack("!H", preference), Name(encoded))), None
    if rtype == "SRV":
        if len(values) != 4:
            raise RecordsFileError(f"{where}: SRV takes priority, weight, port and target")
        numbers = [_number(value, what, where, 65535)
                   for value, what in zip(values[:3], ("priority", "weight", "port"))]
        _, encoded = _target(values[3], where)
        return StaticRR(wire.TYPE_SRV, struct.pack("!HHH", *numbers) + encoded), None  # never compressed
    raise RecordsFileError(f"{where}: {rtype!r} is not one of {', '.join(TYPES)}")


@dataclass
class _Entry:
    ttl: int | None = None
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    rrs: tuple[StaticRR, ...] = ()

    def add_ttl(self, ttl: int | None) -> None:
        # One record of the table has one TTL: the lowest of its lines'.
        if ttl is not None:
            self.ttl = ttl if self.ttl is None else min(self.ttl, ttl)


def parse(path: str, text: str) -> list[Record]:
    """The records of one file; raises RecordsFileError at the first bad line."""
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as error:
            raise RecordsFileError(f"{where}: {error}") from None
        if not fields:
            continue
        try:
            ipaddress.ip_address(fields[0])
            is_hosts_line = True
        except ValueError:
            is_hosts_line = False
        if is_hosts_line:
            if len(fields) < 2:
                raise RecordsFileError(f"{where}: an address with no name")
            address = str(ipaddress.ip_address(fields[0]))
            for name in (_name(field, where) for field in fields[1:]):
                entry = entries.setdefault(name, _Entry())
                if ":" in address:
                    entry.ipv6 = tuple(dict.fromkeys(entry.ipv6 + (address,)))
                else:
                    entry.ipv4 = tuple(dict.fromkeys(entry.ipv4 + (address,)))
            continue
        name = _name(fields[0], where)
        rest = fields[1:]
        ttl = None
        if rest and rest[0].isdigit():
            ttl = _number(rest.pop(0), "TTL", where, MAX_TTL)
        if not rest:
            raise RecordsFileError(f"{where}: no type (write name [ttl] TYPE value)")
        rtype = rest.pop(0).upper()
        if rtype == "IN" and rest:  # the class, as zone files may write it
            rtype = rest.pop(0).upper()
        rr, address = _rdata(rtype, rest, where)
        entry = entries.setdefault(name, _Entry())
        entry.add_ttl(ttl)
        if address is not None:
            if rtype == "A":
                entry.ipv4 = tuple(dict.fromkeys(entry.ipv4 + (address,)))
            else:
                entry.ipv6 = tuple(dict.fromkeys(entry.ipv6 + (address,)))
        else:
            entry.rrs += (rr,)
    for name, entry in entries.items():
        if any(rr.rtype == wire.TYPE_CNAME for rr in entry.rrs) and (entry.ipv4 or entry.ipv6 or len(entry.rrs) > 1):
            raise RecordsFileError(f"{path}: {name} has a CNAME and other records (RFC 1034 §3.6.2)")
    source = f"file:{path}"
    return [Record(id=f"static:{path}:{name}", container=name, labels=(), aliases=(name,), ipv4=entry.ipv4,
                   ipv6=entry.ipv6, ttl=entry.ttl, static=entry.rrs, name=name, source=source, kind="static",
                   fqdn=name)
            for name, entry in sorted(entries.items())]


def read(path: str) -> list[Record]:
    """The records of the file at ``path``; raises RecordsFileError (unreadable, or a bad line)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise RecordsFileError(f"{path}: cannot be read: {getattr(error, 'strerror', None) or error}") from None
    return parse(path, text)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class StaticFiles:
    """The records files of ``-records``: loaded at start, read again when changed or on ``reload()``."""

    def __init__(self, paths: Sequence[str], store: RecordStore) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.store = store
        self._stamps: dict[str, tuple[int, int, int] | None] = {}
        self._greenlet: gevent.Greenlet | None = None
        self.failures: dict[str, str] = {}  # path -> why its last change was rejected (for /health)

    def load(self) -> None:
        """Reads every file now, at start; raises RecordsFileError for the first that cannot be used."""
        for path in self.paths:
            self._stamps[path] = _stamp(path)
            self.store.replace_all(read(path), f"file:{path}")

    def start(self) -> None:
        """Logs what was read, and watches the files from now on."""
        for path in self.paths:
            log.info("records file %s: %d names", path,
                     sum(1 for record in self.store if record.source == f"file:{path}"))
        if self.paths:
            self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def reload(self, only_changed: bool = False) -> None:
        """Reads the files again (the changed ones only, with ``only_changed``); a bad one keeps its last version."""
        for path in self.paths:
            stamp = _stamp(path)
            if only_changed and stamp == self._stamps.get(path):
                continue
            if only_changed:
                # Being written? An editor or a shell writes in pieces: read it once it holds still.
                gevent.sleep(SETTLE)
                if _stamp(path) != stamp:
                    continue
            self._stamps[path] = stamp
            try:
                records = read(path)
            except RecordsFileError as error:
                self.failures[path] = str(error)
                log.warning("records file rejected, its last version keeps serving: %s", error)
                continue
            self.failures.pop(path, None)
            added, removed = self.store.replace_all(records, f"file:{path}")
            if added or removed or not only_changed:
                log.info("records file %s read again: %d names (%d new or changed, %d gone)", path, len(records),
                         len(added), len(removed))

    def _watch(self) -> None:
        while True:
            gevent.sleep(CHECK_INTERVAL)
            try:
                self.reload(only_changed=True)
            except Exception:
                log.exception("failed to read the records files again")
