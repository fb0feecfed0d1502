"""``-host-resolver``: systemd-resolved sends the domain (and the networks' reverse zones) to dnscock.

Over the system bus (jeepney, imported only when this is on), dnscock sets
on a link of its own (``own_link``): its listen address and port as the
link's DNS server (``SetLinkDNSEx``; a resolved older than 246 takes port
53 only, through ``SetLinkDNS``), the routing-only domains ``~<domain>``
and the reverse zones of the containers' subnets, DNSSEC off (resolved
would otherwise want signatures for a domain with no trust anchor), not a
default route, no LLMNR or mDNS. The host's programs then resolve the
containers' names through resolved (``resolvectl``, the 127.0.0.53 stub,
nss-resolve), and every other name as before.

It stays registered: a greenlet compares what resolved holds for the link
with what it should hold every ``POLL`` seconds, and at once when resolved
(re)appears on the bus (``NameOwnerChanged``), and sets it again when they
differ: after resolved restarted with its state wiped, after the reverse
zones changed, after somebody reverted the link, after ``-dns=bridge``
moved. A link somebody deleted is made again (while dnscock is root). On SIGTERM/SIGINT it reverts the link, and closing the link deletes
it; after a SIGKILL the kernel deletes the link all the same, and resolved
forgets it: nothing is left for a later start to clean up.

resolved lets only root (or whom polkit allows) change links. The bus
connection and the link are made before ``-user`` drops root; resolved
judges a caller by the connection, so re-registering later still works.
A refusal gets one warning saying what to do.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent

from dnscock.addresses import Address
from dnscock.errors import DnscockError
from dnscock.own_link import OwnLink, OwnLinkError

log = logging.getLogger("dnscock.resolved")

RESOLVE1 = "org.freedesktop.resolve1"
MANAGER_PATH = "/org/freedesktop/resolve1"
MANAGER = "org.freedesktop.resolve1.Manager"
LINK = "org.freedesktop.resolve1.Link"
POLL = 0.5  # seconds between two checks of what resolved holds
CALL_TIMEOUT = 2.0
MAX_DOMAINS = 256  # resolved keeps at most this many domains per link
POLKIT_HINT = ("run dnscock as root (-user drops root after registering), or allow it with the polkit rule in "
               "the README (\"Use it from the host and from containers\")")
_REFUSED = ("org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


class ResolvedError(DnscockError):
    """resolved (or the bus) said no; ``name`` is the D-Bus error name, when there is one."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Wanted:
    """What resolved should hold for the link."""

    server: Address
    domains: tuple[str, ...]  # routing-only, without the "~"


