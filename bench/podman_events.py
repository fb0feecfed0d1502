"""How soon dnscock follows a Podman engine: ``python -m bench.podman_events [--rounds N]`` (as root).

A private rootful Podman (``tests/support/private_podman.py``) serves the
Docker API; dnscock follows it. For each round a container is run and
stopped, and three times are taken from the event's own timestamp
(``timeNano``, written by Podman when the container started or died):

- **delivery**: until a plain subscriber of ``/events`` (this program) reads it;
- **start**: until dnscock answers the container's name;
- **stop**: until dnscock no longer gives it an address.

Podman writes events to a file (journald is not there without systemd) and
serves each subscriber by tailing that file, so delivery alone takes about
a tenth of a second; what dnscock adds is the difference. The Docker engine
pushes its events at once: the ``events`` case of ``bench.run`` measures
dnscock from the bench receiving the event, which there is the same moment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.dnsclient import Poller, wait_for_reply
from bench.dnsperf import percentile
from tests.support.ports import free_port
from tests.support.private_podman import PrivatePodman, make_root, podman_available

REPO = Path(__file__).resolve().parent.parent
SUBNET_OCTET = 214  # the private Podman's default network: 10.216.214.0/24 (the tests use 217 and 218)
DEADLINE = 5.0


class EventTimes:
    """Reads ``/events`` with curl: (container name, action) -> (the event's own time, when it was read), epoch s."""

    def __init__(self, socket_path: Path) -> None:
        self.seen: dict[tuple[str, str], tuple[float, float]] = {}
        self._process = subprocess.Popen(["curl", "-sN", "--unix-socket", str(socket_path), "http://d/v1.41/events"],
                                         stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            read = time.time()
            event = json.loads(line)
            name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name", "")
            self.seen.setdefault((name, str(event.get("Action"))), (int(event.get("timeNano") or 0) / 1e9, read))

    def wait(self, name: str, action: str) -> tuple[float, float]:
        deadline = time.monotonic() + DEADLINE
        while (name, action) not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {action} event for {name} within {DEADLINE:.0f}s")
            time.sleep(0.001)
        return self.seen[(name, action)]

    def close(self) -> None:
        self._process.terminate()
        self._process.wait()


def _wall(monotonic: float) -> float:
    """A ``time.monotonic()`` moment on the epoch clock the events are stamped with."""
    return monotonic + (time.time() - time.monotonic())


def _timed(events: EventTimes, port: int, name: str, action: str, act: Callable[[str], object]) -> tuple[float, float]:
    """``act(name)`` makes ``action`` (start or die) happen to container ``name``: (ms from the event's own time to a
    plain subscriber reading it, ms from it to dnscock answering the name, or no longer answering it)."""
    poller = Poller(port, f"{name}.busybox.docker", want_answer=action == "start")
    act(name)
    stamped, read = events.wait(name, action)
    changed = poller.finish(time.monotonic() + DEADLINE)
    if changed is None:
        raise RuntimeError(f"{name}.busybox.docker did not follow its {action} event within {DEADLINE:.0f}s")
    return (read - stamped) * 1000, (_wall(changed) - stamped) * 1000


def measure(rounds: int) -> dict[str, dict[str, float]]:
    podman = PrivatePodman(make_root("dcp-bench-"), SUBNET_OCTET)
    dnscock = None
    events = None
    delivery: list[float] = []
    starts: list[float] = []
    stops: list[float] = []
    try:
        podman.start()
        port = free_port()
        dnscock = subprocess.Popen([sys.executable, "-m", "dnscock", f"-dns=127.0.0.1:{port}", f"-docker={podman.url}",
                                    "-nameserver=127.0.0.1:9", "-grace=0", "-verbose=false"], cwd=REPO)
        wait_for_reply(port, "dnscock.docker", 30, dnscock, "dnscock")
        events = EventTimes(podman.socket)
        for index in range(rounds):
            name = f"lat{index}"
            read_ms, start_ms = _timed(events, port, name, "start", podman.run)
            delivery.append(read_ms)
            starts.append(start_ms)
            read_ms, stop_ms = _timed(events, port, name, "die", lambda stopped: podman.podman("stop", "-t", "0", stopped))
            delivery.append(read_ms)
            stops.append(stop_ms)
            podman.podman("rm", "-f", name)
    finally:
        if events is not None:
            events.close()
        if dnscock is not None:
            dnscock.terminate()
            dnscock.wait()
        podman.stop()
    return {what: {"p50": percentile(samples, 0.5), "max": max(samples)}
            for what, samples in (("delivery_ms", delivery), ("start_ms", starts), ("stop_ms", stops))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.podman_events", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    why = podman_available()
    if why:
        print(f"bench.podman_events: no private Podman here: {why}", file=sys.stderr)
        return 2
    figures = measure(args.rounds)
    labels = {"delivery_ms": "event -> a plain subscriber reads it", "start_ms": "start event -> dnscock answers",
              "stop_ms": "die event -> dnscock no longer answers"}
    for key, label in labels.items():
        print(f"{label:40} p50 {figures[key]['p50']:6.1f} ms   max {figures[key]['max']:6.1f} ms")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
