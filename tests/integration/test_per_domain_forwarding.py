"""Forwarding one domain to its own servers (``-nameserver=/corp.example/host:port``, dnsmasq's form)."""

from __future__ import annotations

import requests

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import rcode


def test_each_upstream_receives_only_its_own_names(start_dnscock, make_upstream):
    default, corp, lab = make_upstream(), make_upstream(answer_ip="192.0.2.10"), make_upstream(answer_ip="192.0.2.20")
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={default.address}",
                            f"-nameserver=/corp.example/{corp.address}",
                            f"-nameserver=/lab.corp.example/internal.test/{lab.address}", "-http=127.0.0.1:0")
    assert dnscock.addresses("www.corp.example") == ["192.0.2.10"]
    assert dnscock.addresses("corp.example") == ["192.0.2.10"]
    assert dnscock.addresses("db.lab.corp.example") == ["192.0.2.20"], "the longest domain wins"
    assert dnscock.addresses("a.internal.test") == ["192.0.2.20"]
    assert dnscock.addresses("www.example.org") == ["192.0.2.53"]
    assert dnscock.addresses("notcorp.example") == ["192.0.2.53"], "a domain matches whole labels only"
    assert rcode(dnscock.query("x.corp.example", tcp=True)) == "NOERROR"  # TCP follows the same routes

    def names(server) -> set[str]:
        return {arrival.name for arrival in server.arrivals if arrival.name != "."}

    assert names(corp) == {"www.corp.example.", "corp.example.", "x.corp.example."}
    assert names(lab) == {"db.lab.corp.example.", "a.internal.test."}
    assert names(default) == {"www.example.org.", "notcorp.example."}
    upstreams = requests.get(f"{dnscock.http_url}/health", timeout=5).json()["upstreams"]
    assert {(u["nameserver"], u["domain"]) for u in upstreams} == {
        (str(default.address), "."), (str(corp.address), "corp.example"),
        (str(lab.address), "lab.corp.example"), (str(lab.address), "internal.test")}
    metrics = requests.get(f"{dnscock.http_url}/metrics", timeout=5).text
    assert f'dnscock_upstream_queries_total{{domain="corp.example",nameserver="{corp.address}"}} 3.0' in metrics


def test_a_domain_with_a_silent_server_fails_over_to_its_next_one_never_the_default(start_dnscock, make_upstream):
    default, silent, backup = make_upstream(), make_upstream("silent"), make_upstream(answer_ip="192.0.2.30")
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={default.address}", "-timeout=0.6",
                            f"-nameserver=/corp.example/{silent.address},/corp.example/{backup.address}")
    assert dnscock.addresses("www.corp.example") == ["192.0.2.30"]
    assert not any(arrival.name == "www.corp.example." for arrival in default.arrivals)


def test_a_malformed_domain_form_is_named(tmp_path):
    import subprocess
    import sys

    from tests.support.dnscock_process import ROOT

    result = subprocess.run([sys.executable, "-m", "dnscock", "-nameserver=//10.0.0.1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == ("dnscock: error: argument -nameserver/--nameserver: '//10.0.0.1' names no "
                                     "domain (write /corp.example/10.0.0.1)")
