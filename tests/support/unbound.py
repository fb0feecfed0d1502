"""A real unbound (Debian's) on loopback, for tests: a resolver in front of dnscock, or a validating upstream.

    with Unbound(tmp_path, in_front_of_dnscock("127.53.0.1:53", forward_to=upstream.address)) as unbound:
        reply = unbound.query("web.docker")

    authority = FakeAuthority(SIGNED_ZONE, "a A 192.0.2.1")   # tests/support/fake_authority.py
    with Unbound(tmp_path, validating_upstream(authority.address)) as unbound:
        unbound.query("a.signed.test")           # SERVFAIL: bogus
        unbound.query("a.signed.test", cd=True)  # the data: checking disabled (RFC 4035 §3.2.2)

``Unbound(directory, *config)`` writes ``unbound.conf`` (a ``server:`` clause of its own,
then the config texts given, ``server:`` clauses of their own included) and logs to
``unbound.log``, both in ``directory``; ``start()`` runs ``unbound -d -c unbound.conf``
on a free port of 127.0.0.1 (or the ``host`` and ``port`` given) and returns once it
answers a query; ``stop()`` ends it (SIGTERM, then SIGKILL). In a test, ``start_or_skip``
starts it or skips the test when unbound cannot be had here (in CI, ``CI`` set, it fails);
``skipped_when_unavailable()`` does the same around ``loopback_with_free_port_53()``.
Config texts come from ``server(**options)``, ``stub_zone``, ``forward_zone``,
``refuse_other_names`` and the two presets, ``in_front_of_dnscock`` and
``validating_upstream``, or are written by hand.

The binary is Debian's package, extracted by ``scripts/install-system-deps`` under
``/var/cache/dnscock-tests/unbound`` (``$DNSCOCK_TEST_CACHE``), never installed: the
package would start a system service that takes over the machine's DNS. As root, a
missing binary makes ``start()`` run that script once.

It only ever asks loopback: its queries leave from 127.0.0.1, which the kernel refuses
to send anywhere else (EINVAL), so the servers it asks must be on 127.0.0.0/8 (it may
listen on ::1); it has no root trust anchor; the presets forward or refuse every name
outside their zones (root hints unused); and no chroot, user switch, pidfile or syslog.

What unbound does with a stub (unbound 1.17.1, as tests/integration/test_unbound_fixture.py shows):

* ``stub-prime: yes``: unbound first asks the stub address (its port honoured) for
  ``docker. NS``, then sends every query to the addresses of the NS targets' glue, on
  **port 53**, the stub's port forgotten, even when the glue is the stub's own address.
  A stub on a high port then gets the priming query and nothing else. When the answer
  to ``docker. NS`` has no NS records (NODATA), priming fails and every name of the zone
  gets SERVFAIL at once: unbound does not fall back to the stub address.
  So a primed dnscock must answer ``docker. NS`` with NS records and glue, and listen on
  port 53 of the glue's address: ``loopback_with_free_port_53()`` finds a 127.53.x.y whose
  port 53 is free (any 127/8 address works on Linux without configuration; binding port
  53 needs root).
* ``stub-prime: no``: unbound sends the queries to the stub address and port as given.
* unbound answers some names itself (RFC 6761: ``test.``, ``invalid.``, ``localhost.``,
  ``onion.``...) before looking at stubs: ``stub_zone`` and ``forward_zone`` add a
  transparent ``local-zone`` so that their zone's names reach their servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.support.ports import free_port
from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "install-system-deps"
CACHE_DIR = Path(os.environ.get("DNSCOCK_TEST_CACHE", "/var/cache/dnscock-tests"))
UNBOUND_DIR = CACHE_DIR / "unbound"
UNBOUND_BINARY = UNBOUND_DIR / "usr" / "sbin" / "unbound"

SIGNED_ZONE = "signed.test"
# A trust anchor for a key nobody holds (ECDSA P-256, SHA-256 digest): unbound expects the
# zone to be signed with it, so unsigned answers from the zone are bogus.
UNKNOWN_KEY_DS = f"4711 13 2 {hashlib.sha256(b'dnscock tests: a key nobody holds').hexdigest()}"

PORT_53_NETWORK = "127.53"


class UnboundUnavailable(RuntimeError):
    """unbound, or what it needs here (port 53), cannot be had on this machine; the reason says why."""


class UnboundFailed(RuntimeError):
    """unbound could be had but did not start, or stopped answering: a real failure."""


# -- the binary --


def _runs(binary: Path) -> bool:
    try:
        return subprocess.run([binary, "-V"], capture_output=True, timeout=10, check=False).returncode == 0
    except OSError:
        return False


def unbound_binary() -> Path:
    """The extracted unbound; as root, runs scripts/install-system-deps once when it is missing or broken."""
    if _runs(UNBOUND_BINARY):
        return UNBOUND_BINARY
    if os.geteuid() != 0:
        raise UnboundUnavailable(f"{UNBOUND_BINARY} is missing (or its libraries are) and only root can "
                                 "extract it: run scripts/install-system-deps as root (make test does)")
    result = subprocess.run([INSTALL_SCRIPT], capture_output=True, text=True, timeout=900, check=False)
    if not _runs(UNBOUND_BINARY):
        raise UnboundUnavailable(f"{INSTALL_SCRIPT.name} did not provide {UNBOUND_BINARY} "
                                 f"(exit {result.returncode}): {result.stderr.strip()[-300:]}")
    return UNBOUND_BINARY


@contextlib.contextmanager
def skipped_when_unavailable() -> Iterator[None]:
    """Turns UnboundUnavailable into a skip of the test, or, in CI (``CI`` set), a failure."""
    try:
        yield
    except UnboundUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"in CI: {error}")
        pytest.skip(str(error))


def start_or_skip(unbound: Unbound) -> Unbound:
    """Starts ``unbound`` for a test; skips the test when unbound cannot be had here (fails it in CI)."""
    with skipped_when_unavailable():
        unbound.start()
    return unbound


# -- config texts --


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return '""' if value == "" else str(value)


def server(**options: object) -> str:
    """A ``server:`` clause: ``server(qname_minimisation=False, local_zone=['a. static', ...])``.

    Underscores become dashes, booleans yes and no, an empty string ``""``, and a list
    repeats its option. Other values are written as given: quote them where unbound wants
    one argument with spaces (``trust_anchor='"a. DS 1 13 2 AB"'``).
    """
    lines = ["server:"]
    for key, value in options.items():
        for each in value if isinstance(value, list | tuple) else [value]:
            lines.append(f"    {key.replace('_', '-')}: {_value(each)}")
    return "\n".join(lines) + "\n"


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def unbound_address(address: str) -> str:
    """``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` (port 53), as unbound writes it: ``HOST@PORT``."""
    if address.startswith("["):
        host, _, port = address[1:].partition("]:")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    return f"{host}@{port}" if port else host


def _let_through(name: str) -> str:
    # A local zone of the default ones (test., invalid., ...) would answer for the zone itself.
    return "" if name == "." else server(local_zone=f'"{name}" transparent')


def stub_zone(name: str, *servers: str, prime: bool = False) -> str:
    """A ``stub-zone`` asking ``servers`` (``HOST:PORT``) for ``name``; see the module's note on priming."""
    lines = ["stub-zone:", f'    name: "{_fqdn(name)}"']
    lines += [f"    stub-addr: {unbound_address(address)}" for address in servers]
    lines.append(f"    stub-prime: {_value(prime)}")
    return "\n".join(lines) + "\n" + _let_through(_fqdn(name))


def forward_zone(name: str, *servers: str) -> str:
    """A ``forward-zone`` sending queries for ``name`` (``.``: every other name) on to ``servers``."""
    lines = ["forward-zone:", f'    name: "{_fqdn(name)}"']
    lines += [f"    forward-addr: {unbound_address(address)}" for address in servers]
    return "\n".join(lines) + "\n" + _let_through(_fqdn(name))


def refuse_other_names() -> str:
    """REFUSED for names outside the stub and forward zones, rather than a walk from the root hints."""
    return server(local_zone='"." refuse')


def in_front_of_dnscock(dnscock: str, *, domain: str = "docker", forward_to: str | None = None,
                        prime: bool = True) -> str:
    """unbound as the resolver clients ask, dnscock (``HOST:PORT``) the authority for ``domain``.

    Other names go to ``forward_to`` (``HOST:PORT``, a FakeUpstream say), or are refused.
    With ``prime`` (the default) dnscock must answer ``DOMAIN. NS`` with glue, and listen on
    port 53 of the glue's address: see the module's note.
    """
    zone = _fqdn(domain)
    return (server(qname_minimisation=True, qname_minimisation_strict=False, domain_insecure=f'"{zone}"')
            + stub_zone(zone, dnscock, prime=prime)
            + (forward_zone(".", forward_to) if forward_to else refuse_other_names()))


def validating_upstream(authority: str, *, zone: str = SIGNED_ZONE, trust_anchor: str = UNKNOWN_KEY_DS,
                        forward_to: str | None = None) -> str:
    """A validating unbound that trusts ``trust_anchor`` (DS rdata) for ``zone``, served by ``authority``.

    ``authority`` (``HOST:PORT``) serves the zone unsigned, so unbound finds its answers
    bogus: SERVFAIL without CD, the data with CD. Other names go to ``forward_to``, or are
    refused.
    """
    return (server(trust_anchor=f'"{_fqdn(zone)} DS {trust_anchor}"')
            + stub_zone(zone, authority)
            + (forward_zone(".", forward_to) if forward_to else refuse_other_names()))


# -- port 53 --


def _port_53_free(host: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, 53))
            except PermissionError as error:
                raise UnboundUnavailable(f"cannot bind port 53 here ({error}): it needs root") from error
            except OSError:
                return False
    return True


def loopback_with_free_port_53(attempts: int = 50) -> str:
    """An address of 127.53.0.0/16 whose port 53 is free for UDP and TCP, for a server to bind at once.

    Addresses are tried in random order, so that tests running side by side rarely pick the
    same one. Raises UnboundUnavailable when port 53 cannot be bound (not root) or is taken
    everywhere (a server on 0.0.0.0:53).
    """
    picker = random.Random()
    for _ in range(attempts):
        host = f"{PORT_53_NETWORK}.{picker.randrange(256)}.{picker.randrange(1, 255)}"
        if _port_53_free(host):
            return host
    raise UnboundUnavailable(f"port 53 is taken on {attempts} addresses of {PORT_53_NETWORK}.0.0/16 "
                             "(a server on 0.0.0.0:53? see ss -lunp)")


# -- the server --


class Unbound:
    def __init__(self, directory: Path, *config: str, host: str = "127.0.0.1", port: int = 0,
                 verbosity: int = 1, start_timeout: float = 10.0) -> None:
        self.directory = Path(directory)
        self.config = "".join(config)
        self.host = host
        self.port = port  # 0: a free one, chosen at the first start and kept across restarts
        self.verbosity = verbosity
        self.start_timeout = start_timeout
        self.config_path = self.directory / "unbound.conf"
        self.log_path = self.directory / "unbound.log"
        self.process: subprocess.Popen | None = None
        # What it answers to ``id.server CH TXT``: whoever else holds the port cannot pass for it.
        self.identity = f"dnscock-tests-{secrets.token_hex(6)}"

    @property
    def address(self) -> str:
        """``HOST:PORT``, as dnscock's ``-nameserver`` takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def config_text(self) -> str:
        """The whole ``unbound.conf``: the fixture's own ``server:`` clause, then the config given."""
        ipv6 = ":" in self.host
        own = server(
            directory=f'"{self.directory}"', chroot="", username="", pidfile="",
            use_syslog=False, logfile="", log_time_ascii=True, verbosity=self.verbosity,
            val_log_level=2, log_servfail=True, num_threads=1, so_reuseport=False,
            interface=self.host, port=self.port, do_ip6=ipv6,
            access_control=["127.0.0.0/8 allow", "::1 allow"],
            # Queries leave from 127.0.0.1: the kernel refuses to send them off the machine.
            outgoing_interface="127.0.0.1", do_not_query_localhost=False,
            # No root trust anchor, nor its RFC 5011 updates, nor RFC 8145 key tag queries.
            auto_trust_anchor_file="", trust_anchor_signaling=False, root_key_sentinel=False,
            module_config='"validator iterator"',
            identity=f'"{self.identity}"', hide_identity=False,
        )
        return own + self.config

    # -- life cycle --

    def start(self) -> Self:
        """Starts unbound and returns once it answers; UnboundFailed (with its log) when it does not."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"unbound is already running on {self.address}")
        binary = unbound_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        chosen_here = self.port == 0
        for _ in range(3 if chosen_here else 1):
            if chosen_here:
                self.port = free_port(self.host)
            self.config_path.write_text(self.config_text())
            with open(self.log_path, "ab") as log:
                logged_before = log.tell()
                environ = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
                self.process = subprocess.Popen([binary, "-d", "-c", self.config_path], env=environ,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            exit_code = self._wait_until_answering()
            if exit_code is None:
                return self
            # Another process may have taken the free port in between: try another one.
            if not (chosen_here and b"could not open ports" in self.log_path.read_bytes()[logged_before:]):
                break
        raise UnboundFailed(f"unbound exited with code {exit_code}: {self.log_tail()}")

    def _wait_until_answering(self) -> int | None:
        """None once unbound answers; its exit code if it exits first. UnboundFailed on timeout."""
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            try:
                return self.process.wait(timeout=0.05)  # a pause between tries that notices an exit
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise UnboundFailed(f"unbound did not answer within {self.start_timeout:.0f}s: {self.log_tail()}")
        return None

    def _answers(self) -> bool:
        """Whether this unbound answers a CHAOS ``id.server`` query (which it answers itself) with its identity."""
        probe = dns.message.make_query("id.server.", "TXT", rdclass="CH")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            try:
                # Connected: a port nobody listens on yet refuses at once (ICMP) instead of timing out.
                sock.connect((self.host, self.port))
                sock.send(probe.to_wire())
                reply = dns.message.from_wire(sock.recv(65535))
            except (OSError, dns.exception.DNSException):
                return False
        texts = [text for rrset in reply.answer if rrset.rdtype == dns.rdatatype.TXT
                 for rdata in rrset for text in rdata.strings]
        return reply.id == probe.id and texts == [self.identity.encode()]

    def stop(self) -> int | None:
        """Stops unbound (SIGTERM, a wait, SIGKILL); returns its exit code (None if it never ran)."""
        if self.process is None:
            return None
        return stop_process(self.process, timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- use --

    def query(self, name: str, rdtype: str = "A", *, cd: bool = False, dnssec_ok: bool = False,
              tcp: bool = False, timeout: float = 5.0) -> dns.message.Message:
        """Asks unbound directly, with the CD bit when ``cd``, DO when ``dnssec_ok``."""
        message = dns.message.make_query(name, rdtype, want_dnssec=dnssec_ok)
        if cd:
            message.flags |= dns.flags.CD
        ask = dns.query.tcp if tcp else dns.query.udp
        return ask(message, self.host, port=self.port, timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(self.log().strip().splitlines()[-lines:]) or "(no log)"
