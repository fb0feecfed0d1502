"""A real systemd-resolved (Debian's), private to a test: its own pid, mount and network namespace, its own system bus.

    with PrivateResolved() as resolved:
        server = resolved.start_nameserver()                  # a FakeUpstream inside the namespace
        resolved.resolvectl("dns", "docker0", server.address)  # as dnscock will do it over D-Bus
        resolved.resolvectl("domain", "docker0", "~test.lan")
        assert resolved.resolvectl("query", "web.test.lan").returncode == 0
        assert resolved.link_domains() == [("test.lan", True)]
        dnscock = resolved.popen([sys.executable, "-m", "dnscock", ...], stdout=subprocess.PIPE)
        resolved.restart_resolved(wipe_state=True)            # its per-link settings gone

``start()`` runs ``unshare --mount --net --pid --fork --mount-proc --propagation private``
on a small bash script (``INIT_SCRIPT``), PID 1 of the new pid namespace (``pid``: its PID
here), which

* mounts a tmpfs on ``/run`` and a fresh sysfs on ``/sys`` (this namespace's links), and binds
  files of its own over ``/etc/passwd`` and ``/etc/group`` (the machine's, plus a
  ``systemd-resolve`` user: resolved drops to it), ``/etc/resolv.conf`` (``nameserver
  127.0.0.53``), ``/etc/nsswitch.conf`` (``hosts: files resolve [!UNAVAIL=return] dns``)
  and ``/etc/hosts`` (localhost only), all inside the namespace: the machine's files,
  its ``/run/systemd`` and its system bus (if any) are never touched;
* brings ``lo`` up and makes **the link**: a veth pair ``docker0`` (``LINK_ADDRESS``,
  172.17.0.1/16, as Docker's bridge has) and ``docker0-peer`` (no address), both up, so
  that ``docker0`` has carrier; both ends live in the private network namespace, so no
  packet of it can leave (names and addresses are parameters);
* starts ``dbus-daemon`` as the namespace's system bus (``/run/dbus/system_bus_socket``:
  Debian's default policy, no user switch, no fork, no pidfile, plus resolved's policy),
  then ``systemd-resolved`` with ``SYSTEMD_LOG_TARGET=console``, and says ``started PID``;
* then reads commands on its stdin (``restart``, ``restart-wipe``) until SIGTERM, or until
  its stdin closes (the test process died): as PID 1, its exit kills every process of the
  namespace, and the namespaces go with them.

``start()`` returns once resolved owns ``org.freedesktop.resolve1`` (the owner's PID is
checked, so a restart waits for the new one) and listens on 127.0.0.53:53 (the stub).
Settings go in ``/run/systemd/resolved.conf.d/`` (``resolved_conf()``): no global DNS
servers, no fallback servers (names without a link to route them go nowhere), no LLMNR or
mDNS, no cache (``cache=True`` for one), ``DNSSEC=allow-downgrade`` (upstream's default;
``dnssec=`` to change it), so that a link set to ``DNSSEC=no`` differs from the default.

Everything else runs in the namespace by ``nsenter -t PID -m -n -p`` (``command``,
``popen``, ``run``, ``resolvectl``, ``getent``, ``dig``), in ``ROOT`` (the checkout) unless
``cwd`` is given, with ``LD_LIBRARY_PATH`` set so that glibc finds the extracted
``libnss_resolve.so.2`` (getaddrinfo through nss-resolve; without it ``resolve`` is
UNAVAIL and ``dns`` asks the 127.0.0.53 stub). ``popen`` returns a ``NamespacePopen``:
nsenter's process, whose ``send_signal``/``terminate``/``kill`` reach the command it runs
(nsenter itself forwards no signal), so ``stop_process`` works on it. ``/tmp`` and the
checkout are the machine's (a private Docker engine's socket under /tmp works inside);
``/run`` is not.

The test process talks to the namespace's bus directly, through ``/proc/PID/root``
(``bus_address``), with jeepney: ``call``, ``link_property``, ``link_domains``,
``link_servers``, ``link_settings``, ``link_state`` (resolved's own file for the link,
which only holds what was set on it).

``stop()`` sends SIGTERM to PID 1 and waits: nothing of it is left (``leftovers()`` says
what would be: processes in its namespaces, mounts or links of it in the machine's).

What resolved 252 does here (tests/integration/test_resolved_fixture.py shows it):

* Per-link settings (servers, domains, DNSSEC, default route) survive a restart of
  resolved (saved in ``/run/systemd/resolve/netif/IFINDEX``), are lost when that state is
  wiped, when the link is re-created (``recreate_link()``) or on ``RevertLink``, and
  outlive the program that set them.
* A link's servers are only asked while the link is UP with carrier (``IFF_LOWER_UP``)
  and resolved saw a routable address on it (an IPv6 link-local one is not enough):
  otherwise "No appropriate name servers or networks for name found". A bridge with no
  port attached (Docker's docker0 with no running container) has no carrier.
* A loopback server registered on a link (127.0.0.1:5300) is asked over ``lo``, from
  127.0.0.1, at the port given (``SetLinkDNSEx``); the Manager's ``DNSEx`` lists it under
  ifindex 1, the Link object's ``DNSEx`` under the link.
* Only root may change link settings (no polkit here).

The binaries are Debian's ``systemd-resolved`` and ``libnss-resolve`` of the machine's
systemd version (resolved links systemd's private libsystemd-shared), extracted by
``scripts/install-system-deps`` under ``/var/cache/dnscock-tests/resolved``
(``$DNSCOCK_TEST_CACHE``), never installed: installing them replaces the machine's
/etc/resolv.conf. As root, a missing or outdated extraction makes ``start()`` run that
script once. ``dbus-daemon`` is the machine's (package dbus-daemon, which starts nothing).
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self

import pytest
from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

from tests.support.processes import LogLines, stop_process

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)  # the tests' python (the venv's), for python -m dnscock inside
INSTALL_SCRIPT = ROOT / "scripts" / "install-system-deps"
CACHE_DIR = Path(os.environ.get("DNSCOCK_TEST_CACHE", "/var/cache/dnscock-tests"))
RESOLVED_DIR = CACHE_DIR / "resolved"
RESOLVED_BINARY = RESOLVED_DIR / "lib" / "systemd" / "systemd-resolved"
RESOLVECTL = RESOLVED_DIR / "usr" / "bin" / "resolvectl"
RESOLVE1_POLICY = RESOLVED_DIR / "usr" / "share" / "dbus-1" / "system.d" / "org.freedesktop.resolve1.conf"

LINK = "docker0"
PEER = "docker0-peer"
LINK_ADDRESS = "172.17.0.1/16"  # on LINK; the peer has none unless peer_address is given
STUB = "127.0.0.53"
BUS_SOCKET = "/run/dbus/system_bus_socket"  # inside the namespace

RESOLVE1 = "org.freedesktop.resolve1"
MANAGER_PATH = "/org/freedesktop/resolve1"
MANAGER = "org.freedesktop.resolve1.Manager"
LINK_INTERFACE = "org.freedesktop.resolve1.Link"
DBUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")

NSSWITCH_HOSTS = "hosts:          files resolve [!UNAVAIL=return] dns"
_STARTED = re.compile(r"^started (\d+)$")
_RUN_TMPFS = "dnscock-tests-run"  # the source name of the namespace's /run: never in the machine's mounts


class ResolvedUnavailable(RuntimeError):
    """A private resolved cannot be had on this machine (not root, no namespaces, no binaries); the reason says why."""


class ResolvedFailed(RuntimeError):
    """It could be had but did not start, or stopped: a real failure."""


class LinkServer(NamedTuple):
    """One of a link's DNS servers, as the ``DNSEx`` property has it (port 0: the default, 53)."""

    address: str
    port: int
    name: str  # the server name, for DNS over TLS; "" without


