"""The ``swarm`` case: dnscock (default ``-swarm-poll=1``) following swarm tasks.

CPU first, while no swarm runs on the machine: dnscock's utime+stime over
``--swarm-seconds``, no queries, following a fake manager
(``python -m tests.support.fake_engine --swarm-tasks N --swarm-services M``)
with ``--swarm-tasks`` tasks and with 10 (the difference is what the tasks
cost), its task listings and table changes meanwhile (``/metrics``), a few
names checked first. Then the latency, on a private two-node swarm
(tests/support/swarm.py; ``swarm_follow``). The figures of either part stay
in the results when the other fails. Whatever the private swarm leaves
behind is an error of the case.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.cases.swarm_follow import SWARM_NETWORK, follow_scaling
from bench.contenders import Dnscock
from bench.dnsclient import addresses, ask_whole
from bench.errors import BenchError, describe
from bench.processes import cpu_seconds
from bench.session import Session
from tests.support.dnscock_process import rcode
from tests.support.fake_engine import PUBLISHING_EVERY, FakeSwarm
from tests.support.ports import free_port

log = logging.getLogger(__name__)

SWARM_BASELINE_TASKS = 10  # the fake manager the CPU of --swarm-tasks is compared with
SWARM_CPU_SETTLE = 1.0  # seconds between dnscock's first swarm listing and the CPU window
SWARM_STOP_ATTEMPTS = 3
SWARM_POLL = 1.0  # dnscock's default -swarm-poll, which it runs with

_SWARM_READING = re.compile(r"swarm \S+: reading services and tasks from \S+ \(manager mode\), (\d+) tasks")
_METRIC_LINE = re.compile(r"^(dnscock_swarm_(?:polls|changes))_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def run(session: Session) -> None:
    """dnscock's CPU with a fake manager's tasks, then how fast it follows a real swarm's."""
    result: dict[str, Any] = {"swarm_poll_s": SWARM_POLL}
    session.results["swarm"] = result
    failures = []
    for what, part in (("CPU", lambda: result.update(cpu=cpu(session))),
                       ("latency", lambda: latency(session, result))):
        try:
            part()
        except Exception as error:  # the other part still runs
            failures.append(f"{what}: {describe(error)}")
            log.error("ERROR swarm: %s", failures[-1], exc_info=not isinstance(error, BenchError))
    if failures:
        raise BenchError("; ".join(failures))


def cpu(session: Session) -> dict[str, Any]:
    """dnscock's CPU share following a fake manager (no queries), with SWARM_BASELINE_TASKS and --swarm-tasks."""
    options = session.options
    runs = {tasks: cpu_run(session, tasks, options.swarm_services)
            for tasks in dict.fromkeys((SWARM_BASELINE_TASKS, options.swarm_tasks))}
    large, small = runs[options.swarm_tasks], runs[SWARM_BASELINE_TASKS]
    return {"tasks": options.swarm_tasks, "services": options.swarm_services, "seconds": options.swarm_seconds,
            "cpu_pct": large["cpu_pct"], "baseline_tasks": SWARM_BASELINE_TASKS,
            "baseline_cpu_pct": small["cpu_pct"], "tasks_cpu_pct": large["cpu_pct"] - small["cpu_pct"],
            "runs": {str(tasks): figures for tasks, figures in runs.items()}}


def cpu_run(session: Session, tasks: int, services: int) -> dict[str, Any]:
    fake = session.fake_engine(f"fake-swarm-{tasks}", 0, "--swarm-tasks", str(tasks), "--swarm-services",
                               str(services))
    http_port = free_port()
    dnscock = Dnscock(session.processes, f"swarm-cpu-{tasks}", fake.url, session.require_upstream().port,
                      verbose=True, extra=[f"-http=127.0.0.1:{http_port}"])
    try:
        dnscock.wait_synced()
        _, match = dnscock.wait_line(_SWARM_READING)
        read_at = time.monotonic()
        if int(match.group(1)) != tasks:
            raise BenchError(f"dnscock read {match.group(1)} tasks from the fake manager, not {tasks}")
        checked = check_fake_swarm_answers(dnscock.port, FakeSwarm(tasks, services))
        time.sleep(max(0.0, read_at + SWARM_CPU_SETTLE - time.monotonic()))
        counters_before = swarm_counters(http_port)
        cpu_before, fake_before, wall_before = cpu_seconds(dnscock.pid), cpu_seconds(fake.pid), time.monotonic()
        time.sleep(session.options.swarm_seconds)
        cpu_after, fake_after, wall_after = cpu_seconds(dnscock.pid), cpu_seconds(fake.pid), time.monotonic()
        counters_after = swarm_counters(http_port)
        wall = wall_after - wall_before
        figures = {
            "tasks": tasks, "services": services, "seconds": wall,
            "cpu_pct": 100 * (cpu_after - cpu_before) / wall,
            "fake_manager_cpu_pct": 100 * (fake_after - fake_before) / wall,
            "polls": counters_after["polls"] - counters_before["polls"],
            "changes": counters_after["changes"] - counters_before["changes"],
            "rss_mib": dnscock.rss_mib(),
            "names_checked": checked,
        }
        log.info("swarm: dnscock following a fake manager with %s tasks in %s services: %.2f%% of one core over "
                 "%.1fs, %.0f task listings (%.0f changed the table), VmRSS %.1f MiB; the fake manager %.2f%%",
                 tasks, services, figures["cpu_pct"], wall, figures["polls"], figures["changes"], figures["rss_mib"],
                 figures["fake_manager_cpu_pct"])
        if figures["changes"]:
            session.warn(f"swarm: dnscock changed its table {figures['changes']:.0f} time(s) while the fake "
                         f"manager's {tasks} tasks stayed the same")
        return figures
    finally:
        dnscock.stop()
        session.processes.stop(fake.process)


