"""TLS to the engine: a private engine listening with ``--tlsverify``, dnscock with a client certificate.

The engine's TLS port takes only clients whose certificate its CA signed;
dnscock checks the engine's certificate against ``-tlscacert``. Both the
start-up listing (raw pipelined inspects, wrapped in TLS) and the event
stream (docker-py) go over TLS. A wrong CA or an untrusted client
certificate leaves dnscock running, saying why in one log line, forwarding
as usual and answering SERVFAIL for local names; a missing file stops it at
start with exit code 2 and one line naming the option.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.dnscock_process import ROOT, rcode
from tests.support.fake_upstream import ANSWER_IP
from tests.support.private_engine import EngineUnavailable, PrivateEngine, container_ip
from tests.support.tls_certs import CertSet, OpensslUnavailable, make_certs


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"no TLS engine in CI: {reason}")
    pytest.skip(f"no TLS engine here: {reason}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> CertSet:
    try:
        return make_certs(tmp_path_factory.mktemp("certs"))
    except OpensslUnavailable as error:
        _unavailable(str(error))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory) -> CertSet:
    """An unrelated CA and its own client certificate."""
    return make_certs(tmp_path_factory.mktemp("other-certs"), name="other")


@pytest.fixture(scope="module")
def tls_engine(certs):
    root = Path(tempfile.mkdtemp(prefix="dck-tls-", dir="/tmp"))
    engine = PrivateEngine(root, tls=certs)
    try:
        engine.start()
    except EngineUnavailable as error:
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(str(error))
    yield engine
    engine.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def engine_env(tls_engine):
    yield tls_engine
    for container in tls_engine.client.containers.list(all=True):
        container.remove(force=True)


def _has_answer(reply) -> bool:
    return bool(reply.answer)


def _tls_flags(certs: CertSet, ca: Path | None = None, cert: Path | None = None, key: Path | None = None) -> list[str]:
    return ["-tlsverify", f"-tlscacert={ca or certs.ca}", f"-tlscert={cert or certs.client_cert}",
            f"-tlskey={key or certs.client_key}"]


def test_flags_listing_and_events_over_tls(engine_env, certs, start_dnscock, upstream):
    engine: PrivateEngine = engine_env
    before = engine.run("redis:latest", name="before")  # read by the start-up listing (pipelined inspect)
    dnscock = start_dnscock(f"-docker={engine.tls_url}", f"-nameserver={upstream.address}", *_tls_flags(certs))
    dnscock.wait_for_log(rf"connected to the Docker engine at {engine.tls_url}")
    assert dnscock.addresses("before.redis.docker") == [container_ip(before)]
    after = engine.run("redis:latest", name="after")  # told by the event stream, inspected alone
    dnscock.wait_for_answer("after.redis.docker", _has_answer)
    assert dnscock.addresses("after.redis.docker") == [container_ip(after)]
    assert dnscock.addresses("www.example.com") == [ANSWER_IP]
    assert "TLS with the engine failed" not in dnscock.log()


def test_docker_env_vars_only(engine_env, certs, start_dnscock, upstream):
    engine: PrivateEngine = engine_env
    container = engine.run("redis:latest", name="envonly")
    dnscock = start_dnscock(f"-nameserver={upstream.address}", env={
        "DOCKER_HOST": engine.tls_url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs.client_dir),
    })
    dnscock.wait_for_log(rf"connected to the Docker engine at {engine.tls_url}")
    assert dnscock.addresses("envonly.redis.docker") == [container_ip(container)]


@pytest.mark.parametrize("case", ["wrong-ca", "untrusted-client"])
def test_bad_certificates_are_logged_and_served_as_servfail(case, engine_env, certs, other_certs, start_dnscock,
                                                             upstream):
    engine: PrivateEngine = engine_env
    engine.run("redis:latest", name="hidden")
    if case == "wrong-ca":  # dnscock cannot trust the engine
        flags = _tls_flags(certs, ca=other_certs.ca)
        expected = r"TLS with the engine failed: certificate verify failed.*-tlscacert"
    else:  # the engine does not trust dnscock
        flags = _tls_flags(certs, cert=other_certs.client_cert, key=other_certs.client_key)
        expected = r"TLS with the engine failed: .*refuse the client certificate\? -tlscert"
    dnscock = start_dnscock(f"-docker={engine.tls_url}", f"-nameserver={upstream.address}", "-sync-timeout=1",
                            "-debug", *flags)
    first = dnscock.wait_for_log(r"WARNING dnscock.docker: cannot reach the Docker engine")
    assert re.search(expected, first.string), first.string  # the one line a user sees says why
    print(f"\n{case}: {first.string.split(': ', 1)[-1]}")
    assert rcode(dnscock.query("hidden.redis.docker")) == "SERVFAIL"
    assert dnscock.addresses("www.example.com") == [ANSWER_IP]
    # It keeps retrying (at debug level: one warning per outage) and never crashes.
    mark = len(dnscock.lines)
    dnscock.wait_for_log(r"cannot reach the Docker engine", start=mark, timeout=10)
    assert dnscock.process.poll() is None
    assert rcode(dnscock.query("hidden.redis.docker")) == "SERVFAIL"
    assert "Traceback" not in dnscock.log()
    assert "connected to the Docker engine" not in dnscock.log()


@pytest.mark.parametrize("case", ["flag", "cert-path"])
def test_missing_certificate_file_stops_at_start(case, certs, tmp_path, upstream):
    if case == "flag":
        missing = tmp_path / "nope" / "cert.pem"
        args, env, option = [f"-tlscert={missing}", f"-tlscacert={certs.ca}", f"-tlskey={certs.client_key}",
                             "-tlsverify"], {}, "-tlscert"
    else:  # DOCKER_CERT_PATH names a directory without the files
        missing = tmp_path / "ca.pem"
        args, env, option = [], {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}, "-tlscacert"
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("DNSCOCK_", "DOCKER_"))}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "dnscock", "-dns=127.0.0.1:0", f"-nameserver={upstream.address}",
         "-docker=tcp://127.0.0.1:9", *args],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2, result
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert option in lines[0] and str(missing) in lines[0], lines[0]