# -- the binaries --


def systemd_version() -> str | None:
    """The machine's systemd package version (``252.38-1~deb12u1``), None without the package."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "systemd"],
                                capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    status, _, version = result.stdout.rpartition(" ")
    return version if result.returncode == 0 and status == "install ok installed" else None


def nss_library_dir() -> Path | None:
    """The directory of the extracted ``libnss_resolve.so.2`` (``usr/lib/<multiarch>``)."""
    found = sorted(glob.glob(str(RESOLVED_DIR / "usr" / "lib" / "*" / "libnss_resolve.so.2")))
    return Path(found[0]).parent if found else None


def _extraction_problem() -> str | None:
    """None when the extracted resolved runs, matches the machine's systemd and has nss-resolve and resolvectl."""
    version = systemd_version()
    if version is None:
        return "the systemd package is not installed (resolved needs its libsystemd-shared)"
    try:
        result = subprocess.run([RESOLVED_BINARY, "--version"], capture_output=True, text=True, timeout=10,
                                check=False)
    except OSError as error:
        return f"{RESOLVED_BINARY}: {error}"
    if result.returncode != 0:
        return f"{RESOLVED_BINARY} --version failed: {result.stderr.strip()[-200:]}"
    if f"({version})" not in result.stdout:
        return f"{RESOLVED_BINARY} is not of the machine's systemd {version}: {result.stdout.splitlines()[:1]}"
    if not RESOLVECTL.exists() or not RESOLVE1_POLICY.exists() or nss_library_dir() is None:
        return f"{RESOLVED_DIR} lacks resolvectl, resolve1's bus policy or libnss_resolve.so.2"
    return None


