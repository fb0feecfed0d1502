"""One run of the bench: its options, temp dir and children; the servers several cases share (the private
Docker engine, the upstream dnsmasq, dnscock on that engine, the fake engines, the private swarm); and the
figures, errors and warnings so far.

A case that cannot run records its error (``guarded``) and the others go on.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import dnsperf
from bench.contenders import Dnscock, Dnsmasq
from bench.errors import BenchError, describe
from bench.processes import LOAD_CPU, SERVER_CPU, Processes, pinned
from tests.support.fake_engine import FakeEngineProcess

log = logging.getLogger(__name__)

T = TypeVar("T")

FWD_ZONE = "fwd.test"  # every name under it the upstream answers with FWD_ADDRESS, itself
FWD_ADDRESS = "192.0.2.1"
FWD_TTL = 3600  # so that dnscock's forward cache keeps the answers for the whole run
SMALL_ENGINE = 10  # containers of the small fake engine (the large one has --scale-containers)
ENGINE_IMAGES = ("redis:latest", "web:latest")


@dataclass
class Options:
    seconds: int
    rounds: int
    containers: int
    proxy_names: int
    scale_containers: int
    sync_containers: int
    events: int
    swarm_events: int
    swarm_tasks: int
    swarm_services: int
    swarm_seconds: int
    cases: list[str]
    json_path: Path
    smoke: bool


class Session:
    """What the cases of one run share; ``cleanup()`` stops every server it started."""

    def __init__(self, options: Options, tmp: Path, processes: Processes) -> None:
        self.options = options
        self.tmp = tmp
        self.processes = processes
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.warnings: list[str] = []
        self.engine: Any = None  # tests.support.private_engine.PrivateEngine, once started
        self.upstream: Dnsmasq | None = None
        self.main: Dnscock | None = None
        self.fake_small: FakeEngineProcess | None = None
        self.fake_large: FakeEngineProcess | None = None
        self.swarm: Any = None  # tests.support.swarm.PrivateSwarm, while the swarm case runs

    # -- running cases --

    def selected(self, *cases: str) -> bool:
        return any(case in self.options.cases for case in cases)

    def guarded(self, cases: Iterable[str], what: str, action: Callable[[], T]) -> T | None:
        """``action()``'s result, when any of ``cases`` is selected and has no error yet; on failure, None, and the
        error becomes each one's."""
        cases = [case for case in cases if case in self.options.cases and case not in self.errors]
        if not cases:
            return None
        try:
            return action()
        except Exception as error:  # not KeyboardInterrupt: an interrupted run ends
            message = f"{what}: {describe(error)}"
            log.error("ERROR %s", message, exc_info=not isinstance(error, BenchError))
            for case in cases:
                self.errors.setdefault(case, message)
            return None

    def warn(self, message: str) -> None:
        """A doubt about a figure: in the report and the JSON."""
        self.warnings.append(message)
        log.warning("warning: %s", message)

    def write(self, name: str, lines: Iterable[str]) -> Path:
        """A file of ``lines`` in the temp dir, readable by all (dnsmasq reads its hosts file after dropping root)."""
        path = self.tmp / name
        with open(path, "w") as file:
            for line in lines:
                file.write(line)
                file.write("\n")
        path.chmod(0o644)
        return path

    def dnsperf(self, port: int, query_file: Path, server_pid: int, what: str, seconds: int | None = None,
                upstream_pid: int | None = None) -> dict[str, Any]:
        """One dnsperf run of ``--seconds`` (or ``seconds``); what in it is doubtful becomes a warning."""
        figures = dnsperf.measure(self.processes, port, query_file, server_pid, seconds or self.options.seconds,
                                  what, upstream_pid)
        for complaint in dnsperf.complaints(figures, what):
            self.warn(complaint)
        return figures

    # -- the shared servers --

    def start_engine(self) -> None:
        from tests.support.private_engine import PrivateEngine

        log.info("starting a private Docker engine")
        engine = PrivateEngine(self.tmp / "e")
        self.engine = engine  # stopped in cleanup even when start fails half-way
        engine.start()
        for image in ENGINE_IMAGES:
            engine.ensure_image(image)

    def stop_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is None:
            return
        log.info("stopping the private engine")
        try:
            containers = engine.client.containers.list(all=True)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda container: container.remove(force=True), containers))
        except Exception as error:
            log.warning("cleanup: removing containers: %s", error)
        try:
            engine.stop()
        except Exception as error:
            log.warning("cleanup: stopping the private engine at %s: %s", engine.root, error)

    def start_upstream(self) -> None:
        """The upstream dnsmasq on LOAD_CPU: every name under FWD_ZONE is FWD_ADDRESS; no cache."""
        self.upstream = Dnsmasq(self.processes, self.tmp, "upstream", LOAD_CPU,
                                [f"--address=/{FWD_ZONE}/{FWD_ADDRESS}", "--cache-size=0", f"--local-ttl={FWD_TTL}"],
                                probe=f"probe.{FWD_ZONE}")
        log.info("upstream dnsmasq on 127.0.0.1:%s (PID %s, CPU %s)", self.upstream.port, self.upstream.pid, LOAD_CPU)

    def start_dnscock(self, label: str, docker_url: str, extra: Iterable[str] = ()) -> Dnscock:
        """dnscock (default log level off) on SERVER_CPU, forwarding to the upstream, synced with ``docker_url``."""
        dnscock = Dnscock(self.processes, label, docker_url, self.require_upstream().port, extra=list(extra))
        seconds, how = dnscock.wait_synced()
        log.info("dnscock %s (PID %s, CPU %s) on 127.0.0.1:%s, synced in %.2fs (%s)", label, dnscock.pid, SERVER_CPU,
                 dnscock.port, seconds, how)
        return dnscock

    def start_main(self) -> None:
        """The dnscock of the local, forward and events cases, on the private engine."""
        self.main = self.start_dnscock("main", self.require_engine().url)

    def stop_main(self) -> None:
        main, self.main = self.main, None
        if main is not None:
            main.stop()

    def fake_engine(self, label: str, containers: int, *options: str) -> FakeEngineProcess:
        """A fake engine process on LOAD_CPU (``python -m tests.support.fake_engine``)."""
        try:
            return FakeEngineProcess(self.tmp / f"{label}.sock", containers, *options, prefix=pinned(LOAD_CPU, []),
                                     popen=self.processes.spawn)
        except RuntimeError as error:
            raise BenchError(f"fake engine ({label}): {error}") from None

    def start_fake_engines(self) -> None:
        log.info("starting fake engines with %s and %s containers", SMALL_ENGINE, self.options.scale_containers)
        self.fake_small = self.fake_engine("fake-small", SMALL_ENGINE)
        self.fake_large = self.fake_engine("fake-large", self.options.scale_containers)

    def require_engine(self) -> Any:
        if self.engine is None:
            raise BenchError("no private engine")
        return self.engine

    def require_upstream(self) -> Dnsmasq:
        if self.upstream is None:
            raise BenchError("no upstream dnsmasq")
        return self.upstream

    def require_main(self) -> Dnscock:
        if self.main is None:
            raise BenchError("dnscock is not running")
        return self.main

    def require_fake_engines(self) -> tuple[FakeEngineProcess, FakeEngineProcess]:
        """(the small one, the large one)."""
        if self.fake_small is None or self.fake_large is None:
            raise BenchError("no fake engines")
        return self.fake_small, self.fake_large
