"""The HTTP API against a real engine: manual services answer in DNS, survive container events,
container ids by prefix, PATCH and /set/ttl change answers, metrics count, /health follows the engine."""

from __future__ import annotations

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.docker.conftest import start_engine, stop_engine
from tests.support.dnscock_process import rcode


def ttl_of(reply) -> int:
    return reply.answer[0].ttl


def metric(url: str, name: str, **labels: str) -> float:
    """A sample's value (its labels include ``labels``: an engine's carry its URL too); 0 for a counter of
    queries never seen (their label set does not exist yet)."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    if name == "dnscock_queries_total":
        return 0.0
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_a_put_service_answers_like_a_container_and_a_delete_removes_it(docker_env, dnscock_for):
    dnscock = dnscock_for(docker_env, "-http=127.0.0.1:0")
    url = dnscock.http_url
    assert rcode(dnscock.query("foo.bar.docker")) == "NXDOMAIN"
    created = requests.put(f"{url}/services/newid", timeout=5, json={
        "name": "foo", "image": "bar", "ips": ["192.168.0.1", "fd00::1"], "ttl": 30, "aliases": ["foo.example.org"]})
    assert created.status_code == 201, created.text
    reply = dnscock.query("foo.bar.docker")
    assert dnscock.addresses("foo.bar.docker") == ["192.168.0.1"] and ttl_of(reply) == 30
    assert dnscock.addresses("bar.docker") == ["192.168.0.1"], "image-only names, as for containers"
    assert dnscock.addresses("foo.bar.docker", "AAAA") == ["fd00::1"]
    assert dnscock.addresses("foo.example.org") == ["192.168.0.1"], "aliases are answered, not forwarded"
    ptr = dnscock.query("1.0.168.192.in-addr.arpa", "PTR")
    assert [rr.target.to_text() for rr in ptr.answer[0]] == ["foo.bar.docker."]

    assert requests.delete(f"{url}/services/newid", timeout=5).status_code == 200
    assert rcode(dnscock.query("foo.bar.docker")) == "NXDOMAIN"
    assert rcode(dnscock.query("foo.example.org")) == "NOERROR", "the alias is forwarded again"
    assert dnscock.addresses("foo.example.org") != ["192.168.0.1"]


def test_manual_services_survive_container_events_and_resyncs(docker_env, dnscock_for):
    engine = docker_env
    dnscock = dnscock_for(engine, "-http=127.0.0.1:0", "-resync-interval=0.5", "-grace=0")
    url = dnscock.http_url
    requests.put(f"{url}/services/manual1", json={"Name": "db", "Image": "static", "IPs": ["10.1.2.3"]}, timeout=5)
    web = engine.run("redis:latest", name="web")
    dnscock.wait_for_answer("web.redis.docker", lambda reply: bool(reply.answer))
    web.stop(timeout=1)
    dnscock.wait_for_answer("web.redis.docker", lambda reply: rcode(reply) == "NXDOMAIN")
    web.remove()
    mark = len(dnscock.lines)
    engine.run("redis:latest", name="other")
    dnscock.wait_for_answer("other.redis.docker", lambda reply: bool(reply.answer))
    # Resyncs replace the whole container table; the manual service is still there after them.
    resyncs = metric(url, "dnscock_engine_resyncs_total", result="done")
    deadline = time.monotonic() + 20
    while metric(url, "dnscock_engine_resyncs_total", result="done") < resyncs + 2:
        assert time.monotonic() < deadline, dnscock.log()[mark:]
        time.sleep(0.1)
    assert dnscock.addresses("db.static.docker") == ["10.1.2.3"]
    services = requests.get(f"{url}/services", timeout=5).json()
    assert services["manual1"]["Manual"] is True
    assert [service["Manual"] for service in services.values() if service["Name"] == "other"] == [False]


def test_container_ids_by_prefix_patch_and_default_ttl(docker_env, dnscock_for):
    engine = docker_env
    web = engine.run("redis:latest", name="web")
    dnscock = dnscock_for(engine, "-http=127.0.0.1:0", "-ttl=0")
    url = dnscock.http_url
    assert ttl_of(dnscock.query("web.redis.docker")) == 0

    service = requests.get(f"{url}/services/{web.id[:6]}", timeout=5).json()
    assert service["Id"] == web.id and service["Manual"] is False and service["Networks"] == ["bridge"]
    assert requests.get(f"{url}/services/{web.id[:3]}", timeout=5).status_code == 404, "prefixes need 4 digits"

    assert requests.put(f"{url}/set/ttl", data="15", timeout=5).json() == {"TTL": 15}
    assert ttl_of(dnscock.query("web.redis.docker")) == 15, "a cached local answer is not reused"

    patched = requests.patch(f"{url}/services/{web.id[:8]}", json={"TTL": 120, "Aliases": ["web.example.org"]},
                             timeout=5)
    assert patched.status_code == 200 and patched.json()["TTL"] == 120
    assert ttl_of(dnscock.query("web.redis.docker")) == 120
    assert dnscock.addresses("web.example.org") == dnscock.addresses("web.redis.docker")

    # An event about the container (a rename) refreshes its record: the patch stays on top.
    web.rename("web2")
    reply = dnscock.wait_for_answer("web2.redis.docker", lambda reply: bool(reply.answer))
    assert ttl_of(reply) == 120 and dnscock.addresses("web.example.org")

    assert requests.put(f"{url}/services/{web.id}", json={"Name": "x"}, timeout=5).status_code == 409
    assert requests.delete(f"{url}/services/{web.id[:5]}", timeout=5).status_code == 409
    assert dnscock.addresses("web2.redis.docker")


def test_metrics_count_local_answers_and_engine_events(docker_env, dnscock_for):
    engine = docker_env
    dnscock = dnscock_for(engine, "-http=127.0.0.1:0")
    url = dnscock.http_url
    engine.run("redis:latest", name="cache")
    dnscock.wait_for_answer("cache.redis.docker", lambda reply: bool(reply.answer))
    before = metric(url, "dnscock_queries_total", path="local", qtype="A", rcode="NOERROR")
    misses = metric(url, "dnscock_queries_total", path="local", qtype="A", rcode="NXDOMAIN")  # while waiting
    for _ in range(5):
        assert dnscock.addresses("cache.redis.docker")
    assert rcode(dnscock.query("nothing.docker")) == "NXDOMAIN"
    assert metric(url, "dnscock_queries_total", path="local", qtype="A", rcode="NOERROR") == before + 5
    assert metric(url, "dnscock_queries_total", path="local", qtype="A", rcode="NXDOMAIN") == misses + 1
    assert metric(url, "dnscock_engine_connected") == 1 and metric(url, "dnscock_engine_synced") == 1
    assert metric(url, "dnscock_engine_events_total", type="container", action="start") >= 1
    assert metric(url, "dnscock_records", kind="container") == 1


def test_health_follows_the_engine(start_dnscock, upstream):
    engine = start_engine("dck-health-")
    try:
        dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0")
        dnscock.wait_for_log("connected to the Docker engine")
        url = dnscock.http_url
        healthy = requests.get(f"{url}/health", timeout=5)
        assert healthy.status_code == 200 and healthy.json()["status"] == "ok"

        engine.kill()
        dnscock.wait_for_log("lost the Docker engine|cannot reach the Docker engine")
        down = requests.get(f"{url}/health", timeout=5)
        assert down.status_code == 503 and "cannot be reached" in down.json()["reasons"][0]
        assert metric(url, "dnscock_engine_connected") == 0

        engine.wait_for_containerd()
        engine.start()
        mark = len(dnscock.lines)
        dnscock.wait_for_log("connected to the Docker engine", timeout=30, start=mark)
        back = requests.get(f"{url}/health", timeout=5)
        assert back.status_code == 200 and back.json()["engine"]["connected"] is True
    finally:
        stop_engine(engine)
