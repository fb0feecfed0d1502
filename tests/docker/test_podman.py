"""dnscock on Podman (Debian's 4.3): rootful through its Docker-compatible API, pods, the service going away,
and rootless Podman answering what its containers publish (tests/support/private_podman.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
import urllib.request

import pytest

from tests.support.dnscock_process import rcode
from tests.support.private_engine import EngineUnavailable
from tests.support.private_podman import PrivatePodman, make_root


def start_podman(octet: int, **kwargs) -> PrivatePodman:
    podman = PrivatePodman(make_root(), octet, **kwargs)
    try:
        podman.start()
    except EngineUnavailable as error:
        podman.stop()
        if os.environ.get("CI"):
            pytest.fail(f"no private Podman in CI: {error}")
        pytest.skip(f"no private Podman here: {error}")
    except Exception:
        podman.stop()
        raise
    return podman


@pytest.fixture(scope="module")
def podman():
    started = start_podman(217)
    yield started
    started.stop()


@pytest.fixture
def podman_env(podman):
    """The module's rootful Podman, emptied of containers and pods after each test (its service running)."""
    yield podman
    if podman.service is None:
        podman.start_service()
    podman.podman("pod", "rm", "-f", "-a", check=False)
    podman.podman("rm", "-f", "-a", check=False)


@pytest.fixture
def dnscock_on(start_dnscock, upstream):
    def start(engine: PrivatePodman, *args: str, address: str = ""):
        process = start_dnscock(f"-docker={engine.url}{address}", f"-nameserver={upstream.address}", *args)
        process.wait_for_log("connected to the Docker engine")
        return process

    return start


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_rootful_podman_answers_every_name_form_like_docker(podman_env, dnscock_on):
    engine = podman_env
    engine.run("web1", "--expose", "80", "-e", "DNSDOCK_ALIAS=shop.example.test", "-l", "com.example.team=blue")
    dnscock = dnscock_on(engine, "-http=127.0.0.1:0", "-grace=0")
    address = engine.address("web1")
    assert ipaddress.ip_address(address) in ipaddress.ip_network(engine.subnet)
    for name in ("web1.busybox.docker", "busybox.docker", "shop.example.test"):
        assert dnscock.addresses(name) == [address], name
    ptr = dnscock.query(ipaddress.ip_address(address).reverse_pointer, "PTR")
    assert [rr.target.to_text() for rr in ptr.answer[0]] == ["web1.busybox.docker."]
    srv = dnscock.query("_80._tcp.web1.busybox.docker", "SRV")
    assert [(rr.port, rr.target.to_text()) for rr in srv.answer[0]] == [(80, "web1.busybox.docker.")]
    txt = dnscock.query("web1.busybox.docker", "TXT")
    assert any(string.startswith(b"image=localhost/local/busybox") for rr in txt.answer[0] for string in rr.strings)
    health = get_json(dnscock.http_url + "/health")
    assert health["engines"][0]["product"].startswith("Podman 4.") and health["status"] == "ok"
    metrics = urllib.request.urlopen(dnscock.http_url + "/metrics", timeout=5).read().decode()
    assert f'dnscock_engine_info{{engine="{engine.url}",product="{health["engines"][0]["product"]}"}} 1.0' in metrics
    services = get_json(dnscock.http_url + "/services")
    assert [service["Names"] for service in services.values() if service["Container"] == "web1"] == [
        ["web1.busybox.docker"]]
    # Events: a container started is answered, one stopped goes (Podman delivers its events 0.1-0.25 s after
    # they happen; dnscock adds what it adds with Docker: python -m bench.podman_events).
    started = time.monotonic()
    engine.run("web2")
    dnscock.wait_for_answer("web2.busybox.docker", lambda reply: bool(reply.answer))
    answered = time.monotonic() - started
    engine.podman("stop", "-t", "0", "web2")
    dnscock.wait_for_answer("web2.busybox.docker", lambda reply: rcode(reply) == "NXDOMAIN")
    print(f"\nPodman: run -> answered {answered * 1000:.0f} ms (the podman command's own time included)")


