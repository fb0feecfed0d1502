"""dnscock against a real Docker engine: names appear and vanish with the containers."""

from __future__ import annotations

import subprocess

import dns.rdatatype

from tests.support.dnscock_process import rcode
from tests.support.private_engine import container_ip


def has_answer(reply) -> bool:
    return bool(reply.answer)


def is_nxdomain(reply) -> bool:
    return rcode(reply) == "NXDOMAIN"


def dig_short(dnscock, name: str) -> list[str]:
    output = subprocess.run(
        ["dig", f"@{dnscock.host}", "-p", str(dnscock.port), "+short", "+tries=1", "+time=3", name],
        capture_output=True, text=True, check=True,
    ).stdout
    return sorted(line for line in output.split() if line)


def test_seed_readme_examples_with_dig(docker_env, dnscock_for):
    engine = docker_env
    redis1 = engine.run("redis:latest", name="redis1")
    redis2 = engine.run("redis:latest", name="redis2")
    web = engine.run("nginx:1.25", name="web")
    dnscock = dnscock_for(engine)
    ips = {c.name: container_ip(c) for c in (redis1, redis2, web)}

    assert dig_short(dnscock, "*.docker") == sorted(ips.values())
    assert dig_short(dnscock, "redis.docker") == sorted([ips["redis1"], ips["redis2"]])
    assert dig_short(dnscock, "redis1.redis.docker") == [ips["redis1"]]
    assert dig_short(dnscock, "redis1.*.docker") == [ips["redis1"]]
    assert dig_short(dnscock, "anything.at.all.redis1.redis.docker") == [ips["redis1"]]
    assert dig_short(dnscock, "web.nginx.docker") == [ips["web"]]


def test_a_started_container_answers_and_a_stopped_one_is_nxdomain(docker_env, dnscock_for):
    engine = docker_env
    dnscock = dnscock_for(engine, "-ttl=30", "-grace=0")
    assert rcode(dnscock.query("redis1.redis.docker")) == "NXDOMAIN"

    redis1 = engine.run("redis:latest", name="redis1")
    reply = dnscock.wait_for_answer("Redis1.REDIS.docker", has_answer)
    assert [rr.address for rr in reply.answer[0]] == [container_ip(redis1)]
    assert reply.answer[0].ttl == 30
    assert reply.answer[0].name.to_text() == "Redis1.REDIS.docker.", "the owner echoes the question"
    assert reply.flags & dns.flags.AA

    redis1.stop(timeout=5)
    reply = dnscock.wait_for_answer("redis1.redis.docker", is_nxdomain)
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert reply.authority[0].name.to_text() == "docker."


def test_rename_and_restart(docker_env, dnscock_for):
    engine = docker_env
    dnscock = dnscock_for(engine)
    container = engine.run("redis:latest", name="before")
    dnscock.wait_for_answer("before.redis.docker", has_answer)

    container.rename("after")
    dnscock.wait_for_answer("after.redis.docker", has_answer)
    assert rcode(dnscock.query("before.redis.docker")) == "NXDOMAIN"

    container.restart(timeout=5)
    reply = dnscock.wait_for_answer("after.redis.docker", has_answer)
    assert [rr.address for rr in reply.answer[0]] == [container_ip(container)]


def test_dnsdock_env_overrides(docker_env, dnscock_for):
    engine = docker_env
    container = engine.run(
        "redis:latest", name="redis1",
        environment={"DNSDOCK_NAME": "foo.boo", "DNSDOCK_IMAGE": "cache", "DNSDOCK_TTL": "42"},
    )
    dnscock = dnscock_for(engine, "-ttl=5")
    ip = container_ip(container)
    reply = dnscock.query("foo.boo.cache.docker")
    assert [rr.address for rr in reply.answer[0]] == [ip]
    assert reply.answer[0].ttl == 42
    assert dnscock.addresses("boo.cache.docker") == [ip]
    assert dnscock.addresses("x.foo.boo.cache.docker") == [ip]
    assert rcode(dnscock.query("redis1.redis.docker")) == "NXDOMAIN"


def test_an_alias_on_two_containers_answers_both(docker_env, dnscock_for):
    engine = docker_env
    one = engine.run("redis:latest", name="one", environment={"DNSDOCK_ALIAS": "local.web1.fi,local.web2.fi"})
    two = engine.run("redis:latest", name="two", environment={"DNSDOCK_ALIAS": "local.web1.fi, bad..alias"})
    dnscock = dnscock_for(engine)
    assert dnscock.addresses("local.web1.fi") == sorted([container_ip(one), container_ip(two)])
    assert dnscock.addresses("LOCAL.web2.fi") == [container_ip(one)]
    assert "container two: skipping invalid alias 'bad..alias'" in dnscock.log()
    # An alias is an exact name: a name beside it is forwarded, not answered from the alias.
    reply = dnscock.query("other.web1.fi")
    assert [rr.address for rr in reply.answer[0]] == ["192.0.2.53"]


def test_ignored_containers_are_not_served(docker_env, dnscock_for):
    engine = docker_env
    engine.run("redis:latest", name="hidden", environment={"DNSDOCK_IGNORE": "1"})
    engine.run("redis:latest", name="hidden2", environment={"SERVICE_IGNORE": "true"})
    shown = engine.run("redis:latest", name="shown")
    dnscock = dnscock_for(engine)
    assert dnscock.addresses("redis.docker") == [container_ip(shown)]


def test_registrator_variables(docker_env, dnscock_for):
    engine = docker_env
    container = engine.run(
        "redis:latest", name="redis1",
        environment={"SERVICE_NAME": "cache", "SERVICE_TAGS": "primary,fast", "SERVICE_REGION": "eu"},
    )
    dnscock = dnscock_for(engine)
    assert dnscock.addresses("primary.cache.eu.docker") == [container_ip(container)]


def test_image_names_from_references_and_ids(docker_env, dnscock_for):
    engine = docker_env
    tagged = engine.run("registry.example.com/team/bar.baz:v1", name="tagged")
    image_id = engine.client.images.get("local/busybox:latest").id
    by_id = engine.run(image_id, name="byid")
    dnscock = dnscock_for(engine, "-environment=prod")
    assert dnscock.addresses("tagged.bar.baz.prod.docker") == [container_ip(tagged)]
    assert dnscock.addresses("byid.prod.docker") == [container_ip(by_id)]
    assert rcode(dnscock.query("nobody.prod.docker")) == "NXDOMAIN"
    # Outside <environment>.<domain> a name is not ours: it goes upstream.
    assert dnscock.addresses("tagged.bar.baz.docker") == ["192.0.2.53"]


def test_a_container_only_on_a_user_defined_network(docker_env, dnscock_for):
    engine = docker_env
    engine.client.networks.create("backend", driver="bridge", options={"com.docker.network.bridge.name": "dckbackend0"})
    container = engine.run("redis:latest", name="db", network="backend")
    container.reload()
    assert container.attrs["NetworkSettings"]["IPAddress"] == ""
    dnscock = dnscock_for(engine)
    assert dnscock.addresses("db.redis.docker") == [container_ip(container)]


def test_nodata_for_a_type_the_name_lacks(docker_env, dnscock_for):
    engine = docker_env
    engine.run("redis:latest", name="redis1")
    dnscock = dnscock_for(engine)
    reply = dnscock.query("redis1.redis.docker", "MX")
    assert rcode(reply) == "NOERROR"
    assert not reply.answer
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
