"""The ``scale`` case: 1000 local names of a fake engine with ``--scale-containers`` containers, against 1000
names of one with 10: does a large table slow dnscock's answers? Also dnscock's RSS with the large table.

Each round starts a fresh dnscock for each engine (the sync is timed too).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import docker

from bench import compare
from bench.dnsclient import addresses, ask
from bench.errors import BenchError
from bench.session import SMALL_ENGINE, Session
from tests.support.fake_engine import FakeEngineProcess

log = logging.getLogger(__name__)

SCALE_NAMES = 1000


def image_name(reference: str) -> str:
    """``registry.example.com/team/img0010:v1`` -> ``img0010``."""
    last = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def local_names(engine: FakeEngineProcess, count: int, seed: int = 1) -> list[str]:
    """``<container>.<image>.docker`` of up to ``count`` of its containers (a seeded sample)."""
    client = docker.APIClient(base_url=engine.url, version="auto", timeout=60)
    try:
        summaries = client.containers()
        chosen = random.Random(seed).sample(summaries, min(count, len(summaries)))
        names = []
        for summary in chosen:
            inspect = client.inspect_container(summary["Id"])
            names.append(f"{inspect['Name'].lstrip('/')}.{image_name(inspect['Config']['Image'])}.docker")
        return names
    finally:
        client.close()


def run(session: Session) -> None:
    small, large = session.require_fake_engines()
    names = {engine.socket_path.stem: local_names(engine, SCALE_NAMES) for engine in (small, large)}
    files = {label: session.write(f"{label}.queries", (f"{chosen[i % len(chosen)]} A" for i in range(SCALE_NAMES)))
             for label, chosen in names.items()}
    rss_synced: list[float] = []
    rss_after: list[float] = []

    def measure(engine: FakeEngineProcess, round_index: int) -> dict[str, Any]:
        dnscock = session.start_dnscock(f"scale-{engine.containers}", engine.url)
        try:
            if round_index == 0:
                wanted = names[engine.socket_path.stem]
                bad = [name for name in wanted if not addresses(ask(dnscock.port, name))]
                if bad:
                    raise BenchError(f"dnscock does not answer {len(bad)} of the {len(wanted)} names of the "
                                     f"engine with {engine.containers} containers, e.g. {bad[:3]}")
            if engine is large:
                rss_synced.append(dnscock.rss_mib())
            figures = session.dnsperf(dnscock.port, files[engine.socket_path.stem], dnscock.pid,
                                      what=f"scale: {engine.containers} containers round {round_index + 1}")
            figures["sync_s"] = dnscock.synced_s
            if engine is large:
                rss_after.append(dnscock.rss_mib())
            return figures
        finally:
            dnscock.stop()

    small_name = f"dnscock with {SMALL_ENGINE} containers"
    runs = compare.alternate(session.options.rounds, [("dnscock", lambda r: measure(large, r)),
                                                      (small_name, lambda r: measure(small, r))])
    result = compare.compared(session, "scale", runs, "dnscock", [small_name])
    session.results["scale"] = {**result, "containers": session.options.scale_containers,
                                "small_containers": SMALL_ENGINE, "rss_after_sync_mib": max(rss_synced),
                                "rss_after_queries_mib": max(rss_after)}
