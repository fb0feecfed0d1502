"""A private Podman for the tests: Debian's podman 4.3 serving the Docker Engine API on a socket of its own.

Everything is the test's own and goes afterwards: storage (``--root``),
run directory (``--runroot``), a ``containers.conf`` and a network config
directory in a temp directory, a default network on a subnet of its own,
the service process (``podman system service``, stopped by PID), the
iptables chains netavark adds (NETAVARK_*, when it added them) and the
``ip_forward`` setting it turns on.

This machine has cgroup v1 and no systemd: ``runc`` with the cgroupfs
manager and the file events logger work (``crun`` refuses), pods need
``catatonit`` as the init, and the hard limits on open files and processes
must not be asked for (``default_ulimits``). Images come from the busybox
root file system the Docker tests import (no registry is reachable).

With ``rootless``, a user of the test's own (``/etc/subuid`` and
``/etc/subgid`` ranges, a runtime directory, access to ``/dev/net/tun`` by
an ACL) runs the service and the containers; slirp4netns gives them their
network. The user, its ranges, home and ACL are removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.private_engine import EngineUnavailable, busybox_rootfs_tar

PACKAGES = ("podman", "uidmap", "slirp4netns", "catatonit", "runc", "netavark", "aardvark-dns", "conmon", "acl")
BUSYBOX = "localhost/local/busybox:latest"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
START_TIMEOUT = 30.0
SUBID_START, SUBID_COUNT = 420_000_000, 65_536  # far from any range useradd hands out


def podman_available() -> str | None:
    """Why a private Podman cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in ("podman", "runc", "catatonit", "slirp4netns", "newuidmap", "setfacl")
               if shutil.which(tool) is None and not Path(f"/usr/libexec/podman/{tool}").exists()
               and not Path(f"/usr/bin/{tool}").exists()]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install {' '.join(PACKAGES)})"
    return None


def _netavark_rules() -> list[tuple[str, list[str]]]:
    """(table, rule words) of every iptables rule and chain netavark made."""
    found = []
    for table in ("filter", "nat", "mangle"):
        result = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            if "NETAVARK" in line:
                found.append((table, shlex.split(line)))
    return found


def remove_netavark_rules() -> None:
    """Deletes the rules that jump to or live in NETAVARK_* chains, then the chains."""
    rules = _netavark_rules()
    for table, words in rules:
        if words[0] == "-A":
            subprocess.run(["iptables", "-t", table, "-D", *words[1:]], capture_output=True)
    for table, words in rules:
        if words[0] == "-N":
            subprocess.run(["iptables", "-t", table, "-F", words[1]], capture_output=True)
            subprocess.run(["iptables", "-t", table, "-X", words[1]], capture_output=True)


