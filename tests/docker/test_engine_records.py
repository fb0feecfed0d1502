"""Record types from real containers: AAAA, PTR, SRV, TXT; truncation and TCP; dig's options."""

from __future__ import annotations

import ipaddress
import subprocess
from concurrent.futures import ThreadPoolExecutor

import dns.rcode
import dns.rdatatype

from tests.support.dnscock_process import rcode


def dig(dnscock, *args: str) -> str:
    return subprocess.run(
        ["dig", f"@{dnscock.host}", "-p", str(dnscock.port), "+tries=1", "+time=3", *args],
        capture_output=True, text=True, check=True,
    ).stdout


def endpoint(container, network: str = "bridge") -> dict:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]


def test_aaaa_for_containers_with_ipv6_and_nodata_without(docker_env, dnscock_for):
    engine = docker_env
    dual = engine.run("redis:latest", name="dual")
    engine.client.networks.create("v4only", driver="bridge", options={"com.docker.network.bridge.name": "dckv4only0"})
    v4only = engine.run("redis:latest", name="v4only", network="v4only")
    dnscock = dnscock_for(engine)

    ipv6 = endpoint(dual)["GlobalIPv6Address"]
    assert ipaddress.ip_address(ipv6) in ipaddress.ip_network(engine.ipv6_prefix)
    assert dig(dnscock, "+short", "AAAA", "dual.redis.docker").split() == [ipv6]
    reply = dnscock.query("v4only.redis.docker", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, "NODATA: the name exists"
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert dnscock.addresses("v4only.redis.docker") == [endpoint(v4only, "v4only")["IPAddress"]]


def test_ptr_with_dig_x(docker_env, dnscock_for):
    engine = docker_env
    container = engine.run("redis:latest", name="redis1")
    dnscock = dnscock_for(engine, "-environment=dev")
    net = endpoint(container)
    assert dig(dnscock, "+short", "-x", net["IPAddress"]).split() == ["redis1.redis.dev.docker."]
    assert dig(dnscock, "+short", "-x", net["GlobalIPv6Address"]).split() == ["redis1.redis.dev.docker."]
    # Not a container's address: forwarded (the test upstream answers NOERROR with no PTR).
    reply = dnscock.query("4.3.2.1.in-addr.arpa", "PTR")
    assert rcode(reply) == "NOERROR" and not reply.answer


def test_srv_for_exposed_ports(docker_env, dnscock_for):
    engine = docker_env
    engine.build_image("local/web:1", ["EXPOSE 80/tcp 53/udp"])
    web1 = engine.run("local/web:1", name="web1")
    web2 = engine.run("local/web:1", name="web2")
    dnscock = dnscock_for(engine)
    reply = dnscock.query("_80._tcp.web.docker", "SRV")
    assert sorted((rr.port, rr.target.to_text()) for rr in reply.answer[0]) == [
        (80, "web1.web.docker."), (80, "web2.web.docker."),
    ]
    extra = {rrset.name.to_text(): [rr.address for rr in rrset] for rrset in reply.additional
             if rrset.rdtype == dns.rdatatype.A}
    assert extra == {"web1.web.docker.": [endpoint(web1)["IPAddress"]], "web2.web.docker.": [endpoint(web2)["IPAddress"]]}
    assert "53 web1.web.docker." in dig(dnscock, "+short", "SRV", "_53._udp.web1.*.docker")
    reply = dnscock.query("_443._tcp.web.docker", "SRV")
    assert rcode(reply) == "NOERROR" and not reply.answer


def test_txt_metadata(docker_env, dnscock_for):
    engine = docker_env
    container = engine.run("redis:latest", name="meta", labels={
        "com.docker.compose.project": "shop", "com.docker.compose.service": "cache",
    })
    dnscock = dnscock_for(engine)
    output = dig(dnscock, "+short", "TXT", "meta.redis.docker").strip()
    assert output == (f'"id={container.id[:12]}" "image=redis:latest" '
                      '"compose_project=shop" "compose_service=cache"')


def test_big_answers_truncate_over_udp_and_come_whole_over_tcp(docker_env, dnscock_for):
    engine = docker_env
    engine.ensure_image("many:latest")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: engine.run("many:latest", name=f"m{i:02d}"), range(45)))
    dnscock = dnscock_for(engine)

    plain = dig(dnscock, "+noedns", "+ignore", "many.docker")
    assert "flags: qr aa tc" in plain or ("tc" in plain.split("flags:")[1].split(";")[0])
    assert len(dig(dnscock, "+tcp", "+short", "many.docker").split()) == 45
    assert len(dig(dnscock, "+bufsize=1232", "+short", "many.docker").split()) == 45
    reply = dnscock.query("*.docker", tcp=True)
    assert len(reply.answer[0]) == 45


def test_norec_queries_still_get_local_answers(docker_env, dnscock_for):
    engine = docker_env
    engine.run("redis:latest", name="redis1")
    dnscock = dnscock_for(engine)
    output = dig(dnscock, "+norec", "redis1.redis.docker")
    assert "flags: qr aa ra;" in output
    assert "ANSWER: 1" in output
