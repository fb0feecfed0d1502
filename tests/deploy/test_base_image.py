"""The local Python base image: what it holds, and that asking for it again (or twice at once) is cheap."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.deploy.conftest import stop_own_engine
from tests.docker.conftest import start_engine
from tests.support.base_image import KEY_LABEL, VENV, debian_mirror, ensure_base_image, recipe_key

pytestmark = pytest.mark.timeout(900)  # the first run builds the base image


def test_base_image_holds_a_venv_first_on_path(engine, base_image):
    image = engine.client.images.get(base_image)
    assert image.labels[KEY_LABEL] == recipe_key(debian_mirror())
    environment = dict(item.partition("=")[::2] for item in image.attrs["Config"]["Env"])
    assert environment["PATH"].split(":")[0] == f"{VENV}/bin"
    script = "import sys, ssl, pip; print(sys.prefix)"
    output = engine.client.containers.run(base_image, ["sh", "-c", f'python -c "{script}" && cat /etc/pip.conf'],
                                          remove=True).decode()
    lines = output.splitlines()
    assert lines[0] == VENV
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in lines


def test_asking_again_is_a_no_op(engine, base_image):
    started = time.monotonic()
    assert ensure_base_image(engine) == base_image
    assert time.monotonic() - started < 2.0


def test_two_callers_at_once_load_it_once(base_image, caplog):
    """Two threads, one fresh engine: one loads the cache tar under the lock, the other finds it loaded."""
    other = start_engine("dcb-")
    try:
        results: list[str] = []
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                results.append(ensure_base_image(other))
            except BaseException as error:  # noqa: BLE001  (reported below)
                errors.append(error)

        with caplog.at_level(logging.INFO, logger="tests.support.base_image"):
            threads = [threading.Thread(target=ask) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=600)
        assert not errors, errors
        assert results == [base_image, base_image]
        loads = [r.message for r in caplog.records if "loaded from" in r.message or "debootstrap took" in r.message]
        assert len(loads) == 1, caplog.text
        assert other.client.images.get(base_image).labels[KEY_LABEL] == recipe_key(debian_mirror())
    finally:
        stop_own_engine(other)