class PrivatePodman:
    """``podman system service`` on ``<root>/podman.sock``, rootful or as a user of its own."""

    def __init__(self, root: Path, subnet_octet: int, rootless: bool = False, idle_exit: float = 0.0) -> None:
        self.root = Path(root)
        self.subnet = f"10.216.{subnet_octet}.0/24"
        self.rootless = rootless
        self.idle_exit = idle_exit  # seconds of no use after which the service exits (0: never)
        self.user = f"dcpod{os.getpid() % 100000}" if rootless else ""
        self.socket = self.root / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.service: subprocess.Popen | None = None
        self._forward_before = IP_FORWARD.read_text().strip() if IP_FORWARD.exists() else ""
        self._netavark_before = bool(_netavark_rules())
        self._acl_set = False

    # -- setting up --

    def start(self) -> None:
        problem = podman_available()
        if problem:
            raise EngineUnavailable(problem)
        (self.root / "net").mkdir(parents=True, exist_ok=True)
        if self.rootless:
            self._make_user()
        (self.root / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.root / "events.log"}"\n'
            'init_path = "/usr/bin/catatonit"\n'
            "[network]\n"
            'network_backend = "netavark"\n'
            f'network_config_dir = "{self.root / "net"}"\n'
            f'default_subnet = "{self.subnet}"\n')
        if self.rootless:
            shutil.chown(self.root, self.user, self.user)
            for path in self.root.rglob("*"):
                shutil.chown(path, self.user, self.user)
        tar = self.root / "busybox.tar"
        tar.write_bytes(busybox_rootfs_tar())
        if self.rootless:
            shutil.chown(tar, self.user, self.user)
        self.podman("import", str(tar), BUSYBOX.removeprefix("localhost/"))
        self.start_service()

    def _make_user(self) -> None:
        subprocess.run(["useradd", "--create-home", "--home-dir", str(self.root / "home"), "--shell", "/bin/sh",
                        self.user], check=True, capture_output=True)
        uid = pwd.getpwnam(self.user).pw_uid
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as ranges:
                ranges.write(f"{self.user}:{SUBID_START}:{SUBID_COUNT}\n")
        self.runtime_dir = Path(f"/run/user/{uid}")
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.runtime_dir, self.user, self.user)
        self.runtime_dir.chmod(0o700)
        subprocess.run(["setfacl", "-m", f"u:{self.user}:rw", "/dev/net/tun"], check=True, capture_output=True)
        self._acl_set = True

    def _environment(self) -> dict[str, str]:
        environ = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": str(self.root / "containers.conf"),
                   "HOME": str(self.root / "home") if self.rootless else os.environ.get("HOME", "/root")}
        if self.rootless:
            environ["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
            environ["USER"] = self.user
        return environ

    def _command(self, *args: str) -> list[str]:
        command = ["podman", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"), *args]
        return ["runuser", "-u", self.user, "--", *command] if self.rootless else command

    def podman(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        """Runs ``podman ARGS`` against this private storage (as its user); its output."""
        result = subprocess.run(self._command(*args), env=self._environment(), capture_output=True, text=True,
                                timeout=timeout, cwd=self.root)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout.strip()

    def start_service(self) -> None:
        """Starts ``podman system service`` on the socket; returns once it answers."""
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log = open(self.root / "service.log", "ab")
        self.service = subprocess.Popen(
            self._command("system", "service", f"--time={self.idle_exit:g}", self.url),
            env=self._environment(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.service.poll() is not None:
                raise EngineUnavailable(f"podman system service exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"podman system service did not answer within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)

    def _answers(self) -> bool:
        result = subprocess.run(["curl", "-sf", "--max-time", "2", "--unix-socket", str(self.socket),
                                 "http://podman/_ping"], capture_output=True)
        return result.returncode == 0

    def stop_service(self) -> None:
        """Stops the service (SIGTERM to its session, then SIGKILL): the socket goes; containers keep running."""
        if self.service is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.service.pid, signal.SIGTERM)
        try:
            self.service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.service.pid, signal.SIGKILL)
            self.service.wait(timeout=10)
        self.service = None

    def log_tail(self, characters: int = 800) -> str:
        path = self.root / "service.log"
        return path.read_text(errors="replace")[-characters:] if path.exists() else ""

    # -- containers --

    def run(self, name: str, *options: str, command: tuple[str, ...] = ("sleep", "3600")) -> str:
        """Starts a container of busybox that sleeps; its id."""
        return self.podman("run", "-d", "--name", name, *options, BUSYBOX, *command)

    def inspect(self, name: str, template: str) -> str:
        return self.podman("inspect", name, "--format", template)

    def address(self, name: str) -> str:
        return self.inspect(name, "{{.NetworkSettings.IPAddress}}")

    # -- tearing down --

    def stop(self) -> None:
        """Removes every container, pod, network and image, stops the service, and undoes the machine's changes."""
        with contextlib.suppress(Exception):
            self.podman("pod", "rm", "-f", "-a", check=False, timeout=60)
            self.podman("rm", "-f", "-a", check=False, timeout=60)
        self.stop_service()
        with contextlib.suppress(Exception):
            self.podman("system", "reset", "-f", check=False, timeout=60)
        if not self._netavark_before:
            remove_netavark_rules()
        if self._forward_before and IP_FORWARD.read_text().strip() != self._forward_before:
            IP_FORWARD.write_text(self._forward_before)
        if self.rootless:
            self._remove_user()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_user(self) -> None:
        if self._acl_set:
            subprocess.run(["setfacl", "-x", f"u:{self.user}", "/dev/net/tun"], capture_output=True)
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            lines = Path(path).read_text().splitlines(keepends=True)
            Path(path).write_text("".join(line for line in lines if not line.startswith(f"{self.user}:")))
        subprocess.run(["userdel", self.user], capture_output=True)
        shutil.rmtree(getattr(self, "runtime_dir", Path("/nonexistent")), ignore_errors=True)


def make_root(prefix: str = "dcp-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
