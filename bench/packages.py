"""The system tools the bench runs, installed with apt-get when missing: dnsperf, dnsmasq, taskset, and the
private engines' packages (docker.io, busybox-static, iproute2)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from bench.errors import BenchError

log = logging.getLogger(__name__)

DNSMASQ = "/usr/sbin/dnsmasq"
ENGINE_PACKAGES = ("docker.io", "busybox-static", "iproute2")


def dpkg_installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return "install ok installed" in result.stdout


def ensure_packages(need_engine: bool) -> None:
    missing = []
    if not shutil.which("dnsperf"):
        missing.append("dnsperf")
    if not os.path.exists(DNSMASQ):
        missing.append("dnsmasq-base")
    if not shutil.which("taskset"):
        missing.append("util-linux")
    if need_engine:
        missing += [package for package in ENGINE_PACKAGES if not dpkg_installed(package)]
    if not missing:
        return
    log.info("installing %s with apt-get", " ".join(missing))
    environ = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    result = subprocess.run(command, env=environ, capture_output=True, text=True)
    if result.returncode != 0:
        log.info("apt-get install failed; running apt-get update first")
        subprocess.run(["apt-get", "update", "-qq"], env=environ, capture_output=True, text=True)
        result = subprocess.run(command, env=environ, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"cannot install {' '.join(missing)}: {(result.stderr or result.stdout).strip()[-1000:]}")
