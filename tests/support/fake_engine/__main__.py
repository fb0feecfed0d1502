"""The fake engine from a shell: ``python -m tests.support.fake_engine --socket PATH [options]``, from the repository
root.

    python -m tests.support.fake_engine --socket /tmp/docker.sock --containers 10000 [--images 50] [--ready-file PATH]
    python -m tests.support.fake_engine --socket /tmp/docker.sock --containers 0 --swarm-tasks 1000 --swarm-services 50

It serves until SIGINT or SIGTERM, then stops (ending every event stream)
and removes the socket and the ready file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.support.fake_engine.engine import FakeEngine


def _write_ready_file(path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.replace(path)  # atomic: a poller never sees it half written


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fake Docker Engine API (20.10, API 1.41) on a unix socket.")
    parser.add_argument("--socket", required=True, type=Path, help="unix socket path (a stale one is replaced)")
    parser.add_argument("--containers", type=int, default=10_000, help="running containers (default 10000)")
    parser.add_argument("--images", type=int, default=50, help="distinct image names (default 50)")
    parser.add_argument("--ready-file", type=Path, help="written (with the PID) once listening; else 'ready' on stdout")
    parser.add_argument("--swarm-tasks", type=int, default=0,
                        help="be a swarm manager with this many running tasks (default 0: no swarm)")
    parser.add_argument("--swarm-services", type=int, default=0,
                        help="replicated services the tasks are spread over (default: 50, or fewer tasks)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.swarm_tasks < 0 or args.swarm_services < 0:
        parser.error("--swarm-tasks and --swarm-services cannot be negative")
    if args.swarm_tasks and not args.swarm_services:
        args.swarm_services = min(50, args.swarm_tasks)
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ready_file is not None:
        args.ready_file.unlink(missing_ok=True)
    engine = FakeEngine(args.socket, containers=args.containers, images=args.images, swarm_tasks=args.swarm_tasks,
                        swarm_services=args.swarm_services)
    # Blocked before any thread starts, so the threads inherit the mask and sigwait() gets them.
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    engine.start()
    try:
        if args.ready_file is not None:
            _write_ready_file(args.ready_file)
        else:
            print("ready", flush=True)
        signal.sigwait(signals)
    finally:
        engine.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
