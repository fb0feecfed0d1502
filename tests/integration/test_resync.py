"""The periodic resync corrects drift the event stream missed (on the fake Engine API server)."""

from __future__ import annotations

from dnscock.naming import image_name
from tests.support.dnscock_process import rcode
from tests.support.fake_engine import FakeEngine


def dns_name(container) -> str:
    return f"{container.name}.{image_name(container.image.reference)}.docker"


def test_a_resync_corrects_what_no_event_told(start_dnscock, upstream, tmp_path):
    engine = FakeEngine(tmp_path / "docker.sock", containers=3)
    engine.start()
    try:
        dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}",
                                "-resync-interval=0.3", "-grace=0")
        dnscock.wait_for_log("connected to the Docker engine .* 3 containers served")
        gone = engine.containers[0]
        assert dnscock.addresses(dns_name(gone)) == [gone.ip]

        engine.remove_container(gone.id, emit=False)  # as if the event had been lost
        new = engine.add_container(emit=False)
        dnscock.wait_for_answer(dns_name(gone), lambda reply: rcode(reply) == "NXDOMAIN")
        dnscock.wait_for_answer(dns_name(new), lambda reply: bool(reply.answer))
        dnscock.wait_for_log(f"container {gone.name} .* removed: .*gone from the engine")
        assert dnscock.addresses(dns_name(new)) == [new.ip]
    finally:
        engine.stop()
