"""The table follows the engine: grace on stop, health, labels, networks, modes, compose, aliases, churn."""

from __future__ import annotations

import random

import dns.rdatatype
import docker.types
import pytest

from tests.support.dnscock_process import rcode


def ip_on(container, network: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def answered(reply) -> bool:
    return bool(reply.answer)


def test_a_stopped_container_answers_empty_for_the_grace_window_then_nxdomain(docker_env, dnscock_for, upstream):
    engine = docker_env
    container = engine.run("redis:latest", name="flappy", environment={"DNSDOCK_ALIAS": "flappy.example.org"})
    dnscock = dnscock_for(engine, "-grace=30", "-ttl=60")
    assert dnscock.addresses("flappy.redis.docker")

    container.stop(timeout=5)
    reply = dnscock.wait_for_answer("flappy.redis.docker", lambda r: not r.answer)
    assert rcode(reply) == "NOERROR"
    assert reply.authority[0].rdtype == dns.rdatatype.SOA and reply.authority[0].ttl == 0
    alias = dnscock.query("flappy.example.org")
    assert rcode(alias) == "NOERROR" and not alias.answer, "the alias is not forwarded while in grace"
    assert not [q for q in upstream.queries if q.question[0].name.to_text() == "flappy.example.org."]

    container.start()
    reply = dnscock.wait_for_answer("flappy.redis.docker", answered)
    assert [rr.address for rr in reply.answer[0]] == [ip_on(container, "bridge")]


def test_the_grace_window_ends(docker_env, dnscock_for):
    engine = docker_env
    container = engine.run("redis:latest", name="brief")
    dnscock = dnscock_for(engine, "-grace=0.5")
    container.stop(timeout=5)
    dnscock.wait_for_answer("brief.redis.docker", lambda r: rcode(r) == "NXDOMAIN")


def test_unhealthy_containers_are_withheld_unless_asked(docker_env, dnscock_for):
    engine = docker_env
    check = docker.types.Healthcheck(test=["CMD", "false"], interval=200_000_000, timeout=1_000_000_000, retries=1)
    engine.run("redis:latest", name="sick", healthcheck=check)
    engine.run("redis:latest", name="fine")
    strict = dnscock_for(engine, "-grace=0")
    lenient = dnscock_for(engine, "-grace=0", "-serve-unhealthy")
    strict.wait_for_answer("sick.redis.docker", lambda r: rcode(r) == "NXDOMAIN", timeout=30)
    assert strict.addresses("fine.redis.docker")
    assert lenient.addresses("sick.redis.docker")


def test_dnsdock_labels_and_env_vars_together(docker_env, dnscock_for):
    engine = docker_env
    engine.run("redis:latest", name="labelled", labels={
        "com.dnsdock.name": "fromlabel", "com.dnsdock.image": "cache", "com.dnsdock.alias": "lbl.example.org",
        "com.dnsdock.ip_addr": "192.0.2.99", "com.dnsdock.ttl": "7",
    })
    engine.run("redis:latest", name="both", labels={"com.dnsdock.name": "label-loses"},
               environment={"DNSDOCK_NAME": "env-wins"})
    engine.run("redis:latest", name="hidden", labels={"com.dnsdock.ignore": "true"})
    dnscock = dnscock_for(engine)
    reply = dnscock.query("fromlabel.cache.docker")
    assert [rr.address for rr in reply.answer[0]] == ["192.0.2.99"] and reply.answer[0].ttl == 7
    assert dnscock.addresses("lbl.example.org") == ["192.0.2.99"]
    assert dnscock.addresses("env-wins.redis.docker")
    assert rcode(dnscock.query("label-loses.redis.docker")) == "NXDOMAIN"
    assert rcode(dnscock.query("hidden.redis.docker")) == "NXDOMAIN"


def test_networks_connect_disconnect_and_the_network_filter(docker_env, dnscock_for):
    engine = docker_env
    backend = engine.client.networks.create("backend", driver="bridge",
                                            options={"com.docker.network.bridge.name": "dckbackend1"})
    container = engine.run("redis:latest", name="multi")
    dnscock = dnscock_for(engine, "-grace=0")
    only_backend = dnscock_for(engine, "-grace=0", "-network=backend")
    bridge_ip = ip_on(container, "bridge")
    assert dnscock.addresses("multi.redis.docker") == [bridge_ip]
    assert not only_backend.query("multi.redis.docker").answer

    backend.connect(container)
    backend_ip = ip_on(container, "backend")
    dnscock.wait_for_answer("multi.redis.docker", lambda r: len(r.answer[0]) == 2 if r.answer else False)
    assert dnscock.addresses("multi.redis.docker") == sorted([bridge_ip, backend_ip])
    only_backend.wait_for_answer("multi.redis.docker", answered)
    assert only_backend.addresses("multi.redis.docker") == [backend_ip]

    backend.disconnect(container)
    dnscock.wait_for_answer("multi.redis.docker", lambda r: r.answer and len(r.answer[0]) == 1)
    assert dnscock.addresses("multi.redis.docker") == [bridge_ip]


def test_host_and_container_network_modes(docker_env, dnscock_for):
    engine = docker_env
    target = engine.run("redis:latest", name="target")
    engine.run("redis:latest", name="sidecar", network_mode=f"container:{target.id}")
    engine.run("redis:latest", name="onhost", network_mode="host")
    plain = dnscock_for(engine)
    with_host_ip = dnscock_for(engine, "-host-ip=192.0.2.10")
    assert plain.addresses("sidecar.redis.docker") == [ip_on(target, "bridge")]
    assert rcode(plain.query("onhost.redis.docker")) == "NXDOMAIN"
    plain.wait_for_log("container onhost uses the host's network: skipped")
    assert with_host_ip.addresses("onhost.redis.docker") == ["192.0.2.10"]


def test_compose_service_names(docker_env, dnscock_for):
    engine = docker_env
    replicas = [engine.run("web:latest", name=f"shop_web_{i}", labels={
        "com.docker.compose.project": "shop", "com.docker.compose.service": "web"}) for i in (1, 2)]
    dnscock = dnscock_for(engine)
    off = dnscock_for(engine, "--no-compose-names")
    expected = sorted(ip_on(replica, "bridge") for replica in replicas)
    assert dnscock.addresses("web.shop.docker") == expected
    assert dnscock.addresses("shop_web_1.web.docker") == [ip_on(replicas[0], "bridge")]
    assert rcode(off.query("web.shop.docker")) == "NXDOMAIN"


def test_network_aliases_and_hostnames_when_enabled(docker_env, dnscock_for):
    engine = docker_env
    apps = engine.client.networks.create("apps", driver="bridge",
                                         options={"com.docker.network.bridge.name": "dckapps0"})
    container = engine.run("redis:latest", name="aliased", hostname="myhost", domainname="example.test",
                           network="apps")
    apps.disconnect(container)
    apps.connect(container, aliases=["db-primary"])
    enabled = dnscock_for(engine, "-network-aliases", "-hostnames")
    disabled = dnscock_for(engine)
    ip = ip_on(container, "apps")
    assert enabled.addresses("db-primary") == [ip]
    assert enabled.addresses("myhost.example.test") == [ip]
    assert disabled.addresses("db-primary") == ["192.0.2.53"], "forwarded when not enabled"


@pytest.mark.timeout(600)
def test_churn_leaves_the_table_equal_to_the_engine(docker_env, dnscock_for):
    engine = docker_env
    rng = random.Random(7)
    backend = engine.client.networks.create("churn", driver="bridge",
                                            options={"com.docker.network.bridge.name": "dckchurn0"})
    dnscock = dnscock_for(engine, "-grace=0", "-resync-interval=0")
    live: dict[str, object] = {}
    connected: set[str] = set()
    for step in range(200):
        action = rng.choice(["run", "run", "stop", "rename", "network"]) if live else "run"
        if action == "run":
            name = f"ch{step}"
            live[name] = engine.run("redis:latest", name=name)
        else:
            name = rng.choice(sorted(live))
            container = live[name]
            if action == "stop":
                container.remove(force=True)
                del live[name]
                connected.discard(name)
            elif action == "rename":
                container.rename(f"{name}r")
                live[f"{name}r"] = live.pop(name)
                if name in connected:
                    connected.discard(name)
                    connected.add(f"{name}r")
            elif name in connected:
                backend.disconnect(container)
                connected.discard(name)
            else:
                backend.connect(container)
                connected.add(name)
    expected = {name: sorted(ip for ip in (net["IPAddress"] for net in c.attrs["NetworkSettings"]["Networks"].values()) if ip)
                for name, c in ((name, engine.client.containers.get(name)) for name in live)}
    for name, addresses in expected.items():
        dnscock.wait_for_answer(f"{name}.redis.docker", lambda r, a=addresses: sorted(
            rr.address for rrset in r.answer for rr in rrset) == a)
    reply = dnscock.query("redis.docker", tcp=True)  # over UDP this many would be truncated
    served = sorted(rr.address for rrset in reply.answer for rr in rrset)
    assert served == sorted(ip for addresses in expected.values() for ip in addresses), "no stale, none missing"
