"""Three plain engines at once (``-docker`` repeated and comma-separated), one of them SIGKILLed.

Names are the union across engines; each engine has its own session,
backoff and table; an engine that is down keeps its last table and /health
names it; containers that publish ports on an engine given ``?address=IP``
answer that address, with SRV giving the published port; TXT names the engine.
"""

from __future__ import annotations

import pytest
import requests

from tests.docker.conftest import start_engine, stop_engine
from tests.support.private_engine import container_ip

HOST_ADDRESS = "127.0.0.3"  # where the third engine's host is "reached from elsewhere": a loopback address here


@pytest.fixture
def three_engines():
    engines = []
    try:
        for index in range(3):
            engines.append(start_engine(f"dck-many{index}-"))
        yield engines
    finally:
        for engine in engines:
            stop_engine(engine)


def test_three_engines_answer_as_one_table_and_one_down_keeps_its_last(three_engines, start_dnscock, upstream):
    first, second, third = three_engines
    a = first.run(name="alpha")
    b = second.run(name="bravo")
    third.run(name="charlie", ports={"80/tcp": 18080})
    dnscock = start_dnscock(f"-docker={first.url},{second.url}", f"-docker={third.url}?address={HOST_ADDRESS}",
                            f"-nameserver={upstream.address}", "-http=127.0.0.1:0", "-grace=0")
    for engine in three_engines:
        dnscock.wait_for_log(f"connected to the Docker engine at {engine.url}")

    a_ip, b_ip = container_ip(a), container_ip(b)
    assert dnscock.addresses("alpha.busybox.docker") == [a_ip]
    assert dnscock.addresses("bravo.busybox.docker") == [b_ip]
    # Published on the third engine's host: the address it is reached at, and the published port.
    assert dnscock.addresses("charlie.busybox.docker") == [HOST_ADDRESS]
    srv = dnscock.query("_80._tcp.charlie.busybox.docker", "SRV")
    assert [(rr.port, rr.target.to_text()) for rr in srv.answer[0]] == [(18080, "charlie.busybox.docker.")]
    assert sorted(dnscock.addresses("busybox.docker")) == sorted([a_ip, b_ip, HOST_ADDRESS])
    txt = dnscock.query("bravo.busybox.docker", "TXT")
    assert f"engine={second.url}".encode() in txt.answer[0][0].strings

    health = requests.get(f"{dnscock.http_url}/health", timeout=5)
    assert health.status_code == 200
    assert [engine["url"] for engine in health.json()["engines"]] == [first.url, second.url, third.url]

    # The second engine is SIGKILLed: its last table stays, /health names it, the others go on.
    mark = len(dnscock.lines)
    second.kill()
    dnscock.wait_for_log(f"(lost|cannot reach) the Docker engine at {second.url}", start=mark)
    assert dnscock.addresses("bravo.busybox.docker") == [b_ip], "the last known table is kept"
    health = requests.get(f"{dnscock.http_url}/health", timeout=5)
    assert health.status_code == 503
    assert any(second.url in reason for reason in health.json()["reasons"])
    assert not any(first.url in reason or third.url in reason for reason in health.json()["reasons"])
    delta = first.run(name="delta")
    dnscock.wait_for_answer("delta.busybox.docker", lambda reply: bool(reply.answer))
    assert dnscock.addresses("delta.busybox.docker") == [container_ip(delta)]
    metrics = requests.get(f"{dnscock.http_url}/metrics", timeout=5).text
    assert f'dnscock_engine_connected{{engine="{second.url}"}} 0.0' in metrics
    assert f'dnscock_engine_connected{{engine="{first.url}"}} 1.0' in metrics

    # It comes back (without the containers it had: no live restore), and dnscock follows it again.
    mark = len(dnscock.lines)
    second.wait_for_containerd()
    second.start()
    dnscock.wait_for_log(f"connected to the Docker engine at {second.url}", timeout=30, start=mark)
    echo = second.run(name="echo")
    dnscock.wait_for_answer("echo.busybox.docker", lambda reply: bool(reply.answer))
    assert dnscock.addresses("echo.busybox.docker") == [container_ip(echo)]
    assert requests.get(f"{dnscock.http_url}/health", timeout=5).status_code == 200
