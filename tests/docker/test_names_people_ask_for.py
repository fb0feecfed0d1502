"""The names people ask for, on the private engine: split horizon, wildcard aliases, plain container
names, a name for the host.

Split horizon is checked from real clients: containers on two networks ask
dnscock (listening on every address; each client reaches it at its own
network's gateway) for a container on both networks, with the host's
``dig`` run inside each client's network namespace.
"""

from __future__ import annotations

import ipaddress
import subprocess

import docker.types
import pytest

from tests.support.dnscock_process import rcode
from tests.support.private_engine import PrivateEngine, container_ip


def network(engine: PrivateEngine, name: str, second_octet: int):
    """A bridge network of this test's own, with a subnet derived from the engine's (never a default pool)."""
    subnet = f"10.{second_octet}.{engine.subnet_octet}.0/24"
    pool = docker.types.IPAMPool(subnet=subnet, gateway=f"10.{second_octet}.{engine.subnet_octet}.1")
    return engine.client.networks.create(name, driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool]))


def gateway(net) -> str:
    net.reload()
    return net.attrs["IPAM"]["Config"][0]["Gateway"]


def dig_from(container, server: str, port: int, name: str) -> list[str]:
    """The A records ``name`` gets from ``server:port``, asked from inside ``container``'s network namespace."""
    container.reload()
    pid = container.attrs["State"]["Pid"]
    result = subprocess.run(["nsenter", "-t", str(pid), "-n", "dig", "+short", "+time=2", "+tries=2", "-p", str(port),
                             f"@{server}", name, "A"], capture_output=True, text=True, timeout=30, check=True)
    return sorted((line for line in result.stdout.split() if line), key=ipaddress.ip_address)


def dig_from_the_host(server: str, port: int, name: str) -> list[str]:
    """The A records the host gets asking ``server:port`` (a bridge's gateway: the host asks from that address)."""
    result = subprocess.run(["dig", "+short", "+time=2", "+tries=2", "-p", str(port), f"@{server}", name, "A"],
                            capture_output=True, text=True, timeout=30, check=True)
    return sorted((line for line in result.stdout.split() if line), key=ipaddress.ip_address)


def test_each_client_gets_the_address_on_its_own_network(docker_env, dnscock_for):
    engine = docker_env
    front, back = network(engine, "front", 214), network(engine, "back", 215)
    both = engine.run(name="both", network="front")
    back.connect(both)
    client_front = engine.run(name="client-front", network="front")
    client_back = engine.run(name="client-back", network="back")
    on_front, on_back = container_ip(both, "front"), container_ip(both, "back")

    dnscock = dnscock_for(engine, listen="0.0.0.0:0")
    dnscock.wait_for_answer("both.busybox.docker", lambda reply: len(reply.answer[0]) == 2 if reply.answer else False)
    assert dig_from(client_front, gateway(front), dnscock.port, "both.busybox.docker") == [on_front]
    assert dig_from(client_back, gateway(back), dnscock.port, "both.busybox.docker") == [on_back]
    assert dnscock.addresses("both.busybox.docker") == sorted([on_front, on_back], key=ipaddress.ip_address)
    # Asked again: from the reply caches, still each its own.
    assert dig_from(client_back, gateway(back), dnscock.port, "both.busybox.docker") == [on_back]
    assert dig_from(client_front, gateway(front), dnscock.port, "both.busybox.docker") == [on_front]
    # The host asking at a network's gateway asks from that address, its own: it gets every address.
    for net in (front, back):
        assert dig_from_the_host(gateway(net), dnscock.port, "both.busybox.docker") == sorted(
            [on_front, on_back], key=ipaddress.ip_address)


def test_without_split_horizon_every_client_gets_every_address(docker_env, dnscock_for):
    engine = docker_env
    front, back = network(engine, "front", 214), network(engine, "back", 215)
    both = engine.run(name="both", network="front")
    back.connect(both)
    client = engine.run(name="client-front", network="front")
    dnscock = dnscock_for(engine, "-split-horizon=false", listen="0.0.0.0:0")
    dnscock.wait_for_answer("both.busybox.docker", lambda reply: len(reply.answer[0]) == 2 if reply.answer else False)
    assert dig_from(client, gateway(front), dnscock.port, "both.busybox.docker") == sorted(
        [container_ip(both, "front"), container_ip(both, "back")], key=ipaddress.ip_address)


