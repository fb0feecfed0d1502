"""Asking a server on 127.0.0.1 about a name (dnspython): once, once more over TCP when truncated, until it
answers at all, or over and over until its answer changes (``Poller``)."""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from bench.errors import BenchError


def ask(port: int, name: str, rdtype: str = "A", timeout: float = 3.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=timeout)


def ask_whole(port: int, name: str) -> dns.message.Message:
    """``ask``, again over TCP when the UDP answer was truncated."""
    reply = ask(port, name)
    if reply.flags & dns.flags.TC:
        reply = dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3.0)
    return reply


def addresses(reply: dns.message.Message) -> list[str]:
    """The A addresses of the answer, sorted."""
    return sorted(rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset)


def truncated(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.TC)


def wait_for_reply(port: int, name: str, timeout: float, process: subprocess.Popen, what: str) -> None:
    """Until the server on ``port`` answers at all (any rcode)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} before answering")
        try:
            ask(port, name, timeout=0.2)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f}s") from None
            time.sleep(0.02)


class Poller:
    """Asks a server about one name every ~1 ms until it answers with an address (``want_answer``) or not.

    "Not" is NXDOMAIN, or NODATA (NOERROR, no address) for a dnscock that
    keeps a stopped container's names a while (a grace period). With
    ``address``, only that address counts: an answer must hold it, "not"
    is any answer without it. ``interval``: seconds between two queries.
    ``addresses`` are those of the reply that ended it; ``queries`` counts
    the queries sent (1: the first reply already said so).
    """

    def __init__(self, port: int, name: str, want_answer: bool, address: str | None = None,
                 interval: float = 0.001) -> None:
        self.port, self.name, self.want_answer = port, name, want_answer
        self.address, self.interval = address, interval
        self.until = time.monotonic() + 120  # bounded properly by finish()
        self.result: float | None = None
        self.rcode = ""
        self.addresses: list[str] = []
        self.queries = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect(("127.0.0.1", self.port))
                while time.monotonic() < self.until:
                    message = dns.message.make_query(self.name, "A")
                    sock.send(message.to_wire())
                    self.queries += 1
                    reply = None
                    if select.select([sock], [], [], 0.5)[0]:
                        reply = dns.message.from_wire(sock.recv(65535))
                    received = time.monotonic()
                    if reply is not None and reply.id == message.id and self._done(reply):
                        self.result = received
                        self.rcode = dns.rcode.to_text(reply.rcode())
                        self.addresses = addresses(reply)
                        return
                    time.sleep(self.interval)
        except BaseException as error:
            self.error = error

    def _done(self, reply: dns.message.Message) -> bool:
        found = addresses(reply)
        if self.address is not None:
            found_it = self.address in found
            answered = reply.rcode() == dns.rcode.NOERROR and found_it
            gone = reply.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR) and not found_it
        else:
            answered = reply.rcode() == dns.rcode.NOERROR and bool(found)
            gone = reply.rcode() == dns.rcode.NXDOMAIN or (reply.rcode() == dns.rcode.NOERROR and not found)
        return answered if self.want_answer else gone

    def finish(self, until: float) -> float | None:
        """The moment the answer was as wanted, or None when it was not by ``until``."""
        self.until = until
        self._thread.join()
        if self.error is not None:
            raise BenchError(f"polling {self.name}: {self.error}")
        return self.result
