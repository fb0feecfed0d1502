"""The ``startup`` case: from launching dnscock to its first full sync, and its RSS then.

For ``--sync-containers`` real containers on the private engine and for the
large fake engine: to the "connected to the Docker engine" line (default log
level) and, with ``-verbose=false`` (which logs no such line), to the first
answer to ``docker. SOA``; ``--rounds`` launches of each.
"""

from __future__ import annotations

import concurrent.futures
import logging
import statistics
from typing import Any

from bench.contenders import Dnscock
from bench.session import Session

log = logging.getLogger(__name__)


def run(session: Session) -> None:
    engine = session.require_engine()
    result: dict[str, Any] = {}
    session.results["startup"] = result
    running = len(engine.client.containers.list())
    missing = max(0, session.options.sync_containers - running)
    log.info("startup: starting %s more containers (%s running)", missing, running)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: engine.run("web:latest", name=f"sync{i}"), range(missing)))
    result["real"] = startups(session, engine.url, len(engine.client.containers.list()))
    _, large = session.require_fake_engines()
    result["fake"] = startups(session, large.url, large.containers)


def startups(session: Session, url: str, containers: int) -> dict[str, Any]:
    """``--rounds`` launches each with the default log level (timed to the log line) and -verbose=false."""
    upstream = session.require_upstream()
    figures: dict[str, Any] = {"containers": containers}
    for verbose, key in ((True, "log_line_s"), (False, "quiet_s")):
        samples, rss = [], []
        for _ in range(session.options.rounds):
            dnscock = Dnscock(session.processes, f"startup-{containers}", url, upstream.port, verbose=verbose)
            try:
                seconds, how = dnscock.wait_synced()
                samples.append(seconds)
                rss.append(dnscock.rss_mib())
                log.info("startup: %s containers, %s: synced %.2fs after launch (%s), VmRSS %.1f MiB", containers,
                         "default log" if verbose else "-verbose=false", seconds, how, rss[-1])
            finally:
                dnscock.stop()
        figures[key] = statistics.fmean(samples)
        figures[key + "_samples"] = samples
        figures["rss_after_sync_mib" + ("" if verbose else "_quiet")] = max(rss)
    return figures
