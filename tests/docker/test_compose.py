"""A real compose project (Debian's docker-compose) on the private engine."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

COMPOSE_FILE = """\
version: "2.4"
services:
  web:
    image: web:latest
    command: ["sleep", "3600"]
    init: true
    scale: 2
"""


@pytest.fixture
def compose(docker_env, tmp_path):
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    docker_env.ensure_image("web:latest")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**os.environ, "DOCKER_HOST": docker_env.url}

    def run(*args: str) -> str:
        return subprocess.run(["docker-compose", "-p", "shop", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=True, timeout=120).stdout

    run("up", "-d")
    yield run
    run("down")


def test_service_dot_project_answers_every_replica(docker_env, compose, dnscock_for):
    dnscock = dnscock_for(docker_env)
    replicas = [c for c in docker_env.client.containers.list() if c.name.startswith("shop_web_")]
    assert len(replicas) == 2
    expected = sorted(c.attrs["NetworkSettings"]["Networks"]["shop_default"]["IPAddress"] for c in replicas)
    assert dnscock.addresses("web.shop.docker") == expected
    txt = dnscock.query("shop_web_1.web.docker", "TXT")
    strings = [s.decode() for s in txt.answer[0][0].strings]
    assert "compose_project=shop" in strings and "compose_service=web" in strings
