"""Queries to a dnscock that runs out of the test's hands (a container, compose, honcho)."""

from __future__ import annotations

import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from tests.support.fake_upstream import ANSWER_IP

FORWARDED_NAME = "forwarded.example.org"
__all__ = ["ANSWER_IP", "FORWARDED_NAME", "query", "addresses", "wait_for_addresses", "descendants", "alive",
           "start_time"]


def query(port: int, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0,
          host: str = "127.0.0.1") -> dns.message.Message:
    message = dns.message.make_query(name, rdtype)
    ask = dns.query.tcp if tcp else dns.query.udp
    return ask(message, host, port=port, timeout=timeout)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.address for rrset in reply.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                  for rr in rrset)


def wait_for_addresses(port: int, name: str, expected: list[str], *, timeout: float = 20.0, tcp: bool = False,
                       log=lambda: "") -> dns.message.Message:
    """Queries until ``name`` answers ``expected``: the server may still be starting or syncing."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            reply = query(port, name, tcp=tcp)
            if addresses(reply) == sorted(expected):
                return reply
            last = reply
        except (dns.exception.Timeout, OSError) as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not answer {expected} within {timeout:.0f}s; last: {last!r}\n"
                                 f"log:\n{log()}")
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): tells a process from a later one given its PID."""
    fields = _stat(pid)
    return fields[19] if fields else None


def alive(pid: int, started: str | None = None) -> bool:
    """Running, and the same process if ``started`` is given (a zombie, dead but not reaped, is gone)."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    return started is None or fields[19] == started
