"""The real server process on loopback: bad packets, many queries, the command line."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys

import dns.message
import dns.rcode
import pytest

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import ROOT, rcode


@pytest.fixture
def dnscock(start_dnscock, upstream):
    return start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}", "-timeout=0.5")


def exchange(dnscock, payload: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (dnscock.host, dnscock.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def query_wire(name="www.example.com", rdtype="A", qid=0x1234) -> bytes:
    message = dns.message.make_query(name, rdtype)
    message.id = qid
    return message.to_wire()


@pytest.mark.parametrize(
    "payload",
    [
        query_wire()[:12] + b"\x07example",  # a question cut short
        query_wire()[:12] + b"\xc0\x0c\x00\x01\x00\x01",  # a compression loop in the question
        query_wire()[:4] + b"\xff\xff" + query_wire()[6:],  # QDCOUNT lies
        query_wire()[:12] + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # a label over 63 octets
    ],
)
def test_malformed_queries_get_formerr_with_their_id(dnscock, payload):
    reply = exchange(dnscock, payload)
    assert reply is not None
    message_id, flags = struct.unpack("!HH", reply[:4])
    assert message_id == 0x1234
    assert flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR


@pytest.mark.parametrize("payload", [b"", b"\x12", b"\x00" * 11])
def test_messages_without_a_header_are_dropped(dnscock, payload):
    assert exchange(dnscock, payload, timeout=0.3) is None
    assert rcode(dnscock.query("www.example.com")) == "NOERROR", "still serving"


def test_responses_are_never_answered(dnscock):
    response = dns.message.make_response(dns.message.make_query("www.example.com", "A")).to_wire()
    assert exchange(dnscock, response, timeout=0.3) is None


def test_many_queries_in_flight_are_all_answered(dnscock, upstream):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for qid in range(200):
            sock.sendto(query_wire(f"n{qid}.example.com", qid=qid), (dnscock.host, dnscock.port))
        ids = set()
        while len(ids) < 200:
            reply = dns.message.from_wire(sock.recv(65535))
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.question[0].name.to_text() == f"n{reply.id}.example.com."
            ids.add(reply.id)
    assert ids == set(range(200))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnscock", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_version_and_help():
    version = run_cli("-version")
    assert version.returncode == 0 and version.stdout.startswith("dnscock ")
    help_text = run_cli("-help").stdout
    for option in ("-dns", "-docker", "-domain", "-environment", "-nameserver", "-ttl", "-debug", "-verbose",
                   "DNSCOCK_DNS", "DNSCOCK_CONFIG"):
        assert option in help_text


def test_a_bad_flag_is_one_line_and_exit_code_2():
    result = run_cli("-ttl=soon")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dnscock: error: argument -ttl/--ttl: 'soon' is not a whole number of seconds (0 to 2147483647)"
    ]


def test_an_address_in_use_is_a_clear_error(upstream):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = run_cli(f"-dns=127.0.0.1:{port}", f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_configured_by_env_vars_alone(start_dnscock, upstream):
    env = {"DNSCOCK_DOMAIN": "local.test", "DNSCOCK_NAMESERVER": upstream.address,
           "DNSCOCK_DOCKER": NO_ENGINE, "DNSCOCK_DEBUG": "true"}
    dnscock = start_dnscock(env=env)
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"
    dnscock.wait_for_log("serving \\*.local.test, forwarding to " + upstream.address)
    dnscock.wait_for_log("query www.example.com. A from 127.0.0.1")


def test_configured_by_a_config_file(start_dnscock, upstream, tmp_path):
    conf = tmp_path / "dnscock.conf"
    conf.write_text(f"domain = file.test\nnameserver = {upstream.address}\ndocker = {NO_ENGINE}\n")
    dnscock = start_dnscock(f"--config={conf}")
    dnscock.wait_for_log("serving \\*.file.test")
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"


def test_sigterm_stops_it_cleanly(start_dnscock, upstream):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    assert dnscock.stop(timeout=5) == 0
