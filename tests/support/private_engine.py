"""A private Docker engine for tests, the demo and the benchmark.

Debian's ``dockerd`` runs on its own socket, data root, exec root and
bridge, with iptables, masquerading and forwarding left alone, so it never
fights another engine on the machine. Images are made locally from
Debian's ``busybox-static``, since no registry is reachable.

    engine = PrivateEngine(Path("/tmp/x"))
    engine.start()
    engine.client.containers.run("local/busybox", ["sleep", "3600"], detach=True, init=True)
    engine.stop()

``python -m tests.support.private_engine start|stop DIR`` does the same from a shell.

``PrivateEngine(root, tls=make_certs(...))`` also listens on a free port of
127.0.0.1 with ``--tlsverify`` (``engine.tls_url``, the same port across
restarts); the tests' own client keeps using the unix socket.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import docker

from tests.support.ports import free_port
from tests.support.processes import stop_process
from tests.support.tls_certs import CertSet

BUSYBOX_IMAGE = "local/busybox:latest"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
# Applets the containers use; busybox picks its applet from argv[0].
APPLETS = ("sh", "sleep", "cat", "ls", "hostname", "true", "httpd", "nslookup")


class EngineUnavailable(RuntimeError):
    """No private engine can be started on this machine (the reason says why)."""


def _busybox_binary() -> str:
    for path in BUSYBOX_PATHS:
        if os.path.exists(path):
            return path
    raise EngineUnavailable("busybox-static is not installed (apt-get install busybox-static)")


def busybox_rootfs_tar() -> bytes:
    """A tar of a root file system holding a static busybox and its applet links."""
    busybox = _busybox_binary()
    output = subprocess.run(["file", "-L", busybox], capture_output=True, text=True).stdout
    if output and "statically linked" not in output and "static-pie" not in output:
        raise EngineUnavailable(f"{busybox} is not statically linked (apt-get install busybox-static)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buffer.getvalue()


class PrivateEngine:
    def __init__(self, root: Path, name: str | None = None, tls: CertSet | None = None) -> None:
        self.root = Path(root)
        self.tls = tls
        self.tls_port: int | None = None  # chosen at the first start, kept across restarts
        # Interface names are at most 15 characters.
        self.name = name or f"dck{zlib.crc32(str(self.root).encode()) % 10**8:08d}"
        self.socket_path = self.root / "docker.sock"
        self.url = f"unix://{self.socket_path}"
        self.subnet_octet = 100 + zlib.crc32(self.name.encode()) % 150
        self.ipv6_prefix = f"fd00:dc0c:{self.subnet_octet:x}::/64"
        self.process: subprocess.Popen | None = None
        self._client: docker.DockerClient | None = None
        self.answering_since: float | None = None  # time.time() of the first ping answered since the last start

    # -- life cycle --

    def _prepare(self) -> str:
        """The dockerd to run, once its data and exec roots exist; EngineUnavailable when none can run here."""
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise EngineUnavailable("dockerd is not installed (apt-get install docker.io)")
        if os.geteuid() != 0:
            raise EngineUnavailable("a private dockerd needs root")
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return dockerd

    def start(self, timeout: float = 60.0) -> None:
        dockerd = self._prepare()
        self._create_bridge()
        log = open(self.root / "dockerd.log", "ab")
        self.process = subprocess.Popen(
            [
                dockerd,
                "--host", self.url,
                *self._tls_arguments(),
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "dockerd.pid"),
                "--bridge", self.bridge,
                "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--ip6tables=false",
                "--storage-driver", "vfs",
                # IPv6 on the default bridge, from a unique-local prefix of its own.
                "--ipv6", "--fixed-cidr-v6", self.ipv6_prefix,
                "--shutdown-timeout", "2",
                "--log-level", "warn",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                self.client.ping()
                self.answering_since = time.time()
                break
            except Exception as error:
                if time.monotonic() > deadline:
                    self.stop()
                    raise EngineUnavailable(
                        f"dockerd did not answer within {timeout:.0f}s: {self._log_tail()}") from error
                time.sleep(0.05)
        self.ensure_image(BUSYBOX_IMAGE)

    @property
    def tls_url(self) -> str:
        """``tcp://127.0.0.1:PORT``, where the engine speaks TLS and wants a client certificate."""
        if self.tls_port is None:
            raise RuntimeError("this engine was made without tls= or has not started")
        return f"tcp://127.0.0.1:{self.tls_port}"

    def _tls_arguments(self) -> list[str]:
        if self.tls is None:
            return []
        if self.tls_port is None:
            self.tls_port = free_port()
        return [
            "--host", f"tcp://127.0.0.1:{self.tls_port}",
            "--tlsverify",
            "--tlscacert", str(self.tls.ca),
            "--tlscert", str(self.tls.server_cert),
            "--tlskey", str(self.tls.server_key),
        ]

    def stop(self) -> None:
        """Removes every container, stops dockerd, and waits for its containerd to exit."""
        if self.process is not None and self.process.poll() is None:
            try:
                for container in self.client.containers.list(all=True):
                    container.remove(force=True)
            except Exception:
                pass
            stop_process(self.process, timeout=20)
        self.wait_for_containerd()
        self._kill_leftover_shims()
        if self._client is not None:
            self._client.close()
            self._client = None
        self.process = None
        self._delete_bridge()
        self._unmount_leftovers()

    def _kill_leftover_shims(self) -> None:
        """A SIGKILLed dockerd leaves its containers running under their containerd shims: end them (ours:
        their command line names our exec root), the containers' processes first."""
        marker = str(self.root / "exec")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "containerd-shim" not in command or marker not in command:
                continue
            shim = int(entry.name)
            children = subprocess.run(["pgrep", "-P", str(shim)], capture_output=True, text=True).stdout.split()
            for pid in [*map(int, children), shim]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its netns (and, when killed, its data root) mounted under the root."""
        try:
            with open("/proc/mounts") as mounts:
                points = [line.split()[1] for line in mounts]
        except OSError:
            return
        prefix = str(self.root) + "/"
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)

    def kill(self) -> None:
        """SIGKILLs dockerd, as a crash would (containerd and the containers live on a moment)."""
        self._end(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERMs dockerd, as a service restart would: it stops its containers and exits."""
        self._end(signal.SIGTERM)

    def _end(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(timeout=30)
        self.process = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def wait_for_containerd(self, timeout: float = 20.0) -> None:
        """Restarting dockerd while its old containerd lives on can hang: wait for it to go."""
        pid_file = self.root / "exec" / "containerd" / "containerd.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        # Where nothing reaps orphans, the dead containerd stays a zombie that kill(pid, 0)
        # still finds; dockerd would then wait for it on its old socket. Forget it.
        pid_file.unlink(missing_ok=True)

    # -- use --

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, version="auto", timeout=60)
        return self._client

    def ensure_image(self, reference: str) -> None:
        """Imports the busybox image once, then tags it as ``reference`` (unless it exists)."""
        try:
            self.client.images.get(reference)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.get(BUSYBOX_IMAGE)
        except docker.errors.ImageNotFound:
            repository, tag = BUSYBOX_IMAGE.rsplit(":", 1)
            self.client.api.import_image_from_data(busybox_rootfs_tar(), repository=repository, tag=tag)
        if reference != BUSYBOX_IMAGE:
            if ":" in reference.rsplit("/", 1)[-1]:
                repository, tag = reference.rsplit(":", 1)
            else:
                repository, tag = reference, "latest"
            self.client.images.get(BUSYBOX_IMAGE).tag(repository, tag)

    def build_image(self, reference: str, changes: list[str]) -> None:
        """An image of busybox with Dockerfile instructions applied (``EXPOSE 80/tcp``, ``LABEL a=b``)."""
        repository, _, tag = reference.partition(":")
        self.client.api.import_image_from_data(
            busybox_rootfs_tar(), repository=repository, tag=tag or "latest", changes=changes,
        )

    def run(self, image: str = BUSYBOX_IMAGE, name: str | None = None, **kwargs):
        """Starts a container that sleeps (with an init, so SIGTERM stops it at once)."""
        self.ensure_image(image)
        kwargs.setdefault("init", True)
        return self.client.containers.run(image, ["sleep", "3600"], name=name, detach=True, **kwargs)

    # -- the bridge --

    @property
    def bridge(self) -> str:
        return self.name

    def _create_bridge(self) -> None:
        self._delete_bridge()
        commands = [
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"10.213.{self.subnet_octet}.1/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ]
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise EngineUnavailable(f"cannot create bridge {self.bridge}: {result.stderr.strip()}")

    def _delete_bridge(self) -> None:
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)

    def _log_tail(self) -> str:
        try:
            lines = (self.root / "dockerd.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:])


def container_ip(container, network: str | None = None) -> str:
    """A running container's IPv4 address on ``network`` (default: its first network that gave it one)."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    if network is not None:
        return networks[network]["IPAddress"]
    return next(settings["IPAddress"] for settings in networks.values() if settings["IPAddress"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.support.private_engine start|stop DIR", file=sys.stderr)
        return 2
    engine = PrivateEngine(Path(argv[1]).resolve())
    if argv[0] == "start":
        engine.start()
        print(engine.url)
        return 0
    pid_file = engine.root / "dockerd.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        while _alive(pid):
            time.sleep(0.05)
    engine.wait_for_containerd()
    engine._delete_bridge()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
