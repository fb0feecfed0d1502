#!/usr/bin/env python3
"""dnscock in one command: ``make demo`` (as root).

Starts the tests' private Docker engine (its own socket, data root and
bridge; images made from busybox, since no registry is reachable), three
small containers (``redis1`` and ``redis2`` of image ``redis``, ``web`` of
image ``nginx`` with ``DNSDOCK_ALIAS``), a stand-in upstream nameserver on
loopback (every forwarded A query answers 192.0.2.53: nothing outside is
reachable), and dnscock on a free port of 127.0.0.1. It prints the ``dig``
commands to try, each with its live answer, then shows dnscock's log until
Ctrl-C (SIGINT) or SIGTERM, which remove the containers and stop dnscock,
the upstream and the engine.

    .venv/bin/python scripts/demo.py [--once] [--port N]

``--once`` stops after printing the answers (for CI).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.base_image import mounts_under  # noqa: E402
from tests.support.dnscock_process import DnscockProcess  # noqa: E402
from tests.support.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.private_engine import EngineUnavailable, PrivateEngine  # noqa: E402

ALIAS = "web.example.test"


class Stop(Exception):
    """SIGINT or SIGTERM: clean up and leave."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def say(text: str = "") -> None:
    print(text, flush=True)


def dig(port: int, *args: str) -> tuple[str, str]:
    """The command to show, and its short answer now."""
    command = ["dig", "@127.0.0.1", "-p", str(port), "+short", *args]
    shown = " ".join(f"'{arg}'" if "*" in arg else arg for arg in command)
    if shutil.which("dig") is None:
        return shown, "(dig is not installed: apt-get install dnsutils)"
    result = subprocess.run([*command, "+time=2", "+tries=1"], capture_output=True, text=True, timeout=10)
    answer = (result.stdout + result.stderr).strip()
    return shown, answer or "(no records)"


def start_engine(engine: PrivateEngine) -> None:
    say(f"starting a private Docker engine in {engine.root} ...")
    try:
        engine.start()
    except EngineUnavailable as error:
        raise SystemExit(f"demo: no private Docker engine: {error} (run `make demo` as root)") from error
    say(f"engine: pid {engine.process.pid}, {engine.url}")


def remove_engine_root(root: Path) -> None:
    for point in mounts_under(root):  # what dockerd may leave mounted under its exec root
        subprocess.run(["umount", "-l", point], capture_output=True)
    if not mounts_under(root):
        shutil.rmtree(root, ignore_errors=True)


def run_containers(engine: PrivateEngine):
    say("starting containers redis1, redis2 (image redis) and web (image nginx, DNSDOCK_ALIAS) ...")
    return [
        engine.run("redis:latest", name="redis1"),
        engine.run("redis:latest", name="redis2"),
        engine.run("nginx:latest", name="web", environment={"DNSDOCK_ALIAS": ALIAS}),
    ]


def stop_children(timeout: float = 10.0) -> None:
    """SIGTERMs, then reaps, any child of ours still running: one started just as a signal came."""
    mine = str(os.getpid())
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] != mine:
            continue
        pid = int(entry.name)
        if fields[0] != "Z":
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)


def address(container) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def show_answers(dnscock: DnscockProcess, containers) -> None:
    redis1, redis2, web = containers
    port = dnscock.port
    # The engine's events come asynchronously: wait until every container answers.
    expected = sorted(address(c) for c in containers)
    dnscock.wait_for_answer("*.docker", lambda reply: sorted(
        rr.address for rrset in reply.answer for rr in rrset) == expected, timeout=20)
    say()
    say("Try these (live answers below each):")
    say()
    queries = [
        ("both redis containers", ["redis.docker"]),
        ("one container: <name>.<image>.<domain>", ["redis1.redis.docker"]),
        ("every container", ["*.docker"]),
        ("an alias from DNSDOCK_ALIAS", [ALIAS]),
        ("the container behind an address", ["-x", address(redis1)]),
        ("its id and image", ["TXT", "redis2.redis.docker"]),
        ("anything else is forwarded (here to the stand-in upstream)", ["example.org"]),
    ]
    for what, args in queries:
        command, answer = dig(port, *args)
        say(f"# {what}")
        say(f"$ {command}")
        for line in answer.splitlines():
            say(f"  {line}")
    say()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after printing the answers")
    parser.add_argument("--port", type=int, default=0, help="dnscock's port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        say("demo: the private Docker engine needs root (sudo make demo)")
        return 1

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    upstream = dnscock = None
    # A short path: the engine's unix sockets live under it (108-byte limit).
    engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="dnscock-demo-", dir="/tmp")))
    try:
        start_engine(engine)
        containers = run_containers(engine)
        upstream = FakeUpstream("answer")
        dnscock = DnscockProcess(f"-dns=127.0.0.1:{args.port}", f"-docker={engine.url}",
                                 f"-nameserver={upstream.address}")
        dnscock.wait_for_log("connected to the Docker engine", timeout=20)
        say(f"dnscock: pid {dnscock.process.pid}, listening on 127.0.0.1:{dnscock.port}, "
            f"forwarding to the stand-in upstream at {upstream.address}")
        show_answers(dnscock, containers)
        if args.once:
            return 0
        say("dnscock's log follows. Ctrl-C (or SIGTERM) stops everything.")
        shown = 0
        while dnscock.process.poll() is None:
            lines = dnscock.lines[shown:]
            shown += len(lines)
            for line in lines:
                say(f"dnscock | {line}")
            time.sleep(0.2)
        time.sleep(1)  # after a Ctrl-C, which dnscock got too, our own Stop comes now
        say(f"dnscock exited with code {dnscock.process.returncode}")
        return 1
    except Stop as stop:
        say(f"\n{stop}: cleaning up ...")
        return 0
    finally:
        # A second Ctrl-C must not leave the engine running half-stopped.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        if dnscock is not None:
            dnscock.stop()
            say("dnscock stopped")
        if upstream is not None:
            upstream.close()
        engine.stop()  # removes every container first
        remove_engine_root(engine.root)
        stop_children()
        say("containers removed, engine stopped")


if __name__ == "__main__":
    sys.exit(main())