_binaries_checked = False  # once per test session


def ensure_binaries() -> None:
    """Makes sure the extracted resolved is there; as root, runs scripts/install-system-deps once when not.

    ResolvedUnavailable when it cannot be had, or when what the namespace needs is missing.
    """
    if os.geteuid() != 0:
        raise ResolvedUnavailable("a private systemd-resolved needs root (namespaces, mounts, resolved's own "
                                  "privilege drop)")
    global _binaries_checked
    if _binaries_checked:
        return
    for tool in ("unshare", "nsenter", "ip", "mount", "dbus-daemon", "bash"):
        if shutil.which(tool) is None:
            raise ResolvedUnavailable(f"{tool} is missing: run scripts/install-system-deps as root (make test does)")
    problem = _extraction_problem()
    if problem is None:
        _binaries_checked = True
        return
    result = subprocess.run([INSTALL_SCRIPT], capture_output=True, text=True, timeout=900, check=False)
    problem = _extraction_problem()
    if problem is not None:
        raise ResolvedUnavailable(f"{INSTALL_SCRIPT.name} did not provide systemd-resolved under {RESOLVED_DIR} "
                                  f"(exit {result.returncode}: {result.stderr.strip()[-300:]}): {problem}")
    _binaries_checked = True


@contextlib.contextmanager
def skipped_when_unavailable() -> Any:
    """Turns ResolvedUnavailable into a skip of the test, or, in CI (``CI`` set), a failure."""
    try:
        yield
    except ResolvedUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"in CI: no private systemd-resolved: {error}")
        pytest.skip(f"no private systemd-resolved here: {error}")


def start_or_skip(resolved: PrivateResolved) -> PrivateResolved:
    """Starts ``resolved`` for a test; skips the test when it cannot be had here (fails it in CI)."""
    with skipped_when_unavailable():
        resolved.start()
    return resolved


# -- the namespace's PID 1 --

# The link, from LINK, PEER, LINK_ADDRESS and PEER_ADDRESS (may be empty): made at the start
# and again by recreate_link().
LINK_SETUP = r"""
ip link add "$LINK" type veth peer name "$PEER" || exit 1
ip address add "$LINK_ADDRESS" dev "$LINK" || exit 1
if [ -n "${PEER_ADDRESS:-}" ]; then ip address add "$PEER_ADDRESS" dev "$PEER" || exit 1; fi
ip link set "$PEER" up && ip link set "$LINK" up || exit 1
"""

INIT_SCRIPT = r"""
# PID 1 of a private pid, mount and network namespace (tests/support/resolved.py).
# Without a handler, PID 1 ignores SIGTERM; its exit kills the whole namespace.
trap 'exit 0' TERM INT HUP
dir=$DCK_DIR
mount -t tmpfs -o mode=0755,size=16m,nosuid,nodev dnscock-tests-run /run || exit 1
mount -t sysfs sysfs /sys || exit 1
for file in passwd group resolv.conf nsswitch.conf hosts; do
    mount --bind "$dir/etc/$file" "/etc/$file" || exit 1
done
ip link set lo up || exit 1
""" + LINK_SETUP + r"""
mkdir -p /run/dbus /run/systemd/resolved.conf.d || exit 1
cp "$dir/resolved.conf" /run/systemd/resolved.conf.d/50-dnscock-tests.conf || exit 1
dbus-daemon --config-file="$dir/system-bus.conf" --nofork --nopidfile >>"$dir/dbus.log" 2>&1 &
for _ in $(seq 500); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.01; done
[ -S /run/dbus/system_bus_socket ] || { echo "dbus-daemon did not start" >&2; exit 1; }
start_resolved() {
    SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL="$DCK_LOG_LEVEL" "$DCK_RESOLVED" >>"$dir/resolved.log" 2>&1 &
    resolved=$!
    echo "started $resolved"
}
start_resolved
while read -r command; do
    case $command in
        restart|restart-wipe)
            kill -TERM "$resolved" 2>/dev/null
            wait "$resolved"
            if [ "$command" = restart-wipe ]; then rm -rf /run/systemd/resolve; fi
            start_resolved;;
        *) echo "unknown command $command";;
    esac
done
"""

