"""dnscock deployed the three ways the README gives: the image, compose, honcho (and the demo).

The private engine and its per-test cleanup are the fixtures of tests/docker.
The image is built from the repo's Dockerfile on a local base image
(tests/support/base_image.py: cached as a tar, built with debootstrap the
first time). Outside CI these tests skip, saying why, when something cannot
be had here (no engine, no Debian mirror, no package index, no docker-compose);
in CI (``CI`` set) that is a failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time

import docker
import pytest

from tests.docker.conftest import docker_env, engine, stop_engine  # noqa: F401  (the private engine, shared)
from tests.support.base_image import BaseImageUnavailable, ensure_base_image, mounts_under
from tests.support.dnscock_process import ROOT

log = logging.getLogger(__name__)

IMAGE_TAG = "dnscock:test"
BUILD_TIMEOUT = 600
# pip's words when the package index cannot be reached from the build.
INDEX_UNREACHABLE = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                     "No matching distribution found", "Could not find a version")


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"in CI: {reason}")
    pytest.skip(reason)


def stop_own_engine(engine) -> None:  # noqa: F811
    """stop_engine, then what dockerd leaves mounted under its root (exec/netns/default), so it goes too."""
    stop_engine(engine)
    for point in mounts_under(engine.root):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="session")
def base_image(engine):  # noqa: F811
    started = time.monotonic()
    try:
        reference = ensure_base_image(engine)
    except BaseImageUnavailable as error:
        unavailable(f"no local Python base image: {error}")
    log.info("base image ready in %.1fs", time.monotonic() - started)
    return reference


@pytest.fixture(scope="session")
def build_client(engine):  # noqa: F811
    """A client that waits for long build steps (the private engine's storage driver copies a lot)."""
    client = docker.DockerClient(base_url=engine.url, version="auto", timeout=BUILD_TIMEOUT)
    yield client
    client.close()


@pytest.fixture(scope="session")
def dnscock_image(build_client, base_image):
    """The repo's Dockerfile built with ``--build-arg BASE=<local base> --network host``, once a session."""
    started = time.monotonic()
    try:
        image, _ = build_client.images.build(path=str(ROOT), buildargs={"BASE": base_image}, network_mode="host",
                                             tag=IMAGE_TAG, rm=True, forcerm=True, timeout=BUILD_TIMEOUT)
    except docker.errors.BuildError as error:
        output = "".join(str(line.get("stream") or line.get("error") or "") for line in error.build_log)
        tail = "\n".join(output.strip().splitlines()[-15:])
        if any(word in output for word in INDEX_UNREACHABLE):
            unavailable(f"the build cannot reach the package index: {tail}")
        pytest.fail(f"docker build failed: {error}\n{tail}")
    log.info("image %s built in %.1fs", IMAGE_TAG, time.monotonic() - started)
    return image
