"""The registration's decisions against a fake resolved (the real one: tests/docker/test_host_resolver.py)."""

from __future__ import annotations

import logging
import socket

import pytest

from dnscock.config import Address
from dnscock.own_link import IFF_LOWER_UP, IFF_UP, LinkState
from dnscock.resolved import MAX_DOMAINS, Registration, ResolvedError

UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


class FakeLink:
    name, index, is_open = "dnscock0", 7, True

    def state(self) -> LinkState:
        return LinkState(self.index, IFF_UP | IFF_LOWER_UP)

    def set_up(self) -> None:
        raise AssertionError("the link has carrier")

    def close(self) -> None:
        self.is_open = False


class FakeResolved(Registration):
    """resolved as a dict of link properties; ``refuse`` and ``unknown`` methods answer D-Bus errors."""

    def __init__(self, port: int = 5300, domains: tuple[str, ...] = (), refuse: bool = False,
                 unknown: tuple[str, ...] = ()) -> None:
        super().__init__("resolved", "docker", "169.254.53.53/32", server=lambda: Address("0.0.0.0", port),
                         reverse_zones=lambda: list(domains))
        self.link = FakeLink()
        self._connection = object()
        self.refuse, self.unknown = refuse, unknown
        self.properties: dict[str, object] = {"DNSEx": [], "Domains": [], "DNSSEC": "allow-downgrade",
                                              "LLMNR": "yes", "MulticastDNS": "no"}
        self.calls: list[str] = []

    def _call(self, path, interface, method, signature, *args, destination=""):
        self.calls.append(method)
        if method == "NameHasOwner":
            return (True,)
        if method == "GetLink":
            return ("/org/freedesktop/resolve1/link/_37",)
        if method == "GetAll":
            return ({name: ("v", value) for name, value in self.properties.items()},)
        if self.refuse:
            raise ResolvedError(f"{method}: Access denied", "org.freedesktop.DBus.Error.AccessDenied")
        if method in self.unknown:
            raise ResolvedError(f"{method}: Unknown method", UNKNOWN_METHOD)
        value = args[1]
        key = {"SetLinkDNSEx": "DNSEx", "SetLinkDNS": "DNS", "SetLinkDomains": "Domains", "SetLinkDNSSEC": "DNSSEC",
               "SetLinkLLMNR": "LLMNR", "SetLinkMulticastDNS": "MulticastDNS"}.get(method)
        if key:
            self.properties[key] = value
        return ()


def sets(registration: FakeResolved) -> list[str]:
    return [call for call in registration.calls if call.startswith("SetLink")]


def test_registers_once_then_only_checks():
    registration = FakeResolved(domains=("17.172.in-addr.arpa",))
    registration._keep()
    assert sets(registration) == ["SetLinkDNSEx", "SetLinkDomains", "SetLinkDNSSEC", "SetLinkLLMNR",
                                  "SetLinkMulticastDNS", "SetLinkDefaultRoute"]
    assert registration.properties["DNSEx"] == [(socket.AF_INET, socket.inet_aton("127.0.0.1"), 5300, "")]
    assert registration.properties["Domains"] == [("docker", True), ("17.172.in-addr.arpa", True)]
    registration.calls.clear()
    registration._keep()
    assert sets(registration) == []
    assert registration.health()["registered"] is True
    # Somebody changed one thing: all of it is set again.
    registration.properties["DNSSEC"] = "yes"
    registration._keep()
    assert "SetLinkDNSSEC" in sets(registration)


def test_an_old_resolved_takes_port_53_only(caplog):
    registration = FakeResolved(port=53, unknown=("SetLinkDNSEx", "SetLinkDefaultRoute"))
    registration._keep()
    assert registration.properties["DNS"] == [(socket.AF_INET, socket.inet_aton("127.0.0.1"))]
    assert registration.registered is not None
    registration = FakeResolved(port=5300, unknown=("SetLinkDNSEx",))
    with caplog.at_level(logging.WARNING, "dnscock.resolved"):
        registration._keep()
    assert registration.registered is None
    assert "older than 246) takes DNS servers on port 53 only" in caplog.text


def test_a_refusal_is_one_warning_saying_what_to_do(caplog):
    registration = FakeResolved(refuse=True)
    with caplog.at_level(logging.WARNING, "dnscock.resolved"):
        for _ in range(5):
            registration._keep()
    assert len(caplog.records) == 1
    assert "refused to register dnscock0" in caplog.text and "polkit rule" in caplog.text
    assert registration.health()["problem"] and not registration.health()["registered"]


def test_at_most_max_domains_with_one_warning(caplog):
    zones = tuple(f"{n}.10.in-addr.arpa" for n in range(MAX_DOMAINS + 10))
    registration = FakeResolved(domains=zones)
    with caplog.at_level(logging.WARNING, "dnscock.resolved"):
        registration._keep()
        registration._keep()
    assert len(registration.properties["Domains"]) == MAX_DOMAINS
    assert len(caplog.records) == 1 and "resolved keeps 256" in caplog.text


@pytest.mark.parametrize(("listen", "server"), [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("10.0.0.5", "10.0.0.5")])
def test_the_server_is_where_the_host_reaches_dnscock(listen, server):
    registration = FakeResolved()
    registration.server = lambda: Address(listen, 53)
    assert registration._wanted().server == Address(server, 53)