def test_a_pods_members_answer_its_address_and_its_name_and_its_infra_is_not_served(podman_env, dnscock_on):
    engine = podman_env
    engine.podman("pod", "create", "--name", "shop")
    engine.run("shopweb", "--pod", "shop")
    engine.run("shopdb", "--pod", "shop")
    dnscock = dnscock_on(engine, "-http=127.0.0.1:0")
    address = engine.address("shopweb")
    for name in ("shopweb.busybox.docker", "shopdb.busybox.docker", "shop.pod.docker"):
        dnscock.wait_for_answer(name, lambda reply: bool(reply.answer))
        assert dnscock.addresses(name) == [address], name
    infra = engine.podman("pod", "inspect", "shop", "--format", "{{.InfraContainerID}}")[:12]
    assert rcode(dnscock.query(f"{infra}-infra.podman-pause.docker")) == "NXDOMAIN"
    assert rcode(dnscock.query("podman-pause.docker")) == "NXDOMAIN"
    ptr = dnscock.query(ipaddress.ip_address(address).reverse_pointer, "PTR")
    assert sorted(rr.target.to_text() for rr in ptr.answer[0]) == ["shopdb.busybox.docker.", "shopweb.busybox.docker."]
    assert all("-infra" not in service["Container"] for service in get_json(dnscock.http_url + "/services").values())


def test_the_service_going_away_and_coming_back_is_an_engine_restart(podman_env, dnscock_on):
    engine = podman_env
    engine.run("before")
    dnscock = dnscock_on(engine, "-grace=0")
    assert dnscock.addresses("before.busybox.docker")
    engine.stop_service()
    dnscock.wait_for_log("lost the Docker engine|cannot reach the Docker engine")
    engine.run("meanwhile")  # podman's own command needs no service
    assert dnscock.addresses("before.busybox.docker"), "the last table keeps serving"
    engine.start_service()
    back = time.monotonic()
    dnscock.wait_for_answer("meanwhile.busybox.docker", lambda reply: bool(reply.answer), timeout=2)
    print(f"\nPodman: service back -> a container started meanwhile answered in {time.monotonic() - back:.2f}s")
    outage_lines = [line for line in dnscock.lines if "Docker engine at" in line and "WARNING" in line]
    assert len(outage_lines) == 1, outage_lines


def connects(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.settimeout(3)
        return probe.connect_ex((host, port)) == 0


def test_rootless_podman_answers_what_the_host_reaches(dnscock_on):
    engine = start_podman(218, rootless=True)
    try:
        web = ("httpd", "-f", "-p", "80", "-h", "/")
        engine.run("local", "-p", "127.0.0.1:18081:80", command=web)
        engine.run("everywhere", "-p", "18082:80", command=web)
        engine.run("hidden", command=web)
        dnscock = dnscock_on(engine, "-http=127.0.0.1:0")
        dnscock.wait_for_log("is rootless")
        assert dnscock.addresses("local.busybox.docker") == ["127.0.0.1"]
        srv = dnscock.query("_80._tcp.local.busybox.docker", "SRV")
        assert [rr.port for rr in srv.answer[0]] == [18081]
        assert connects("127.0.0.1", 18081), "the answered address and SRV port reach the container"
        host = dnscock.addresses("host.docker")
        assert host and not ipaddress.ip_address(host[0]).is_loopback
        assert dnscock.addresses("everywhere.busybox.docker") == host
        assert connects(host[0], 18082)
        hidden = dnscock.query("hidden.busybox.docker")
        assert (rcode(hidden), hidden.answer) == ("NOERROR", []), "listed, with no address that reaches it"
        services = get_json(dnscock.http_url + "/services")
        assert any(service["Container"] == "hidden" and service["IPs"] == [] for service in services.values())
    finally:
        engine.stop()


def test_address_published_on_a_rootful_engine(podman_env, dnscock_on):
    engine = podman_env
    engine.run("pub", "-p", "127.0.0.1:18083:80", command=("httpd", "-f", "-p", "80", "-h", "/"))
    dnscock = dnscock_on(engine, address="?address=published")
    assert dnscock.addresses("pub.busybox.docker") == ["127.0.0.1"]
    assert connects("127.0.0.1", 18083)
