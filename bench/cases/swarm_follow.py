"""How fast dnscock follows a real swarm's tasks: the bench's own view of the manager's tasks (``ManagerTasks``),
and the timing of dnscock catching up with each change (``SwarmFollower``, ``follow_scaling``).

A service is scaled from 0 up one task at a time, some of node 2's tasks
are SIGKILLed (replaced at once), then it is scaled down one at a time.
Start: from the manager first listing a task running to dnscock answering
its address for ``<slot>.<service>.docker``; leave: from the task leaving
the manager's running set to dnscock no longer answering its address.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from bench.dnsclient import Poller
from bench.dnsperf import percentile
from bench.errors import BenchError
from bench.processes import LOAD_CPU, threads_on

log = logging.getLogger(__name__)

SWARM_SERVICE = "benchweb"  # the service scaled on the private swarm, on the attachable overlay SWARM_NETWORK
SWARM_NETWORK = "benchnet"
SWARM_DEADLINE = 10.0  # seconds after a task starts running / leaves the running set within which dnscock must follow
MANAGER_POLL = 0.02  # seconds between two of the bench's own task listings on the manager
SWARM_QUERY_INTERVAL = 0.01  # seconds between two queries of a task's name


class ManagerTasks:
    """One service's tasks on a swarm manager, listed every MANAGER_POLL seconds in a thread.

    For each task: when the bench first got a listing with it (any state),
    first got one with it running, and, after that, first got one without it
    among the running ones (``GET /tasks`` of desired state running, and
    Status.State running: the set dnscock follows). Times are when the
    listing came back (a listing takes a few ms: the bench learns of a
    change at most ~MANAGER_POLL plus that after the manager shows it).
    """

    def __init__(self, url: str, service: str) -> None:
        self.client = docker.APIClient(base_url=url, version="auto", timeout=10)
        self.service = service
        self.tasks: dict[str, dict] = {}  # task ID -> its latest document
        self.seen: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.left: dict[str, float] = {}
        self.polls = 0
        self.failures = 0
        self.failure = ""
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="manager-tasks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        filters = {"service": self.service, "desired-state": "running"}
        while not self._stopping:
            try:
                listing = self.client.tasks(filters=filters)
            except Exception as error:
                with self._changed:
                    self.failures += 1
                    self.failure = f"{type(error).__name__}: {error}"
                time.sleep(MANAGER_POLL)
                continue
            now = time.monotonic()
            with self._changed:
                self.polls += 1
                running_now = set()
                for task in listing:
                    task_id = str(task.get("ID"))
                    self.tasks[task_id] = task
                    self.seen.setdefault(task_id, now)
                    if (task.get("Status") or {}).get("State") == "running":
                        running_now.add(task_id)
                        self.running.setdefault(task_id, now)
                for task_id in self.running:
                    if task_id not in running_now:
                        self.left.setdefault(task_id, now)
                self._changed.notify_all()
            time.sleep(MANAGER_POLL)

    def wait(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        """``probe()``'s first truthy result, checked after every listing (under the lock)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = probe()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    failure = f" (last listing error: {self.failure})" if self.failure else ""
                    raise BenchError(f"swarm: waited {timeout:.0f}s for {what}{failure}")
                self._changed.wait(min(remaining, 0.5))

    def snapshot(self) -> tuple[set[str], set[str]]:
        """(every task ID listed so far, the ones running now)."""
        with self._changed:
            return set(self.seen), {task_id for task_id in self.running if task_id not in self.left}

    def close(self) -> None:
        self._stopping = True
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.client.close()


def task_address(task: dict, network: str) -> str | None:
    """A task's address on ``network`` (without the prefix length), None while it has none."""
    for attachment in task.get("NetworksAttachments") or ():
        if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") == network:
            for address in attachment.get("Addresses") or ():
                return str(address).split("/", 1)[0]
    return None