# Debian's system bus policy (/usr/share/dbus-1/system.conf), without its user, fork, pidfile,
# syslog, service activation and include directories: only resolve1's policy is included.
SYSTEM_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{resolve1_policy}</include>
</busconfig>
"""


def _free_system_id() -> int:
    """A uid, free as a gid too, below 1000, for the namespace's ``systemd-resolve`` user."""
    taken = set()
    for path in ("/etc/passwd", "/etc/group"):
        for line in Path(path).read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                taken.add(int(fields[2]))
    return next(number for number in range(999, 100, -1) if number not in taken)


def _without_user(text: str, name: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(f"{name}:"))


class NamespacePopen(subprocess.Popen):
    """nsenter running a command in the namespace: signals sent to it go to that command.

    nsenter forks (to enter the pid namespace) and waits for its child without forwarding
    signals; ``send_signal`` (and so ``terminate``, ``kill``, ``stop_process``) signals the
    child instead. The exit code is the command's (a negative signal number when killed).
    """

    def inner_pid(self, timeout: float = 5.0) -> int | None:
        """The command's PID here (nsenter's child), once it is forked; None when nsenter has ended."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            if self.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.002)

    def namespace_pid(self) -> int | None:
        """The command's PID inside the namespace (as dbus-daemon and resolved see it)."""
        inner = self.inner_pid()
        if inner is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{inner}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        return None

    def send_signal(self, sig: int) -> None:
        self.poll()
        if self.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.inner_pid() or self.pid, sig)


