"""The private systemd-resolved (tests/support/resolved.py): it starts and stops leaving nothing, takes link
settings from resolvectl and over D-Bus as dnscock will set them, routes only their domains to their servers,
and keeps or loses them as documented.

As root only (namespaces, mounts); outside CI the tests skip when it cannot be had here, in CI they fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from jeepney.wrappers import DBusErrorResponse

from tests.support.resolved import LINK_ADDRESS, PYTHON, RESOLVECTL, LinkServer, PrivateResolved, start_or_skip

ANSWER = "192.0.2.7"
NO_ROUTE = "No appropriate name servers or networks"


@pytest.fixture
def resolved(tmp_path):
    resolved = start_or_skip(PrivateResolved(tmp_path / "resolved"))
    yield resolved
    resolved.stop()
    assert not resolved.leftovers()


@pytest.fixture
def nameserver(resolved):
    server = resolved.start_nameserver(answer_ip=ANSWER, ptr="web.test.lan.")
    yield server
    server.stop()


def register(resolved: PrivateResolved, server_address: str, *domains: str) -> None:
    """As a person would, with resolvectl."""
    resolved.resolvectl("dns", resolved.link, server_address, check=True)
    resolved.resolvectl("domain", resolved.link, *domains, check=True)


def register_like_dnscock(resolved: PrivateResolved, port: int, *domains: str) -> int:
    """Over D-Bus, with the calls and signatures dnscock uses; returns the ifindex."""
    ifindex = resolved.ifindex()
    resolved.call("SetLinkDNSEx", "ia(iayqs)", ifindex,
                  [(socket.AF_INET, socket.inet_pton(socket.AF_INET, "127.0.0.1"), port, "")])
    resolved.call("SetLinkDomains", "ia(sb)", ifindex, [(domain, True) for domain in domains])
    resolved.call("SetLinkDNSSEC", "is", ifindex, "no")
    resolved.call("SetLinkDefaultRoute", "ib", ifindex, False)
    return ifindex


def query(resolved: PrivateResolved, name: str) -> subprocess.CompletedProcess:
    return resolved.resolvectl("query", "--cache=no", name)


def test_starts_owns_its_name_and_stops_leaving_nothing(tmp_path):
    machine_resolv_conf = Path("/etc/resolv.conf").read_bytes()
    machine_links = sorted(os.listdir("/sys/class/net"))
    resolved = start_or_skip(PrivateResolved(tmp_path / "resolved"))
    try:
        assert resolved.name_has_owner()
        status = resolved.resolvectl("status", check=True).stdout
        assert f"({resolved.link})" in status
        assert resolved.link_settings() == {"servers": [], "domains": [], "dnssec": "allow-downgrade",
                                            "default_route": False, "scopes": 0}
        assert resolved.link_state() == {}
        inside = resolved.run(["cat", "/etc/resolv.conf"], check=True).stdout
        assert inside.startswith("nameserver 127.0.0.53")
        assert LINK_ADDRESS in resolved.ip("-brief", "address", "show", resolved.link)
        # While it runs, only its processes show outside: no mount, no link.
        assert [item for item in resolved.leftovers() if not item.startswith("process ")] == []
    finally:
        assert resolved.stop() == 0
    assert resolved.leftovers() == []
    assert Path("/etc/resolv.conf").read_bytes() == machine_resolv_conf
    assert sorted(os.listdir("/sys/class/net")) == machine_links
    assert resolved.timings["start"] < 5 and resolved.timings["stop"] < 5, resolved.timings


def test_a_registration_with_resolvectl_routes_its_domains_and_nothing_else(resolved, nameserver):
    register(resolved, nameserver.address, "~test.lan", "~17.172.in-addr.arpa")
    assert resolved.link_servers() == [LinkServer("127.0.0.1", nameserver.port, "")]
    assert resolved.link_domains() == [("test.lan", True), ("17.172.in-addr.arpa", True)]
    assert resolved.link_property("DefaultRoute") is False  # routing domains only: not a default route

    answered = query(resolved, "x.test.lan")
    assert answered.returncode == 0 and f"x.test.lan: {ANSWER}" in answered.stdout, answered
    nameserver.wait_for_query("x.test.lan", "A")
    # The stub, getaddrinfo through nss-resolve, and the reverse zone as a routing domain.
    assert resolved.dig("+short", "stub.test.lan").stdout.split() == [ANSWER]
    assert ANSWER in resolved.getent("ahosts", "nss.test.lan", check=True).stdout
    getaddrinfo = "import socket; print(socket.getaddrinfo('py.test.lan', 80)[0][4][0])"
    found = resolved.run([PYTHON, "-c", getaddrinfo], check=True)
    assert found.stdout.strip() == ANSWER
    assert "web.test.lan" in resolved.getent("hosts", "172.17.0.9", check=True).stdout
    nameserver.wait_for_query("9.0.17.172.in-addr.arpa", "PTR")

    # A name outside the link's domains goes nowhere: no global server, no fallback, no default route.
    outside = query(resolved, "www.example.com")
    assert outside.returncode != 0 and NO_ROUTE in outside.stderr, outside
    assert resolved.getent("hosts", "www.example.com").returncode == 2  # not found
    assert not [name for name, _ in nameserver.queries() if "example" in name]
    # Another private reverse zone is not the link's either.
    assert query(resolved, "10.1.2.3").returncode != 0
    assert not [name for name, _ in nameserver.queries() if name.endswith("10.in-addr.arpa.")]


def test_the_dbus_calls_dnscock_makes_register_a_port_and_revert_link_undoes_them(resolved, nameserver):
    assert resolved.link_path() == f"/org/freedesktop/resolve1/link/_3{resolved.ifindex()}"
    ifindex = register_like_dnscock(resolved, nameserver.port, "docker", "17.172.in-addr.arpa")
    assert resolved.link_settings() == {
        "servers": [LinkServer("127.0.0.1", nameserver.port, "")],
        "domains": [("docker", True), ("17.172.in-addr.arpa", True)],
        "dnssec": "no", "default_route": False, "scopes": 1}
    assert resolved.link_state() == {"LLMNR": "yes", "MDNS": "no", "DNSSEC": "no", "DEFAULT_ROUTE": "no",
                                     "SERVERS": f"127.0.0.1:{nameserver.port}",
                                     "DOMAINS": "~docker ~17.172.in-addr.arpa"}
    # The Manager lists the loopback server under ifindex 1 (lo), the domains under the link.
    assert (1, socket.AF_INET, b"\x7f\x00\x00\x01", nameserver.port, "") in resolved.manager_property("DNSEx")
    assert (ifindex, "docker", True) in resolved.manager_property("Domains")

    answered = query(resolved, "web.docker")
    assert answered.returncode == 0 and f"web.docker: {ANSWER}" in answered.stdout, answered
    assert resolved.dig("+short", "-x", "172.17.0.2").stdout.split() == ["web.test.lan."]

    resolved.call("RevertLink", "i", ifindex)
    assert resolved.link_settings() == {"servers": [], "domains": [], "dnssec": "allow-downgrade",
                                        "default_route": False, "scopes": 0}
    assert resolved.link_state() == {}
    reverted = query(resolved, "web.docker")
    assert reverted.returncode != 0 and NO_ROUTE in reverted.stderr, reverted


def test_without_dnssec_no_on_the_link_unsigned_answers_fail_validation(resolved, nameserver):
    # The namespace's default is allow-downgrade (upstream's); the fake server echoes the DO bit.
    ifindex = register_like_dnscock(resolved, nameserver.port, "docker")
    resolved.call("SetLinkDNSSEC", "is", ifindex, "")  # "": back to the global setting
    failed = query(resolved, "web.docker")
    assert failed.returncode != 0 and "DNSSEC validation failed" in failed.stderr, failed


def test_resolved_refuses_bad_calls_and_callers_other_than_root(resolved):
    ifindex = resolved.ifindex()
    with pytest.raises(DBusErrorResponse) as loopback:
        resolved.call("SetLinkDNSEx", "ia(iayqs)", 1, [(socket.AF_INET, b"\x7f\x00\x00\x01", 5300, "")])
    assert loopback.value.name == "org.freedesktop.resolve1.LinkBusy"
    with pytest.raises(DBusErrorResponse) as unknown:
        resolved.call("SetLinkDomains", "ia(sb)", 9999, [("docker", True)])
    assert unknown.value.name == "org.freedesktop.resolve1.NoSuchLink"
    as_nobody = resolved.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+net_admin",
                              "--ambient-caps=+net_admin", RESOLVECTL, "domain", resolved.link, "~docker"])
    assert as_nobody.returncode != 0 and "Access denied" in as_nobody.stderr, as_nobody
    assert resolved.link_domains(ifindex) == []


def test_settings_survive_a_restart_and_are_lost_with_the_state_or_the_link(resolved, nameserver):
    register(resolved, nameserver.address, "~test.lan")
    resolved.restart_resolved()
    assert resolved.link_domains() == [("test.lan", True)]
    assert query(resolved, "kept.test.lan").returncode == 0

    resolved.restart_resolved(wipe_state=True)
    assert resolved.link_domains() == [] and resolved.link_servers() == []
    assert NO_ROUTE in query(resolved, "gone.test.lan").stderr

    register(resolved, nameserver.address, "~test.lan")
    before = resolved.ifindex()
    assert resolved.recreate_link() != before
    assert resolved.link_domains() == [] and resolved.link_servers() == []
    assert NO_ROUTE in query(resolved, "gone-too.test.lan").stderr


def test_a_link_without_carrier_is_not_asked(resolved, nameserver):
    register(resolved, nameserver.address, "~test.lan")
    resolved.set_carrier(False)
    deadline = time.monotonic() + 5
    while resolved.link_property("ScopesMask") != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert NO_ROUTE in query(resolved, "dark.test.lan").stderr
    resolved.set_carrier(True)
    deadline = time.monotonic() + 5
    while resolved.link_property("ScopesMask") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert query(resolved, "lit.test.lan").returncode == 0
    assert ("dark.test.lan.", "A") not in nameserver.queries()


def test_commands_inside_get_signals_and_die_with_the_namespace(tmp_path):
    resolved = start_or_skip(PrivateResolved(tmp_path / "resolved"))
    try:
        sleeper = resolved.popen(["sleep", "300"])
        assert sleeper.namespace_pid() not in (None, 1)
        sleeper.terminate()
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
        orphan = resolved.popen(["sleep", "300"])
        assert orphan.namespace_pid() is not None
    finally:
        resolved.stop()
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert resolved.leftovers() == []
