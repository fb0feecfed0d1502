"""``dnscock host-setup`` for each target, on a temporary root: print, apply, apply again, remove."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dnscock_process import ROOT

ENV = {"DNSCOCK_DNS": "127.0.0.1:5353", "DNSCOCK_DOMAIN": "docker", "PATH": "/usr/bin:/bin"}
ENV_53 = {**ENV, "DNSCOCK_DNS": "172.17.0.1:53"}

EXPECTED = {
    "resolved": ("etc/systemd/resolved.conf.d/dnscock.conf", "[Resolve]\nDNS=127.0.0.1:5353\nDomains=~docker\n"),
    "networkmanager": ("etc/NetworkManager/dnsmasq.d/dnscock.conf", "server=/docker/127.0.0.1#5353\n"),
    "dnsmasq": ("etc/dnsmasq.d/dnscock.conf", "server=/docker/127.0.0.1#5353\n"),
    "macos": ("etc/resolver/docker", "nameserver 127.0.0.1\nport 5353\n"),
}


def host_setup(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnscock", "host-setup", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (None) under ``root``."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("target", list(EXPECTED))
@pytest.mark.parametrize("tree", ["etc", "etc and the resolver's directory", "nothing"])
def test_print_apply_again_and_remove(tmp_path, target, tree):
    relative, body = EXPECTED[target]
    if tree != "nothing":
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    if tree == "etc and the resolver's directory":
        (tmp_path / relative).parent.parent.mkdir(parents=True, exist_ok=True)
    before = snapshot(tmp_path)

    printed = host_setup("--target", target)
    assert printed.returncode == 0 and body in printed.stdout and snapshot(tmp_path) == before

    applied = host_setup("--target", target, "--apply", "--root", str(tmp_path))
    assert applied.returncode == 0, applied.stderr
    written = (tmp_path / relative).read_text()
    assert written.startswith("# Written by dnscock host-setup") and written.endswith(body)
    after_first = snapshot(tmp_path)

    again = host_setup("--target", target, "--apply", "--root", str(tmp_path))
    assert again.returncode == 0 and "unchanged" in again.stdout and snapshot(tmp_path) == after_first

    removed = host_setup("--target", target, "--remove", "--root", str(tmp_path))
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert snapshot(tmp_path) == before, "the tree as it was, directories included"
    assert host_setup("--target", target, "--remove", "--root", str(tmp_path)).returncode == 0  # idempotent


def test_a_file_that_is_not_dnscocks_is_never_touched(tmp_path):
    path = tmp_path / "etc/dnsmasq.d/dnscock.conf"
    path.parent.mkdir(parents=True)
    path.write_text("server=/docker/10.0.0.1\n")
    result = host_setup("--target", "dnsmasq", "--apply", "--root", str(tmp_path))
    assert result.returncode == 1 and "is not dnscock's: not touched" in result.stderr
    assert host_setup("--target", "dnsmasq", "--remove", "--root", str(tmp_path)).returncode == 0
    assert path.read_text() == "server=/docker/10.0.0.1\n"


def test_a_directory_that_gets_somebody_elses_file_meanwhile_stays(tmp_path):
    assert host_setup("--target", "resolved", "--apply", "--root", str(tmp_path)).returncode == 0
    theirs = tmp_path / "etc/systemd/resolved.conf.d/theirs.conf"
    theirs.write_text("[Resolve]\n")
    assert host_setup("--target", "resolved", "--remove", "--root", str(tmp_path)).returncode == 0
    assert snapshot(tmp_path) == {"etc": None, "etc/systemd": None, "etc/systemd/resolved.conf.d": None,
                                  "etc/systemd/resolved.conf.d/theirs.conf": b"[Resolve]\n"}


@pytest.mark.parametrize("original", [None, "", '{"log-driver": "journald", "dns": ["9.9.9.9"]}\n'])
def test_daemon_json_is_merged_and_put_back_to_its_original_bytes(tmp_path, original):
    """None: no /etc/docker at all; "": the directory, no daemon.json."""
    path = tmp_path / "etc/docker/daemon.json"
    if original is not None:
        path.parent.mkdir(parents=True)
    if original:
        path.write_text(original)
    before = snapshot(tmp_path)
    applied = host_setup("--target", "docker", "--apply", "--root", str(tmp_path), env=ENV_53)
    assert applied.returncode == 0, applied.stderr
    settings = json.loads(path.read_text())
    assert settings["dns"] == ["172.17.0.1"] and settings["dns-search"] == ["docker"]
    if original:
        assert settings["log-driver"] == "journald", "other settings are kept"
    after = snapshot(tmp_path)
    assert "unchanged" in host_setup("--target", "docker", "--apply", "--root", str(tmp_path), env=ENV_53).stdout
    assert snapshot(tmp_path) == after
    assert host_setup("--target", "docker", "--remove", "--root", str(tmp_path), env=ENV_53).returncode == 0
    assert snapshot(tmp_path) == before


def test_docker_needs_port_53(tmp_path):
    result = host_setup("--target", "docker", "--apply", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "containers ask port 53 only, dnscock listens on 5353" in result.stderr


def test_without_targets_it_applies_to_the_resolvers_this_host_has(tmp_path):
    (tmp_path / "etc/systemd").mkdir(parents=True)
    (tmp_path / "etc/dnsmasq.d").mkdir(parents=True)
    result = host_setup("--apply", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "etc/dnsmasq.d/dnscock.conf", "etc/systemd/resolved.conf.d/dnscock.conf"]


def test_it_takes_the_servers_flags_like_the_server(tmp_path):
    printed = host_setup("--target", "dnsmasq", "-dns=127.0.0.1:5300", "--domain", "test.example")
    assert printed.returncode == 0, printed.stderr
    assert "server=/test.example/127.0.0.1#5300" in printed.stdout


def test_dns_bridge_is_the_default_bridges_gateway_never_the_word(tmp_path):
    given = host_setup("--target", "dnsmasq", "--target", "docker", "-dns=bridge", "--address", "172.17.0.1")
    assert given.returncode == 0, given.stderr
    assert "server=/docker/172.17.0.1#53" in given.stdout and '"172.17.0.1"' in given.stdout
    unknown = host_setup("--target", "dnsmasq", "-dns=bridge", f"-docker=unix://{tmp_path}/absent.sock")
    assert unknown.returncode == 1 and "bridge" not in unknown.stdout
    assert unknown.stderr.startswith("dnscock host-setup: -dns=bridge: cannot read the default bridge's gateway")