class NamespaceNameserver:
    """A FakeUpstream (tests/support/fake_upstream.py) running inside the namespace, its queries on stdout.

    ``address`` is ``127.0.0.1:PORT`` inside the namespace; ``queries()`` the ``(name, type)``
    received so far; ``wait_for_query(name)`` waits for one.
    """

    _QUERY = re.compile(r"^query (\S+) (\S+) (udp|tcp)$")

    def __init__(self, resolved: PrivateResolved, port: int = 0, answer_ip: str = "192.0.2.53",
                 ptr: str = "ptr.test.lan.", start_timeout: float = 15.0) -> None:
        self.process = resolved.popen(
            [PYTHON, "-m", "tests.support.namespace_nameserver", "--port", str(port), "--answer-ip", answer_ip,
             "--ptr", ptr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        self._log = LogLines(self.process.stdout)
        self.address = self._log.wait_for(r"^listening (\S+)$", start_timeout).group(1)
        self.port = int(self.address.rsplit(":", 1)[1])

    def queries(self) -> list[tuple[str, str]]:
        return [(match.group(1), match.group(2)) for match in map(self._QUERY.match, self._log.copy()) if match]

    def wait_for_query(self, name: str, rdtype: str | None = None, timeout: float = 10.0) -> None:
        fqdn = re.escape(name.rstrip(".") + ".")
        kind = re.escape(rdtype) if rdtype else r"\S+"
        self._log.wait_for(rf"^query {fqdn} {kind} ", timeout)

    def stop(self) -> int:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # it ends when its stdin closes
        return stop_process(self.process, timeout=5)


class PrivateResolved:
    """See the module's doc. ``directory`` holds its files and logs (a temporary one, removed at ``stop()``,
    when None; ``DNSCOCK_KEEP_RESOLVED_LOGS`` keeps it); ``link``, ``peer``, ``link_address`` and
    ``peer_address`` make the veth pair; ``dnssec``, ``cache`` and ``config`` (more lines of the
    ``[Resolve]`` section) go in resolved.conf; ``log_level`` is resolved's (``debug`` shows every query)."""

    def __init__(self, directory: Path | str | None = None, *, link: str = LINK, peer: str = PEER,
                 link_address: str = LINK_ADDRESS, peer_address: str = "", dnssec: str = "allow-downgrade",
                 cache: bool = False, config: str = "", log_level: str = "info",
                 start_timeout: float = 15.0) -> None:
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self.link, self.peer, self.link_address, self.peer_address = link, peer, link_address, peer_address
        self.dnssec, self.cache, self.config, self.log_level = dnssec, cache, config, log_level
        self.start_timeout = start_timeout
        self._process: subprocess.Popen | None = None  # unshare, outside the namespace
        self._out: LogLines | None = None
        self._bus: DBusConnection | None = None
        self._bus_lock = threading.Lock()
        self._popens: weakref.WeakSet[NamespacePopen] = weakref.WeakSet()
        self.pid = 0  # PID 1 of the namespace, as the machine sees it
        self.resolved_pid = 0  # resolved's PID inside the namespace
        self.namespaces: dict[str, str] = {}  # "pid", "net", "mnt": the namespaces' ids (readlink /proc/PID/ns/...)
        self._machine_links: set[str] = set()
        self.timings: dict[str, float] = {}

    # -- files --

    def resolved_conf(self) -> str:
        return ("[Resolve]\nDNS=\nFallbackDNS=\nDomains=\nLLMNR=no\nMulticastDNS=no\nDNSOverTLS=no\n"
                f"DNSSEC={self.dnssec}\nCache={'yes' if self.cache else 'no'}\nDNSStubListener=yes\n"
                + self.config)

    def _write_files(self) -> None:
        assert self.directory is not None
        etc = self.directory / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        user_id = _free_system_id()
        passwd = _without_user(Path("/etc/passwd").read_text(), "systemd-resolve")
        group = _without_user(Path("/etc/group").read_text(), "systemd-resolve")
        (etc / "passwd").write_text(passwd.rstrip("\n") + f"\nsystemd-resolve:x:{user_id}:{user_id}:"
                                    "systemd Resolver:/:/usr/sbin/nologin\n")
        (etc / "group").write_text(group.rstrip("\n") + f"\nsystemd-resolve:x:{user_id}:\n")
        (etc / "resolv.conf").write_text(f"nameserver {STUB}\noptions edns0 trust-ad\n")
        nsswitch = Path("/etc/nsswitch.conf").read_text() if Path("/etc/nsswitch.conf").exists() else ""
        nsswitch = re.sub(r"(?m)^hosts:.*$", "", nsswitch).rstrip("\n") + f"\n{NSSWITCH_HOSTS}\n"
        (etc / "nsswitch.conf").write_text(nsswitch)
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        (self.directory / "resolved.conf").write_text(self.resolved_conf())
        (self.directory / "system-bus.conf").write_text(SYSTEM_BUS_CONFIG.format(resolve1_policy=RESOLVE1_POLICY))
        (self.directory / "init.sh").write_text(INIT_SCRIPT)

    def _link_environ(self) -> dict[str, str]:
        return {"LINK": self.link, "PEER": self.peer, "LINK_ADDRESS": self.link_address,
                "PEER_ADDRESS": self.peer_address}

    # -- life cycle --

    def start(self) -> Self:
        """Starts the namespace, its bus and resolved; returns once resolved is on the bus and the stub listens."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("this private resolved is already running")
        began = time.monotonic()
        ensure_binaries()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="dnscock-resolved-", dir="/tmp"))
        self.directory = self.directory.resolve()
        if self.directory.parts[1:2] in (("run",), ("sys",), ("proc",)):
            raise ValueError(f"{self.directory}: the namespace has /run, /sys and /proc of its own")
        self._write_files()
        self._machine_links = set(os.listdir("/sys/class/net"))
        environ = {key: value for key, value in os.environ.items()
                   if key not in ("NOTIFY_SOCKET", "DBUS_SYSTEM_BUS_ADDRESS", "LISTEN_FDS", "LISTEN_PID")}
        environ.update(self._link_environ(), DCK_DIR=str(self.directory), DCK_RESOLVED=str(RESOLVED_BINARY),
                       DCK_LOG_LEVEL=self.log_level, PATH=environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        with open(self.directory / "init.log", "ab") as log:
            self._process = subprocess.Popen(
                ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                 "bash", str(self.directory / "init.sh")],
                env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
                start_new_session=True)
        assert self._process.stdout is not None
        self._out = LogLines(self._process.stdout)
        try:
            self.pid = self._namespace_init()
            self.namespaces = {kind: os.readlink(f"/proc/{self.pid}/ns/{kind}") for kind in ("pid", "net", "mnt")}
            self._wait_until_started(0)
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def _namespace_init(self) -> int:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        while True:
            with contextlib.suppress(OSError):
                found = children.read_text().split()
                if found:
                    return int(found[0])
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self.log("init.log")
                if "Operation not permitted" in log or "Permission denied" in log:
                    raise ResolvedUnavailable(f"namespaces cannot be made here: {log.strip()[-300:]}")
                raise ResolvedFailed(f"the namespace did not start: {log.strip()[-300:] or '(no log)'}")
            time.sleep(0.002)

    def _wait_until_started(self, from_line: int) -> None:
        """Waits for ``started PID`` from PID 1, then for that resolved to own its name and its stub to listen."""
        assert self._out is not None
        try:
            match = self._out.wait_for(_STARTED, self.start_timeout, from_line)
        except AssertionError:
            raise ResolvedFailed(f"the namespace's init did not start resolved: {self.log_tail('init.log')}") \
                from None
        self.resolved_pid = int(match.group(1))
        deadline = time.monotonic() + self.start_timeout
        while not (self._owner_pid() == self.resolved_pid and self._stub_listens()):
            if self._process is None or self._process.poll() is not None:
                raise ResolvedFailed(f"the namespace ended: {self.log_tail('init.log')}")
            if time.monotonic() > deadline:
                raise ResolvedFailed(f"resolved ({self.resolved_pid}) did not come up within "
                                     f"{self.start_timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.005)

    def _owner_pid(self) -> int | None:
        try:
            return self._bus_call(DBUS, "GetConnectionUnixProcessID", "s", RESOLVE1)[0]
        except (DBusErrorResponse, OSError, ValueError):
            return None

    def _stub_listens(self) -> bool:
        with contextlib.suppress(OSError):
            return any(line.split()[1] == "3500007F:0035"
                       for line in Path(f"/proc/{self.pid}/net/udp").read_text().splitlines()[1:])
        return False

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def restart_resolved(self, wipe_state: bool = False) -> None:
        """Stops resolved (SIGTERM) and starts it again, first removing /run/systemd/resolve when ``wipe_state``."""
        if not self.running():
            raise RuntimeError("this private resolved is not running")
        assert self._process is not None and self._process.stdin is not None and self._out is not None
        began = time.monotonic()
        from_line = len(self._out.copy())
        self._process.stdin.write("restart-wipe\n" if wipe_state else "restart\n")
        self._process.stdin.flush()
        self._wait_until_started(from_line)
        self.timings["restart"] = time.monotonic() - began

    def stop(self) -> int | None:
        """Ends the namespace (SIGTERM to its PID 1: every process in it dies); returns PID 1's exit code."""
        if self._process is None:
            return None
        began = time.monotonic()
        with self._bus_lock:
            if self._bus is not None:
                with contextlib.suppress(OSError):
                    self._bus.close()
                self._bus = None
        if self._process.poll() is None and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self._process.kill()
            self._process.wait()
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        for process in list(self._popens):  # their commands died with the namespace: reap the nsenters
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.timings["stop"] = time.monotonic() - began
        if self._own_directory and self.directory is not None and not os.environ.get("DNSCOCK_KEEP_RESOLVED_LOGS"):
            shutil.rmtree(self.directory, ignore_errors=True)
        return self._process.returncode

    def leftovers(self) -> list[str]:
        """What of the namespace is still around: processes in its namespaces, its mounts or links outside."""
        left = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            for kind, ident in self.namespaces.items():
                with contextlib.suppress(OSError):
                    if os.readlink(proc / "ns" / kind) == ident:
                        left.append(f"process {proc.name} ({(proc / 'comm').read_text().strip()}) in {ident}")
                        break
        mounts = Path("/proc/self/mountinfo").read_text() + Path("/proc/1/mountinfo").read_text()
        left += [f"mount {line}" for line in mounts.splitlines()
                 if _RUN_TMPFS in line or (self.directory is not None and str(self.directory) in line)]
        links = set(os.listdir("/sys/class/net")) - self._machine_links
        left += [f"link {name}" for name in links & {self.link, self.peer}]
        return left

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- running things inside --

    def environ(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for commands inside: ``env`` or this process's, with nss-resolve findable."""
        environ = dict(os.environ if env is None else env)
        for key in ("NOTIFY_SOCKET", "DBUS_SYSTEM_BUS_ADDRESS"):
            environ.pop(key, None)
        library = nss_library_dir()
        if library is not None:
            environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(library),
                                                                       environ.get("LD_LIBRARY_PATH")]))
        return environ

    def command(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None) -> list[str]:
        """``argv`` as a command line that runs it in the namespace (nsenter), in ``cwd`` (default: ROOT)."""
        if not self.running():
            raise RuntimeError("this private resolved is not running")
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "-p", f"--wd={cwd or ROOT}", "--", *map(str, argv)]

    def popen(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
              env: dict[str, str] | None = None, **kwargs: Any) -> NamespacePopen:
        """Starts ``argv`` in the namespace; Popen's keyword arguments apply (``env`` as in ``environ()``)."""
        process = NamespacePopen(self.command(argv, cwd=cwd), env=self.environ(env), **kwargs)
        self._popens.add(process)
        return process

    def run(self, argv: Sequence[str | os.PathLike], *, input: str | bytes | None = None,
            timeout: float = 30.0, check: bool = False, capture_output: bool = True, text: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess:
        """Runs ``argv`` in the namespace to its end, like subprocess.run (output captured as text by default)."""
        if capture_output:
            kwargs.setdefault("stdout", subprocess.PIPE)
            kwargs.setdefault("stderr", subprocess.PIPE)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        with self.popen(argv, text=text, **kwargs) as process:
            try:
                stdout, stderr = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise
        result = subprocess.CompletedProcess(list(map(str, argv)), process.returncode, stdout, stderr)
        if check:
            result.check_returncode()
        return result

    def resolvectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """``resolvectl ARGS`` (the extracted one) inside, with ``--no-pager``."""
        return self.run([RESOLVECTL, "--no-pager", *args], **kwargs)

    def getent(self, database: str, *keys: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """``getent DATABASE KEYS`` inside (``hosts``, ``ahosts``...: getaddrinfo through nss-resolve)."""
        return self.run(["getent", database, *keys], **kwargs)

    def dig(self, *args: str, server: str = STUB, **kwargs: Any) -> subprocess.CompletedProcess:
        """``dig @SERVER ARGS`` inside (the stub by default)."""
        return self.run(["dig", f"@{server}", "+time=2", "+tries=1", *args], **kwargs)

    def start_nameserver(self, **kwargs: Any) -> NamespaceNameserver:
        """A fake nameserver on 127.0.0.1 inside the namespace (a free port, or ``port=``); stop it with ``stop()``."""
        return NamespaceNameserver(self, **kwargs)

    def ip(self, *args: str) -> str:
        """``ip ARGS`` inside; its output. CalledProcessError when it fails."""
        return self.run(["ip", *args], check=True).stdout

    def set_carrier(self, carrier: bool) -> None:
        """Takes the peer down (the link loses carrier) or up again."""
        self.ip("link", "set", self.peer, "up" if carrier else "down")

    def recreate_link(self) -> int:
        """Deletes the veth pair and makes it again (a new ifindex, as when Docker re-creates its bridge).

        Returns the new ifindex."""
        self.ip("link", "delete", self.link)
        self.run(["bash", "-c", LINK_SETUP], env={**os.environ, **self._link_environ()}, check=True)
        return self.ifindex()

    # -- D-Bus --

    @property
    def bus_address(self) -> str:
        """The namespace's system bus, for this process (through PID 1's root: /run is the namespace's)."""
        return f"unix:path=/proc/{self.pid}/root{BUS_SOCKET}"

    def _bus_call(self, address: DBusAddress, method: str, signature: str | None = None, *body: Any,
                  timeout: float = 10.0) -> tuple:
        message = new_method_call(address, method, signature, body if signature else ())
        with self._bus_lock:
            if self._bus is None:
                self._bus = open_dbus_connection(self.bus_address)
            try:
                reply = self._bus.send_and_get_reply(message, timeout=timeout)
            except (OSError, TimeoutError):
                with contextlib.suppress(OSError):
                    self._bus.close()
                self._bus = None
                raise
        return unwrap_msg(reply) if reply.header.message_type == MessageType.error else reply.body

    def call(self, method: str, signature: str | None = None, *args: Any, path: str = MANAGER_PATH,
             interface: str = MANAGER) -> tuple:
        """Calls resolved: ``call("SetLinkDomains", "ia(sb)", ifindex, [("docker", True)])``; the reply's body.

        DBusErrorResponse when resolved answers with an error (its ``name`` and ``data``)."""
        return self._bus_call(DBusAddress(path, bus_name=RESOLVE1, interface=interface), method, signature, *args)

    def name_has_owner(self, name: str = RESOLVE1) -> bool:
        return bool(self._bus_call(DBUS, "NameHasOwner", "s", name)[0])

    def ifindex(self, link: str | None = None) -> int:
        """The link's ifindex in the namespace (``LINK`` by default)."""
        return int(Path(f"/proc/{self.pid}/root/sys/class/net/{link or self.link}/ifindex").read_text())

    def link_path(self, link: str | int | None = None) -> str:
        """resolved's object path for the link (``GetLink``)."""
        ifindex = link if isinstance(link, int) else self.ifindex(link)
        return self.call("GetLink", "i", ifindex)[0]

    def _property(self, path: str, interface: str, name: str) -> Any:
        properties = DBusAddress(path, bus_name=RESOLVE1, interface="org.freedesktop.DBus.Properties")
        _signature, value = self._bus_call(properties, "Get", "ss", interface, name)[0]
        return value

    def manager_property(self, name: str) -> Any:
        """A property of resolved's Manager: ``DNSEx`` ``a(iiayqs)``, ``Domains`` ``a(isb)``..."""
        return self._property(MANAGER_PATH, MANAGER, name)

    def link_property(self, name: str, link: str | int | None = None) -> Any:
        """A property of the Link object: ``Domains`` ``a(sb)``, ``DNSEx`` ``a(iayqs)``, ``DNSSEC`` ``s``,
        ``DefaultRoute`` ``b``, ``ScopesMask`` ``t``... (DNSSEC and DefaultRoute fall back to the global
        and computed values when not set on the link: ``link_state()`` tells)."""
        return self._property(self.link_path(link), LINK_INTERFACE, name)

    def link_domains(self, link: str | int | None = None) -> list[tuple[str, bool]]:
        """The link's domains, ``(name, routing_only)``: ``[("docker", True), ("17.172.in-addr.arpa", True)]``."""
        return [(name, bool(routing_only)) for name, routing_only in self.link_property("Domains", link)]

    def link_servers(self, link: str | int | None = None) -> list[LinkServer]:
        """The link's DNS servers (``DNSEx``): ``[LinkServer("127.0.0.1", 5300, "")]``."""
        return [LinkServer(str(ipaddress.ip_address(bytes(raw))), port, name)
                for _family, raw, port, name in self.link_property("DNSEx", link)]

    def link_settings(self, link: str | int | None = None) -> dict[str, Any]:
        """Servers, domains, DNSSEC, DefaultRoute and ScopesMask (1: a DNS scope, the link is used) in one dict."""
        return {"servers": self.link_servers(link), "domains": self.link_domains(link),
                "dnssec": self.link_property("DNSSEC", link), "default_route": self.link_property("DefaultRoute", link),
                "scopes": self.link_property("ScopesMask", link)}

    def link_state(self, link: str | int | None = None) -> dict[str, str]:
        """resolved's saved state for the link (``/run/systemd/resolve/netif/IFINDEX``), which only holds what
        was set on the link: ``{"SERVERS": "127.0.0.1:5300", "DOMAINS": "~docker", "DNSSEC": "no",
        "DEFAULT_ROUTE": "no", ...}``; empty when nothing is (or the state was wiped)."""
        ifindex = link if isinstance(link, int) else self.ifindex(link)
        path = Path(f"/proc/{self.pid}/root/run/systemd/resolve/netif/{ifindex}")
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))

    # -- logs --

    def log(self, name: str = "resolved.log") -> str:
        """One of the logs in the directory: ``resolved.log``, ``dbus.log``, ``init.log``."""
        if self.directory is None:
            return ""
        try:
            return (self.directory / name).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, name: str = "resolved.log", lines: int = 8) -> str:
        return " | ".join(self.log(name).strip().splitlines()[-lines:]) or f"(no {name})"
