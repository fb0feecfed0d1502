"""The HTTP API of a real dnscock process, with a real HTTP client: writes guarded, errors named, metrics parsed.

No engine here (the tests that need containers are in tests/docker/test_http_api.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import dns.message
import dns.query
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import ROOT, rcode

SERVICE = {"name": "foo", "image": "bar", "ips": ["192.168.0.1"], "ttl": 30}


def loopback(url: str) -> str:
    return url.replace("0.0.0.0", "127.0.0.1")


def metric_values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_loopback_api_without_a_token_takes_writes(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0")
    url = dnscock.http_url
    created = requests.put(f"{url}/services/newid", json=SERVICE, timeout=5)
    assert created.status_code == 201, created.text
    assert created.json()["Manual"] is True
    assert requests.put(f"{url}/services/newid", json=SERVICE, timeout=5).status_code == 200, "replaced"
    listed = requests.get(f"{url}/services", timeout=5).json()
    assert listed["newid"]["Name"] == "foo" and listed["newid"]["IPs"] == ["192.168.0.1"]
    assert listed["newid"]["TTL"] == 30 and listed["newid"]["Names"] == ["foo.bar.docker"]
    assert requests.delete(f"{url}/services/newid", timeout=5).status_code == 200
    assert requests.get(f"{url}/services/newid", timeout=5).status_code == 404


def test_writes_refused_on_a_non_loopback_address_without_a_token(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=0.0.0.0:0")
    url = loopback(dnscock.http_url)
    dnscock.wait_for_log("without -http-token: the API is read-only")
    refused = requests.put(f"{url}/services/x", json=SERVICE, timeout=5)
    assert refused.status_code == 403 and "http-token" in refused.json()["error"]
    assert requests.get(f"{url}/services", timeout=5).json() == {}, "nothing was added; reads still work"


def test_a_token_guards_every_write(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=0.0.0.0:0",
                            env={"DNSCOCK_HTTP_TOKEN": "s3cret"})
    url = loopback(dnscock.http_url)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        for method in ("PUT", "PATCH", "DELETE"):
            denied = requests.request(method, f"{url}/services/x", json=SERVICE, headers=headers, timeout=5)
            assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Bearer"), method
        assert requests.put(f"{url}/set/ttl", data="5", headers=headers, timeout=5).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert requests.put(f"{url}/services/x", json=SERVICE, headers=good, timeout=5).status_code == 201
    assert requests.patch(f"{url}/services/x", json={"ttl": 5}, headers=good, timeout=5).json()["TTL"] == 5
    assert requests.put(f"{url}/set/ttl", data="9", headers=good, timeout=5).json() == {"TTL": 9}
    assert requests.get(f"{url}/services/x", timeout=5).status_code == 200, "reads need no token"
    assert requests.delete(f"{url}/services/x", headers=good, timeout=5).status_code == 200


def test_bad_input_gets_400_naming_the_field_and_changes_nothing(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0")
    url = dnscock.http_url
    assert requests.put(f"{url}/services/s", json=SERVICE, timeout=5).status_code == 201
    before = requests.get(f"{url}/services/s", timeout=5).json()

    not_json = requests.put(f"{url}/services/t", data="{nope", timeout=5)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    for document, field in (({"Name": "a", "TTL": "30"}, "TTL"), ({"Name": "a", "IPs": ["10.0.0.300"]}, "IPs"),
                            ({"Name": "a", "Aliases": "x"}, "Aliases")):
        bad = requests.put(f"{url}/services/t", json=document, timeout=5)
        assert bad.status_code == 400 and bad.json()["field"] == field, bad.text
    half = requests.patch(f"{url}/services/s", json={"TTL": 5, "IPs": ["bad"]}, timeout=5)
    assert half.status_code == 400 and half.json()["field"] == "IPs"
    assert requests.get(f"{url}/services/s", timeout=5).json() == before, "the valid TTL was not applied alone"
    assert requests.get(f"{url}/services/t", timeout=5).status_code == 404
    assert requests.put(f"{url}/set/ttl", data="soon", timeout=5).json()["field"] == "TTL"

    wrong_method = requests.post(f"{url}/services/s", json=SERVICE, timeout=5)
    assert wrong_method.status_code == 405 and "PUT" in wrong_method.headers["Allow"]
    assert requests.get(f"{url}/nothing", timeout=5).status_code == 404
    assert requests.get(f"{url}/services/abcd", timeout=5).json()["field"] == "id"


def test_health_says_why_it_is_unavailable(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0")
    health = requests.get(f"{dnscock.http_url}/health", timeout=5)
    assert health.status_code == 503
    document = health.json()
    assert document["status"] == "unavailable" and document["engine"]["synced"] is False
    assert document["dns"] == {"udp": f"127.0.0.1:{dnscock.port}", "tcp": f"127.0.0.1:{dnscock.port}"}
    assert any(NO_ENGINE in reason for reason in document["reasons"])


def test_metrics_count_forwarded_cached_and_malformed_queries_and_upstream_timeouts(start_dnscock, make_upstream):
    silent, answering = make_upstream("silent"), make_upstream("answer")
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={silent.address},{answering.address}",
                            "-http=127.0.0.1:0", "-timeout=1", "-max-fails=0")
    url = dnscock.http_url
    for name in ("one.example.com", "two.example.com"):
        assert rcode(dnscock.query(name)) == "NOERROR"
    assert rcode(dnscock.query("one.example.com")) == "NOERROR"  # from the forward cache
    assert rcode(dnscock.query("one.example.com", "AAAA", tcp=True)) == "NOERROR"
    garbage = dns.message.make_query("x.example.com", "A").to_wire()[:14]  # the question cut short
    reply = dns.query.udp(dns.message.make_query("y.example.com", "A"), dnscock.host, port=dnscock.port, timeout=5)
    assert rcode(reply) == "NOERROR"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(garbage, (dnscock.host, dnscock.port))
        assert sock.recv(512)[3] & 0x0F == 1  # FORMERR

    values = metric_values(url)
    forwarded_a = (("path", "forwarded"), ("qtype", "A"), ("rcode", "NOERROR"))
    assert values[("dnscock_queries_total", forwarded_a)] == 3
    assert values[("dnscock_queries_total", (("path", "cached"), ("qtype", "A"), ("rcode", "NOERROR")))] == 1
    assert values[("dnscock_queries_total", (("path", "forwarded"), ("qtype", "AAAA"), ("rcode", "NOERROR")))] == 1
    assert values[("dnscock_queries_total", (("path", "local"), ("qtype", "other"), ("rcode", "FORMERR")))] == 1
    assert values[("dnscock_query_duration_seconds_count", (("path", "forwarded"),))] == 4
    assert values[("dnscock_query_duration_seconds_bucket", (("le", "+Inf"), ("path", "cached")))] == 1
    nameserver = (("domain", "."), ("nameserver", str(silent.address)))
    assert values[("dnscock_upstream_timeouts_total", nameserver)] == 4
    assert values[("dnscock_upstream_queries_total", (("domain", "."), ("nameserver", str(answering.address))))] == 4
    assert values[("dnscock_upstream_errors_total", nameserver)] == 0
    assert values[("dnscock_engine_connected", (("engine", NO_ENGINE),))] == 0
    assert values[("dnscock_records", (("kind", "container"), ("source", NO_ENGINE)))] == 0
    assert values[("dnscock_pool_in_use", ())] == 0
    assert values[("dnscock_greenlets", ())] >= 1
    assert values[("process_resident_memory_bytes", ())] > 0

    readme = (ROOT / "README.md").read_text()
    families = {family.name for family in text_string_to_metric_families(requests.get(f"{url}/metrics").text)}
    for family in sorted(name for name in families if name.startswith("dnscock_")):
        shown = family + "_total" if family + "_total" in readme else family
        assert f"`{shown}`" in readme, f"README does not document {family}"


def test_records_command_prints_the_live_table(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0")
    requests.put(f"{dnscock.http_url}/services/newid", json={**SERVICE, "aliases": ["foo.example"]}, timeout=5)
    address = dnscock.http_url.removeprefix("http://")

    def records(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dnscock", "records", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=30, env=env)

    table = records("--http", address)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAMES", "IMAGE", "IPS", "TTL", "ALIASES", "NETWORKS", "HEALTH", "ID"]
    assert row.split() == ["foo.bar.docker", "bar", "192.168.0.1", "30", "foo.example", "(manual)", "-", "newid"]
    assert header.index("IMAGE") == row.index(" bar ") + 1, "columns are aligned"

    as_json = records("--json", env={"DNSCOCK_HTTP": address, "PATH": "/usr/bin:/bin"})
    assert json.loads(as_json.stdout)["newid"]["Aliases"] == ["foo.example"]

    nowhere = records("--http", "127.0.0.1:9")
    assert nowhere.returncode == 1 and "cannot read" in nowhere.stderr and len(nowhere.stderr.splitlines()) == 1