class Registration:
    """Keeps resolved's settings for dnscock's link as they should be, from ``open()`` to ``stop()``."""

    def __init__(self, mode: str, zone: str, link_address: str, server: Callable[[], Address | None],
                 reverse_zones: Callable[[], list[str]], poll: float = POLL) -> None:
        self.mode = mode
        self.zone = zone
        self.link = OwnLink(ipaddress.ip_interface(link_address))
        self.server = server  # where dnscock listens now (None: nowhere yet)
        self.reverse_zones = reverse_zones
        self.poll = poll
        self.registered: Wanted | None = None  # what resolved holds, as far as dnscock knows
        self.registrations = 0
        self._connection: Any = None
        self._signals: Any = None  # NameOwnerChanged of resolve1, queued by jeepney
        self._greenlet: gevent.Greenlet | None = None
        self._problem = ""
        self._legacy_dns = False  # resolved < 246: SetLinkDNS, port 53 only
        self._truncated = False

    # -- life cycle --

    def open(self) -> bool:
        """As root, before -user: the bus connection and the link. False: nothing to keep (said in the log)."""
        try:
            self._connect()
        except (OSError, ResolvedError) as error:
            if self.mode == "auto":
                log.info("-host-resolver=auto: no system bus (%s): not registering with systemd-resolved", error)
                return False
            # -host-resolver=resolved: the link anyway, and the first check says what is wrong with the bus.
        else:
            running = self._resolved_running()
            if self.mode == "auto" and not running:
                log.info("-host-resolver=auto: systemd-resolved is not running: not registering with it")
                self.close()
                return False
            if self.mode == "auto":
                log.info("-host-resolver=auto: systemd-resolved is running: registering with it")
        try:
            self.link.open()
        except OwnLinkError as error:
            self._warn(f"cannot register with systemd-resolved: {error} (a link of dnscock's own needs "
                       f"CAP_NET_ADMIN and /dev/net/tun): {POLKIT_HINT}")
            self.close()
            return False
        log.info("made link %s (%s) for systemd-resolved", self.link.name, self.link.address)
        self._keep()
        return True

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Reverts the link in resolved, then deletes it."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
        if self.registered is not None and self._connection is not None and self.link.is_open:
            try:
                self._call(MANAGER_PATH, MANAGER, "RevertLink", "i", self.link.index)
                log.info("systemd-resolved: link %s reverted", self.link.name)
            except (OSError, ResolvedError, TimeoutError) as error:
                log.warning("systemd-resolved: cannot revert link %s: %s (deleting it undoes it all the same)",
                            self.link.name, error)
        self.registered = None
        self.close()

    def close(self) -> None:
        self.link.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def health(self) -> dict[str, Any]:
        """For /health: whether resolved holds what it should."""
        return {"mode": self.mode, "link": self.link.name or None, "registered": self.registered is not None,
                "server": str(self.registered.server) if self.registered else None,
                "domains": list(self.registered.domains) if self.registered else [],
                "problem": self._problem or None}

    # -- keeping it registered --

    def _run(self) -> None:
        while True:
            try:
                self._wait()
                self._keep()
            except Exception as error:  # noqa: BLE001 - the keeper must outlive any surprise from the bus
                log.exception("systemd-resolved registration: unexpected %s; going on", type(error).__name__)
                self._lost(error)
                gevent.sleep(self.poll)

    def _wait(self) -> None:
        """Sleeps ``poll`` seconds, or less when resolved's bus name changes owner."""
        if self._connection is None or self._signals is None:
            gevent.sleep(self.poll)
            return
        try:
            self._connection.recv_until_filtered(self._signals, timeout=self.poll)
        except TimeoutError:
            return
        except OSError as error:
            self._lost(error)
            return
        self._signals.clear()  # every change is looked at anew: their order does not matter

    def _keep(self) -> None:
        try:
            self._check()
        except (OSError, EOFError) as error:
            self._lost(error)
        except ResolvedError as error:
            self.registered = None
            if error.name in _REFUSED:
                self._warn(f"systemd-resolved refused to register {self.link.name}: {error}: {POLKIT_HINT}")
            else:
                self._warn(f"systemd-resolved: {error}; trying again")
        except OwnLinkError as error:
            self.registered = None
            self._warn(f"link {self.link.name}: {error}")

    def _check(self, remade: bool = False) -> None:
        if not self.link.is_open:
            return  # deleted, and it could not be made again: said once
        if self._connection is None:
            self._connect()
        state = self.link.state()
        if state is None:
            if not remade and self._remake_link():
                self._check(remade=True)
            return
        if not state.has_carrier:
            self.link.set_up()
        if not self._resolved_running():
            self.registered = None
            self._warn("systemd-resolved is not running: waiting for it")
            return
        wanted = self._wanted()
        if wanted is None:
            return  # not listening yet (-dns=bridge)
        if self._holds(wanted):
            if self.registered != wanted:
                self.registered = wanted  # it held them already (dnscock restarted on the same link)
            return
        again = self.registrations > 0
        self._register(wanted)
        self.registered = wanted
        self.registrations += 1
        self._problem = ""
        log.info("systemd-resolved %s: ~%s to %s on link %s", "registered again" if again else "registered",
                 ", ~".join(wanted.domains), wanted.server, self.link.name)

    def _remake_link(self) -> bool:
        """Somebody deleted the link: make another (as root; after -user, only say so)."""
        self.registered = None
        gone = self.link.name
        self.link.close()
        try:
            self.link.open()
        except OwnLinkError as error:
            self._warn(f"link {gone} was deleted by somebody and cannot be made again ({error}): systemd-resolved "
                       f"no longer sends {self.zone} to dnscock until it restarts")
            return False
        log.warning("link %s was deleted by somebody: made link %s again", gone, self.link.name)
        return True

    def _wanted(self) -> Wanted | None:
        server = self.server()
        if server is None:
            return None
        domains = (self.zone, *self.reverse_zones())
        if len(domains) > MAX_DOMAINS:
            if not self._truncated:
                log.warning("%d routing domains, resolved keeps %d: the reverse zones of some networks are left out",
                            len(domains), MAX_DOMAINS)
            domains = domains[:MAX_DOMAINS]
        self._truncated = len(domains) == MAX_DOMAINS
        return Wanted(server.reachable(), domains)

    def _holds(self, wanted: Wanted) -> bool:
        """Does resolved hold ``wanted`` for the link now?"""
        path = self._call(MANAGER_PATH, MANAGER, "GetLink", "i", self.link.index)[0]
        properties = {name: value for name, (_, value) in
                      self._call(path, "org.freedesktop.DBus.Properties", "GetAll", "s", LINK)[0].items()}
        family, packed = _packed(wanted.server.host)
        if self._legacy_dns:
            servers_match = [tuple(server) for server in properties.get("DNS", [])] == [(family, packed)]
        else:
            servers_match = [tuple(server) for server in properties.get("DNSEx", [])] == [
                (family, packed, wanted.server.port, "")]
        return (servers_match
                and sorted(tuple(domain) for domain in properties.get("Domains", [])) == sorted(
                    (domain, True) for domain in wanted.domains)
                and properties.get("DNSSEC") == "no"
                and properties.get("LLMNR", "no") == "no"
                and properties.get("MulticastDNS", "no") == "no")

    def _register(self, wanted: Wanted) -> None:
        index = self.link.index
        family, packed = _packed(wanted.server.host)
        try:
            self._call(MANAGER_PATH, MANAGER, "SetLinkDNSEx", "ia(iayqs)", index,
                       [(family, packed, wanted.server.port, "")])
        except ResolvedError as error:
            if error.name != _UNKNOWN_METHOD:
                raise
            if wanted.server.port != 53:
                raise ResolvedError(f"this systemd-resolved (older than 246) takes DNS servers on port 53 only, "
                                    f"and dnscock listens on {wanted.server}: listen on port 53 (-dns)") from None
            self._legacy_dns = True
            self._call(MANAGER_PATH, MANAGER, "SetLinkDNS", "ia(iay)", index, [(family, packed)])
        self._call(MANAGER_PATH, MANAGER, "SetLinkDomains", "ia(sb)", index,
                   [(domain, True) for domain in wanted.domains])
        self._call(MANAGER_PATH, MANAGER, "SetLinkDNSSEC", "is", index, "no")
        self._call(MANAGER_PATH, MANAGER, "SetLinkLLMNR", "is", index, "no")
        self._call(MANAGER_PATH, MANAGER, "SetLinkMulticastDNS", "is", index, "no")
        try:
            self._call(MANAGER_PATH, MANAGER, "SetLinkDefaultRoute", "ib", index, False)
        except ResolvedError as error:
            if error.name != _UNKNOWN_METHOD:  # older than 246: routing-only domains are no default route anyway
                raise

    # -- the bus --

    def _connect(self) -> None:
        from jeepney import MatchRule
        from jeepney.io.blocking import open_dbus_connection

        try:
            connection = open_dbus_connection("SYSTEM", auth_timeout=CALL_TIMEOUT)
        except (OSError, KeyError, ValueError, TimeoutError) as error:
            raise ResolvedError(f"cannot connect to the system bus: {error}") from None
        rule = MatchRule(type="signal", sender="org.freedesktop.DBus", interface="org.freedesktop.DBus",
                         member="NameOwnerChanged", path="/org/freedesktop/DBus")
        rule.add_arg_condition(0, RESOLVE1)
        self._connection = connection
        self._signals = connection.filter(rule, bufsize=16).queue
        self._call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", rule.serialise(),
                   destination="org.freedesktop.DBus")

    def _lost(self, error: BaseException) -> None:
        self.registered = None
        if self._connection is not None:
            self._connection.close()
        self._connection = self._signals = None
        self._warn(f"lost the system bus ({error or type(error).__name__}): connecting again (as a user other than "
                   f"root, resolved may refuse: {POLKIT_HINT})")

    def _resolved_running(self) -> bool:
        return bool(self._call("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", RESOLVE1,
                               destination="org.freedesktop.DBus")[0])

    def _call(self, path: str, interface: str, method: str, signature: str, *args: Any,
              destination: str = RESOLVE1) -> tuple:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.low_level import HeaderFields

        if self._connection is None:
            raise ResolvedError("not connected to the system bus")
        message = new_method_call(DBusAddress(path, bus_name=destination, interface=interface), method,
                                  signature, args)
        reply = self._connection.send_and_get_reply(message, timeout=CALL_TIMEOUT)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "")
            detail = reply.body[0] if reply.body else name
            raise ResolvedError(f"{method}: {detail}", name)
        return reply.body

    def _warn(self, problem: str) -> None:
        """One warning per problem, not one per check."""
        if problem != self._problem:
            self._problem = problem
            log.warning("%s", problem)


def _packed(host: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return int(family), socket.inet_pton(family, host)