def check_fake_swarm_answers(port: int, layout: FakeSwarm) -> list[str]:
    """A few tasks' ``<slot>.<service>`` names, a service's tasks and VIP answer as the fake manager lists them."""
    count = layout.task_count
    picks = sorted({0, count // 2, count - 1, min(PUBLISHING_EVERY - 1, count - 1)})
    checked, wrong = [], []
    for index in picks:
        task = layout.task(index)
        service = layout.service_name(task.service)
        expected = {f"{task.slot}.{service}.docker": [task.address],
                    f"vip.{service}.docker": [layout.vip(task.service)]}
        if index == 0:
            expected[f"{service}.docker"] = sorted(t.address for t in layout.tasks_of(task.service))
        for name, wanted in expected.items():
            reply = ask_whole(port, name)
            got = addresses(reply)
            checked.append(name)
            if sorted(got) != sorted(wanted):
                wrong.append(f"{name}: {rcode(reply)} {got[:5]}, expected {wanted[:5]}")
    if wrong:
        raise BenchError("dnscock answers the fake manager's tasks wrongly:\n  " + "\n  ".join(wrong))
    return checked


def swarm_counters(http_port: int) -> dict[str, float]:
    """dnscock's ``dnscock_swarm_polls`` and ``dnscock_swarm_changes`` counters (the sum over its swarms)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    counters = {"polls": 0.0, "changes": 0.0}
    for name, value in _METRIC_LINE.findall(text):
        counters[name.removeprefix("dnscock_swarm_")] += float(value)
    return counters


def latency(session: Session, result: dict[str, Any]) -> None:
    """A service on a real two-node swarm scaled 0 -> --swarm-events one task at a time, then back to 0."""
    from tests.support.private_engine import EngineUnavailable
    from tests.support.swarm import PrivateSwarm

    upstream = session.require_upstream()
    root = Path(tempfile.mkdtemp(prefix="dcb-swarm-", dir="/tmp"))  # short: the engines' sockets live under it
    log.info("swarm: starting a private two-node swarm")
    started = time.monotonic()
    swarm = PrivateSwarm(root)
    session.swarm = swarm
    try:
        swarm.start()
    except EngineUnavailable as error:
        stop_swarm(session)  # whatever it made before giving up; an error if anything is left
        raise BenchError(f"no private two-node swarm can be made here, so no latency figures: {error}") from None
    try:
        up = time.monotonic() - started
        swarm.create_network(SWARM_NETWORK)
        log.info("swarm: up in %.1fs (manager %s at %s, worker %s in netns %s)", up, swarm.node1.hostname, swarm.url,
                 swarm.node2.hostname, swarm.node2.netns)
        dnscock = Dnscock(session.processes, "swarm", swarm.url, upstream.port, verbose=True)
        try:
            dnscock.wait_synced()
            dnscock.wait_line(_SWARM_READING)
            figures = follow_scaling(swarm, dnscock.port, session.options.swarm_events, session.warn)
        finally:
            dnscock.stop()
        figures["swarm_up_s"] = up
        result["latency"] = figures
    finally:
        stop_swarm(session)


def stop_swarm(session: Session) -> None:
    """Stops the private swarm, if one runs; what it leaves behind is an error of the swarm case."""
    swarm, session.swarm = session.swarm, None
    if swarm is None:
        return
    log.info("swarm: stopping the private swarm")
    started = time.monotonic()
    left: list[str] = []
    for attempt in range(1, SWARM_STOP_ATTEMPTS + 1):
        try:
            swarm.stop()
            left = swarm.leftovers()
            break
        except Exception as error:
            # PrivateSwarm.stop() force-removes every container and gives up at the first error other
            # than NotFound, before stopping anything: a 409 "removal of container ... is already in
            # progress" when the swarm is removing a shut-down task's container itself. Again, later.
            left = [f"stopping it failed {attempt} time(s): {type(error).__name__}: {error}"]
            log.warning("swarm: stopping the private swarm failed (%s: %s); %s", type(error).__name__, error,
                        "trying again" if attempt < SWARM_STOP_ATTEMPTS else "giving up")
            time.sleep(2)
    if left:
        message = f"the private swarm left behind: {left}"
        log.error("ERROR %s", message)
        session.errors.setdefault("swarm", message)
    else:
        log.info("swarm: stopped in %.1fs, nothing left behind", time.monotonic() - started)