class SwarmFollower:
    """Times dnscock (on ``port``) following SWARM_SERVICE's tasks on the private swarm."""

    def __init__(self, swarm: Any, tasks: ManagerTasks, port: int) -> None:
        self.swarm, self.tasks, self.port = swarm, tasks, port

    def node(self, task: dict) -> int:
        try:
            return self.swarm.task_node(task).number
        except KeyError:
            return 0

    @staticmethod
    def _name(task: dict) -> str:
        return f"{task['Slot']}.{SWARM_SERVICE}.docker"

    def start(self, listed: set[str], cause: str, what: str) -> dict[str, Any]:
        """The first task not in ``listed``: from the manager listing it running to dnscock answering its address."""
        tasks = self.tasks
        task_id = tasks.wait(lambda: next((t for t in tasks.seen if t not in listed
                                           and task_address(tasks.tasks[t], SWARM_NETWORK)), None),
                             60, f"a new task of {SWARM_SERVICE} with an address ({what})")
        task = tasks.tasks[task_id]
        name, address = self._name(task), task_address(task, SWARM_NETWORK)
        poller = Poller(self.port, name, want_answer=True, address=address, interval=SWARM_QUERY_INTERVAL)
        running_at = tasks.wait(lambda: tasks.running.get(task_id), 60, f"task {task_id} to run ({what})")
        answered = poller.finish(running_at + SWARM_DEADLINE)
        if answered is None:
            raise BenchError(f"{name} ({address}) not answered within {SWARM_DEADLINE:.0f}s of the manager listing "
                             f"its task running ({what})")
        sample = self._sample(tasks.tasks[task_id], cause, (answered - running_at) * 1000, poller)
        log.info("swarm: %s: %s (%s, node %s): running -> answer %.0f ms", cause, name, address, sample["node"],
                 sample["ms"])
        return sample

    def watch_leave(self, task: dict) -> Poller:
        """Starts asking for ``task``'s name until dnscock no longer answers its address."""
        return Poller(self.port, self._name(task), want_answer=False, address=task_address(task, SWARM_NETWORK),
                      interval=SWARM_QUERY_INTERVAL)

    def leave(self, task: dict, poller: Poller, cause: str) -> dict[str, Any]:
        """From the task leaving the manager's running set to dnscock no longer answering its address."""
        tasks = self.tasks
        task_id = str(task["ID"])
        left_at = tasks.wait(lambda: tasks.left.get(task_id), 60, f"task {task_id} to leave the running set")
        gone = poller.finish(left_at + SWARM_DEADLINE)
        name, address = self._name(task), task_address(task, SWARM_NETWORK)
        if gone is None:
            raise BenchError(f"{name} still answered {address} {SWARM_DEADLINE:.0f}s after its task left the "
                             f"manager's running set ({cause})")
        sample = self._sample(task, cause, (gone - left_at) * 1000, poller)
        log.info("swarm: %s: %s (%s, node %s): out of the running set -> no answer (%s) %.0f ms", cause, name,
                 address, sample["node"], poller.rcode, sample["ms"])
        return sample

    def _sample(self, task: dict, cause: str, ms: float, poller: Poller) -> dict[str, Any]:
        return {"cause": cause, "slot": task.get("Slot"), "task": task.get("ID"), "node": self.node(task), "ms": ms,
                "rcode": poller.rcode, "queries": poller.queries}


def follow_scaling(swarm: Any, port: int, count: int, warn: Callable[[str], None]) -> dict[str, Any]:
    """Scale up to ``count`` one task at a time, kill some of node 2's tasks, scale down one at a time.

    Scaling is a service update, an event dnscock polls after; a task
    killed on node 2 (replaced at once: restart delay 0) makes no event
    on the manager, so only dnscock's regular task listing sees it go,
    and its replacement start.
    """
    service = swarm.create_service(SWARM_SERVICE, replicas=0, networks=[SWARM_NETWORK], restart_delay=0, wait=False)
    kills = max(1, count // 2)
    # Each kill at its own moment of dnscock's poll interval (else all come right after a poll, the worst
    # case): the pauses before them spread evenly over a second, in a seeded random order.
    phase = random.Random(11)
    pauses = [(index + phase.random()) / kills for index in range(kills)]
    phase.shuffle(pauses)
    starts: list[dict[str, Any]] = []
    leaves: list[dict[str, Any]] = []
    tasks = ManagerTasks(swarm.url, SWARM_SERVICE)
    follow = SwarmFollower(swarm, tasks, port)
    try:
        with threads_on(LOAD_CPU):
            for replicas in range(1, count + 1):
                listed, _ = tasks.snapshot()
                swarm.scale(service, replicas, wait=False)
                starts.append(follow.start(listed, "scale-up", f"scaled to {replicas}"))
            for pause in pauses:
                listed, running = tasks.snapshot()
                on_node2 = sorted((tasks.tasks[task_id] for task_id in running
                                   if follow.node(tasks.tasks[task_id]) == 2), key=lambda task: task["Slot"])
                if not on_node2:
                    warn("swarm: no task of the service ran on node 2 to kill")
                    break
                victim = on_node2[0]
                time.sleep(pause)
                leave = follow.watch_leave(victim)
                swarm.kill_task(victim)
                leaves.append(follow.leave(victim, leave, "killed"))
                starts.append(follow.start(listed, "replacement", f"replacing {victim['ID']}"))
            for replicas in range(count - 1, -1, -1):
                _, running = tasks.snapshot()
                swarm.scale(service, replicas, wait=False)
                task_id = tasks.wait(
                    lambda running=running: next((t for t in running if t in tasks.left), None), 60,
                    f"a task of {SWARM_SERVICE} to leave the running set (scaled to {replicas})")
                victim = tasks.tasks[task_id]
                leaves.append(follow.leave(victim, follow.watch_leave(victim), "scale-down"))
    finally:
        tasks.close()
    return {
        "events": count,
        "kills": sum(1 for sample in leaves if sample["cause"] == "killed"),
        "manager_polls": tasks.polls,
        "manager_poll_failures": tasks.failures,
        "start_ms": summary(starts),
        "leave_ms": {**summary(leaves),
                     "rcodes": dict(sorted(collections.Counter(sample["rcode"] for sample in leaves).items())),
                     "gone_at_first_query": sum(1 for sample in leaves if sample["queries"] == 1)},
    }


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """p50, p99 and max of the samples' ms, overall and by cause and by node."""
    def figures(values: list[float]) -> dict[str, Any]:
        return {"count": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                "max": max(values) if values else math.nan}

    return {
        **figures([sample["ms"] for sample in samples]),
        "by_cause": {cause: figures([sample["ms"] for sample in samples if sample["cause"] == cause])
                     for cause in dict.fromkeys(sample["cause"] for sample in samples)},
        "by_node": {f"node{node}": figures([sample["ms"] for sample in samples if sample["node"] == node])
                    for node in sorted({sample["node"] for sample in samples})},
        "samples": samples,
    }