def test_a_wildcard_alias_beside_an_exact_alias_and_an_empty_non_terminal(docker_env, dnscock_for):
    engine = docker_env
    wild = engine.run(name="wild", environment={"DNSDOCK_ALIAS": "*.app.test,*.dev.docker"})
    exact = engine.run(name="exact", labels={"com.dnsdock.alias": "api.app.test,deep.inner.app.test"})
    dnscock = dnscock_for(engine)
    wild_ip, exact_ip = container_ip(wild), container_ip(exact)
    assert dnscock.addresses("anything.app.test") == [wild_ip]
    assert dnscock.addresses("a.b.c.app.test") == [wild_ip]
    assert dnscock.addresses("api.app.test") == [exact_ip], "an exact alias wins"
    between = dnscock.query("inner.app.test")
    assert rcode(between) == "NOERROR" and not between.answer, "an empty non-terminal is not covered"
    assert rcode(dnscock.query("app.test")) == "NOERROR" and not dnscock.addresses("app.test")
    assert dnscock.addresses("x.dev.docker") == [wild_ip], "inside the domain too"
    nodata = dnscock.query("anything.app.test", "MX")
    assert rcode(nodata) == "NOERROR" and not nodata.answer


def test_plain_container_names_with_the_option_only(docker_env, dnscock_for):
    engine = docker_env
    web = engine.run("nginx:latest", name="web")
    image_web = engine.run("web:latest", name="other")  # a container of an image named like it
    without = dnscock_for(engine)
    assert without.addresses("web.docker") == [container_ip(image_web)], "web.docker is the image, by default"
    dnscock = dnscock_for(engine, "-container-names")
    assert dnscock.addresses("web.docker") == sorted([container_ip(web), container_ip(image_web)],
                                                     key=ipaddress.ip_address), "both, as for several matches"
    # <anything>. in front of the plain name still means the container web (and not a container "anything"
    # of the image web, of which there is none).
    assert dnscock.addresses("anything.web.docker") == [container_ip(web)]
    assert dnscock.addresses("web.nginx.docker") == [container_ip(web)]
    # The container other of the image web, named in full, is more specific than <anything>.web: it alone.
    assert dnscock.addresses("other.web.docker") == [container_ip(image_web)]
    assert dnscock.addresses("other.docker") == [container_ip(image_web)]


@pytest.mark.parametrize("host_ip", ["", "192.168.77.1"])
def test_a_name_for_the_host(docker_env, dnscock_for, host_ip):
    engine = docker_env
    args = (f"-host-ip={host_ip}",) if host_ip else ()
    dnscock = dnscock_for(engine, *args)
    bridge = engine.client.networks.get("bridge").attrs["IPAM"]["Config"]
    if host_ip:
        assert dnscock.addresses("host.docker") == [host_ip]
        return
    gateways = [config["Gateway"] for config in bridge if config.get("Gateway")]
    ipv4 = [g for g in gateways if ":" not in g]
    assert dnscock.addresses("host.docker") == ipv4 == [f"10.213.{engine.subnet_octet}.1"]
    assert dnscock.addresses("host.docker", "AAAA") == [g for g in gateways if ":" in g]
    ptr = dnscock.query(ipaddress.ip_address(ipv4[0]).reverse_pointer, "PTR")
    assert [rr.target.to_text() for rr in ptr.answer[0]] == ["host.docker."]
    # Its one name only: the host is no container, and "*.docker" lists containers.
    web = engine.run(name="web")
    dnscock.wait_for_answer("web.busybox.docker", lambda reply: bool(reply.answer))
    assert dnscock.addresses("*.docker") == [container_ip(web)]
    assert rcode(dnscock.query("x.host.docker")) == "NXDOMAIN"
    off = dnscock_for(engine, "-host-name=")
    assert rcode(off.query("host.docker")) == "NXDOMAIN"
