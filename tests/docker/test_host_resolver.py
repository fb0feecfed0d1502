"""-host-resolver=resolved: a real systemd-resolved sends the domain and the containers' reverse zones to dnscock.

dnscock runs inside the private resolved's namespaces (tests/support/resolved.py), watching
the private engine through its socket under /tmp, listening on 127.0.0.1:PORT there; the
host's programs are resolvectl, the 127.0.0.53 stub (dig) and getaddrinfo through
nss-resolve (getent). The figures (seconds until resolved holds the registration again)
are printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.private_engine import PrivateEngine, container_ip
from tests.support.processes import LogLines, stop_process
from tests.support.resolved import PYTHON, PrivateResolved, start_or_skip

DNS_PORT = 5300
LINK = "dnscock0"
NO_ROUTE = "No appropriate name servers or networks"
FOLLOW = 1.0  # the goal: registered again within a second


class InsideDnscock:
    """dnscock started in the resolved's namespaces; its log read as it comes."""

    def __init__(self, resolved: PrivateResolved, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.process = resolved.popen([*prefix, PYTHON, "-m", "dnscock", *args], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert self.process.stdout is not None
        self._log = LogLines(self.process.stdout)
        self.wait_for_log("listening on udp", timeout=20)

    def wait_for_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        return self._log.wait_for(pattern, timeout, start)

    @property
    def lines(self) -> list[str]:
        return self._log.lines

    def stop(self, signum: int = signal.SIGTERM) -> int:
        return stop_process(self.process, timeout=15, signum=signum)


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    collected: dict[str, Any] = {}
    yield collected
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print("\nsystemd-resolved registration figures (seconds): " + ", ".join(
            f"{key} {value:.3f}" for key, value in collected.items()), flush=True)


@pytest.fixture
def resolved(tmp_path):
    resolved = start_or_skip(PrivateResolved(tmp_path / "resolved"))
    yield resolved
    resolved.stop()
    assert resolved.leftovers() == []


@pytest.fixture
def upstream_inside(resolved):
    server = resolved.start_nameserver()
    yield server
    server.stop()


@pytest.fixture
def start_inside(resolved, upstream_inside, docker_env):
    started: list[InsideDnscock] = []

    def start(*args: str, prefix: tuple[str, ...] = ()) -> InsideDnscock:
        started.append(InsideDnscock(resolved, f"-dns=127.0.0.1:{DNS_PORT}", f"-docker={docker_env.url}",
                                     f"-nameserver={upstream_inside.address}", *args, prefix=prefix))
        return started[-1]

    yield start
    for dnscock in started:
        dnscock.stop(signal.SIGKILL)


@contextlib.contextmanager
def passable(engine: PrivateEngine) -> Iterator[None]:
    """The engine's directory (mkdtemp's, 0700) open for others to pass through to its socket, for a while."""
    mode = engine.root.stat().st_mode & 0o777
    engine.root.chmod(mode | 0o011)
    try:
        yield
    finally:
        engine.root.chmod(mode)


def query(resolved: PrivateResolved, name: str) -> subprocess.CompletedProcess:
    return resolved.resolvectl("query", "--cache=no", "--legend=no", name)


def wait_until(condition, timeout: float = 10.0, what: str = "") -> float:
    """Polls ``condition`` every 10 ms; returns the seconds it took to hold."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def has_link(resolved: PrivateResolved) -> bool:
    return LINK in resolved.ip("-brief", "link")


def registered(resolved: PrivateResolved, *domains: str) -> bool:
    try:
        held = dict(resolved.link_domains(LINK))
    except Exception:  # no such link (yet), or resolved restarting
        return False
    return all(held.get(domain) is True for domain in domains)


def reverse_zone(engine: PrivateEngine) -> str:
    return f"{engine.subnet_octet}.213.10.in-addr.arpa"


def test_the_host_resolves_containers_and_their_addresses_through_resolved(resolved, start_inside, docker_env,
                                                                        upstream_inside):
    engine = docker_env
    web = engine.run(name="web")
    address = container_ip(web)
    dnscock = start_inside("-host-resolver=resolved")
    wait_until(lambda: registered(resolved, "docker", reverse_zone(engine)), what="registered")
    dnscock.wait_for_log(rf"systemd-resolved registered.*~docker.* to 127\.0\.0\.1:{DNS_PORT} on link {LINK}")

    settings = resolved.link_settings(LINK)
    assert settings["servers"][0][:2] == ("127.0.0.1", DNS_PORT)
    assert (settings["dnssec"], settings["default_route"]) == ("no", False)
    assert resolved.link_property("LLMNR", LINK) == "no" and resolved.link_property("MulticastDNS", LINK) == "no"

    # resolvectl, the stub, getaddrinfo through nss-resolve; and the reverse address the same three ways.
    assert address in query(resolved, "web.busybox.docker").stdout
    assert resolved.dig("+short", "web.busybox.docker").stdout.split() == [address]
    assert address in resolved.getent("ahosts", "web.busybox.docker").stdout.split()
    assert "web.busybox.docker" in query(resolved, address).stdout
    assert resolved.dig("+short", "-x", address).stdout.split() == ["web.busybox.docker."]
    assert resolved.getent("hosts", address).stdout.split() == [address, "web.busybox.docker"]
    # Another address of the network: dnscock's NXDOMAIN, never forwarded (resolved is no upstream of dnscock
    # here, but on a host it may be: a loop).
    gateway = engine.client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    assert "NXDOMAIN" in resolved.dig("-x", gateway.rsplit(".", 1)[0] + ".250").stdout

    # A name outside the domain never reaches dnscock: resolved has nowhere to send it (no global DNS here).
    outside = query(resolved, "www.example.test")
    assert outside.returncode != 0 and NO_ROUTE in outside.stderr
    assert upstream_inside.queries() == [], "dnscock forwarded a name resolved should never have sent it"

    # A container on a new network: its reverse zone joins the registration.
    network = engine.client.networks.create("extra", driver="bridge", ipam={
        "Config": [{"Subnet": f"10.216.{engine.subnet_octet}.0/24"}]})
    other = engine.run(name="other", network="extra")
    wait_until(lambda: registered(resolved, f"{engine.subnet_octet}.216.10.in-addr.arpa"), timeout=FOLLOW + 1,
               what="the new network's reverse zone registered")
    assert resolved.getent("hosts", container_ip(other, "extra")).stdout.split() == [
        container_ip(other, "extra"), "other.busybox.docker"]
    other.remove(force=True)
    network.remove()


def test_registered_again_after_resolved_restarts_with_its_state_wiped(resolved, start_inside, docker_env, figures):
    engine = docker_env
    web = engine.run(name="web")
    dnscock = start_inside("-host-resolver=resolved")
    wait_until(lambda: registered(resolved, "docker"), what="registered")
    took = []
    for _ in range(3):
        resolved.restart_resolved(wipe_state=True)  # returns once the new resolved owns its name
        took.append(wait_until(lambda: registered(resolved, "docker", reverse_zone(engine)), timeout=5,
                               what="registered again"))
        assert container_ip(web) in query(resolved, "web.busybox.docker").stdout
    figures["re-registered after a wiped restart (max of 3)"] = max(took)
    assert max(took) < FOLLOW

    # Somebody reverts the link: registered again as well.
    resolved.call("RevertLink", "i", resolved.ifindex(LINK))
    figures["re-registered after RevertLink"] = wait_until(lambda: registered(resolved, "docker"), timeout=5)
    assert figures["re-registered after RevertLink"] < FOLLOW
    # Somebody deletes the link: dnscock makes it again and registers there.
    old_index = resolved.ifindex(LINK)
    resolved.ip("link", "delete", LINK)
    figures["re-registered on a new link after the link was deleted"] = wait_until(
        lambda: registered(resolved, "docker"), timeout=5, what="registered on a new link")
    assert figures["re-registered on a new link after the link was deleted"] < FOLLOW
    assert resolved.ifindex(LINK) != old_index
    dnscock.wait_for_log(rf"link {LINK} was deleted by somebody: made link {LINK} again")
    assert container_ip(web) in query(resolved, "web.busybox.docker").stdout


def test_sigterm_reverts_and_deletes_the_link_sigkill_leaves_nothing_either(resolved, start_inside, docker_env):
    engine = docker_env
    engine.run(name="web")
    dnscock = start_inside("-host-resolver=resolved")
    wait_until(lambda: registered(resolved, "docker"), what="registered")
    assert dnscock.stop() == 0
    dnscock.wait_for_log(rf"link {LINK} reverted")
    assert not has_link(resolved)
    assert NO_ROUTE in query(resolved, "web.busybox.docker").stderr
    assert resolved.manager_property("Domains") == []

    # SIGKILL: the kernel deletes the link with dnscock's last file descriptor, and resolved forgets it;
    # a lookup fails at once ("no route"), instead of timing out against a dead server.
    dnscock = start_inside("-host-resolver=resolved")
    wait_until(lambda: registered(resolved, "docker"), what="registered")
    dnscock.stop(signal.SIGKILL)
    wait_until(lambda: not has_link(resolved), timeout=2, what="the link gone")
    started = time.monotonic()
    assert NO_ROUTE in query(resolved, "web.busybox.docker").stderr
    assert time.monotonic() - started < 2
    assert resolved.manager_property("Domains") == []
    # A new start registers again, on a link of the same name.
    start_inside("-host-resolver=resolved")
    wait_until(lambda: registered(resolved, "docker"), what="registered after the restart")


def test_with_user_it_registers_as_root_and_keeps_it_registered_as_that_user(resolved, start_inside, docker_env):
    engine = docker_env
    web = engine.run(name="web")
    # The docker group: the engine's socket is the group's (as on a host where dnscock's user is in it).
    with passable(engine):
        dnscock = start_inside("-host-resolver=resolved", "-user=nobody:docker")
        dnscock.wait_for_log("connected to the Docker engine")
    dnscock.wait_for_log(r"running as uid 65534")
    wait_until(lambda: registered(resolved, "docker"), what="registered")
    resolved.restart_resolved(wipe_state=True)
    wait_until(lambda: registered(resolved, "docker"), timeout=FOLLOW + 1, what="registered again as nobody")
    assert container_ip(web) in query(resolved, "web.busybox.docker").stdout, "\n".join(dnscock.lines)
    assert dnscock.stop() == 0
    dnscock.wait_for_log(rf"link {LINK} reverted")
    assert not has_link(resolved)


def test_a_user_that_may_not_register_gets_one_clear_warning_and_dns_still_works(resolved, start_inside, docker_env):
    engine = docker_env
    web = engine.run(name="web")
    # Not root: no CAP_NET_ADMIN for a link, and resolved refuses the calls (no polkit here).
    with passable(engine):
        dnscock = start_inside("-host-resolver=resolved",
                               prefix=("setpriv", "--reuid=65534", "--regid=docker", "--clear-groups"))
        dnscock.wait_for_log("connected to the Docker engine")
    warning = dnscock.wait_for_log(r"WARNING .*cannot register with systemd-resolved")
    assert "CAP_NET_ADMIN" in warning.string and "polkit" in warning.string
    time.sleep(1)  # a second for a second warning to come: none may
    assert sum("WARNING dnscock.resolved" in line for line in dnscock.lines) == 1, "\n".join(dnscock.lines)
    assert not has_link(resolved)
    reply = resolved.dig("+short", "-p", str(DNS_PORT), "web.busybox.docker", server="127.0.0.1").stdout.split()
    assert reply == [container_ip(web)]


def test_auto_registers_when_resolved_runs(resolved, start_inside, docker_env):
    dnscock = start_inside("-host-resolver=auto")
    dnscock.wait_for_log("-host-resolver=auto: systemd-resolved is running: registering with it")
    wait_until(lambda: registered(resolved, "docker"), what="registered")
