"""A local Python base image for ``docker build --build-arg BASE=...``, since no registry is reachable.

    base = ensure_base_image(engine)   # "local/python-base:bookworm"
    engine.client.images.build(path=ROOT, buildargs={"BASE": base}, network_mode="host")

The image is Debian bookworm (``debootstrap --variant=minbase``) with
``python3``, ``python3-venv`` and ``ca-certificates``, a virtualenv at
``/opt/venv`` first on ``PATH`` (so the Dockerfile's ``pip install`` and
``python`` are the venv's), the host's extra CA certificates
(``/usr/local/share/ca-certificates``) and the host pip settings that reach a
package index over the network (so ``pip install`` inside a build reaches the
index the host reaches).

In order of cost, ``ensure_base_image``:

1. returns at once when the engine already has the image (with the same recipe key);
2. else loads the cache tar (``/var/cache/dnscock-tests/python-base.tar``,
   ``$DNSCOCK_TEST_CACHE`` for another folder), a few seconds;
3. else builds the image (about a minute: debootstrap from the host's Debian
   mirror), imports it, and saves it to the cache tar for next time.

A file lock makes concurrent callers (pytest-xdist workers, two checkouts)
build it once: the others wait, then load the tar. The image carries a label
with a key of its recipe (mirror, packages, CA files, pip settings): when one
of these changes, the cached image is rebuilt rather than used stale.

``python -m tests.support.base_image ENGINE_URL`` does the same from a shell.
"""

from __future__ import annotations

import configparser
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

log = logging.getLogger(__name__)

BASE_IMAGE = "local/python-base:bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
VENV = "/opt/venv"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_DIR = Path(os.environ.get("DNSCOCK_TEST_CACHE", "/var/cache/dnscock-tests"))
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
HOST_PIP_CONFIGS = (Path("/etc/xdg/pip/pip.conf"), Path("/etc/pip.conf"))
KEY_LABEL = "org.dnscock.tests.base-key"
# Bump when the recipe below changes in a way the key does not see.
RECIPE_VERSION = "2"
IMAGE_PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
# pip settings worth carrying into the image: the ones that say where an index is and how to reach it.
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "proxy")

DEBOOTSTRAP_TIMEOUT = 900.0
LOCK_TIMEOUT = 1200.0


class BaseImageUnavailable(RuntimeError):
    """The base image cannot be had here (no root, no debootstrap, mirror unreachable...)."""


# -- what the image is made of --


def debian_mirror() -> str:
    """The Debian archive the host's apt uses for ``SUITE`` (``$DNSCOCK_DEBIAN_MIRROR`` wins)."""
    if os.environ.get("DNSCOCK_DEBIAN_MIRROR"):
        return os.environ["DNSCOCK_DEBIAN_MIRROR"]
    entries = list(_apt_sources())
    for uri, suites in entries:
        if SUITE in suites:
            return uri
    for uri, _suites in entries:
        if "debian" in uri and "security" not in uri:
            return uri
    return DEFAULT_MIRROR


def _apt_sources() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of each ``deb`` source, one-line style and deb822 style."""
    one_line = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in one_line:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [signed-by=... arch=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2 and words[0].startswith(("http://", "https://")):
                yield words[0].rstrip("/"), [words[1]]
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for paragraph in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in paragraph.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                if uri.startswith(("http://", "https://")):
                    yield uri.rstrip("/"), fields.get("suites", "").split()


def host_ca_files() -> list[Path]:
    if not HOST_CA_DIR.is_dir():
        return []
    return sorted(path for path in HOST_CA_DIR.rglob("*.crt") if path.is_file())


def image_pip_config() -> str:
    """The ``/etc/pip.conf`` of the image.

    pip in the image verifies TLS against the system bundle, which holds the
    host's extra CAs once ``update-ca-certificates`` has run (a TLS-inspecting
    proxy's, say); Debian's pip would otherwise use its own certifi bundle.
    From the host's pip config (files and ``PIP_*`` env vars) only the settings
    naming a network index and how to reach it are kept: ``file://`` indexes,
    ``find-links`` and ``constraint`` files name paths of the host, not the image.
    """
    settings: dict[str, str] = {}
    for path in HOST_PIP_CONFIGS:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except (OSError, configparser.Error):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in PIP_KEYS:
                    if parser.has_option(section, key):
                        settings[key] = parser.get(section, key)
    for key in PIP_KEYS:
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            settings[key] = value
    for key in ("index-url", "extra-index-url"):
        if key in settings:
            urls = [url for url in settings[key].split() if url.startswith(("http://", "https://"))]
            if urls:
                settings[key] = " ".join(urls)
            else:
                del settings[key]
    lines = ["# Written by tests/support/base_image.py from the host's pip settings.", "[global]",
             "cert = /etc/ssl/certs/ca-certificates.crt"]
    lines += [f"{key} = {value}" for key, value in sorted(settings.items())]
    return "\n".join(lines) + "\n"


def recipe_key(mirror: str) -> str:
    """Changes whenever what goes into the image changes."""
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, SUITE, mirror, ",".join(PACKAGES), VENV, image_pip_config()):
        digest.update(part.encode() + b"\0")
    for path in host_ca_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# -- the three ways to have it --


def ensure_base_image(engine, reference: str = BASE_IMAGE, cache: Path | None = None) -> str:
    """Returns ``reference`` once ``engine`` (a PrivateEngine or a DockerClient) has the image.

    Raises BaseImageUnavailable, saying why, when it can neither be loaded nor built.
    """
    client: docker.DockerClient = getattr(engine, "client", engine)
    cache = Path(cache) if cache is not None else CACHE_DIR / "python-base.tar"
    key = recipe_key(debian_mirror())
    if _has_image(client, reference, key):
        log.info("base image %s: already in the engine", reference)
        return reference
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BaseImageUnavailable(f"cannot create the cache folder {cache.parent}: {error}") from error
    with _file_lock(cache.with_name(cache.name + ".lock")):
        if _has_image(client, reference, key):  # loaded by another caller meanwhile
            return reference
        if cache.exists():
            started = time.monotonic()
            try:
                _load(client, cache)
            except docker.errors.DockerException as error:
                log.warning("base image: cannot load %s (%s); building it again", cache, error)
            if _has_image(client, reference, key):
                log.info("base image %s: loaded from %s in %.1fs", reference, cache, time.monotonic() - started)
                return reference
            log.info("base image: %s is stale (recipe changed) or unusable; building it again", cache)
        _build(client, reference, key)
        try:
            _save(client, reference, cache)
        except (OSError, docker.errors.DockerException) as error:  # the image is there; only next time pays
            log.warning("base image: cannot save it to %s: %s", cache, error)
    return reference


def _has_image(client: docker.DockerClient, reference: str, key: str) -> bool:
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get(KEY_LABEL) == key


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    with open(path, "a") as lock:
        deadline = time.monotonic() + timeout
        waiting_logged = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not waiting_logged:
                log.info("base image: waiting for another caller building or loading it (lock %s)", path)
                waiting_logged = True
            if time.monotonic() > deadline:
                raise BaseImageUnavailable(f"the lock {path} was held for more than {timeout:.0f}s")
            time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(client: docker.DockerClient, cache: Path) -> None:
    with open(cache, "rb") as tar:
        for _ in client.api.load_image(tar):
            pass


def _save(client: docker.DockerClient, reference: str, cache: Path) -> None:
    started = time.monotonic()
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            for chunk in client.api.get_image(reference):
                out.write(chunk)
        os.replace(partial, cache)
    finally:
        partial.unlink(missing_ok=True)
    log.info("base image: saved to %s (%d MB) in %.1fs", cache, cache.stat().st_size // 2**20,
             time.monotonic() - started)


def _build(client: docker.DockerClient, reference: str, key: str) -> None:
    if os.geteuid() != 0:
        raise BaseImageUnavailable("building the base image (debootstrap, chroot) needs root")
    debootstrap = _debootstrap_command()
    mirror = debian_mirror()
    work = Path(tempfile.mkdtemp(prefix="python-base-", dir=CACHE_DIR))
    rootfs = work / "rootfs"
    try:
        started = time.monotonic()
        log.info("base image: debootstrap %s from %s (about a minute)", SUITE, mirror)
        _run([debootstrap, "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(rootfs), mirror],
             "debootstrap", timeout=DEBOOTSTRAP_TIMEOUT, log_path=work / "debootstrap.log",
             unavailable=True)
        log.info("base image: debootstrap took %.1fs", time.monotonic() - started)

        step = time.monotonic()
        _configure_rootfs(rootfs)
        log.info("base image: CA certificates, pip config and venv took %.1fs", time.monotonic() - step)

        step = time.monotonic()
        tar = work / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."], "tar", timeout=300)
        repository, _, tag = reference.rpartition(":")
        changes = [
            f"ENV PATH={IMAGE_PATH}",
            f"ENV VIRTUAL_ENV={VENV}",
            "ENV LANG=C.UTF-8",
            f"LABEL {KEY_LABEL}={key}",
            'CMD ["python"]',
        ]
        client.api.import_image_from_file(str(tar), repository=repository, tag=tag, changes=changes)
        log.info("base image: %s imported in %.1fs (built in %.1fs all told)", reference,
                 time.monotonic() - step, time.monotonic() - started)
    finally:
        step = time.monotonic()
        _remove_rootfs(work)
        log.info("base image: removing the build folder took %.1fs", time.monotonic() - step)


def _configure_rootfs(rootfs: Path) -> None:
    # The host's extra CAs (a TLS-inspecting proxy's, say), so that pip in a build reaches the index.
    target = rootfs / HOST_CA_DIR.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for path in host_ca_files():
        destination = target / path.relative_to(HOST_CA_DIR)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    _chroot(rootfs, ["update-ca-certificates"], "update-ca-certificates")
    (rootfs / "etc" / "pip.conf").write_text(image_pip_config())
    _chroot(rootfs, ["python3", "-m", "venv", VENV], "python3 -m venv")
    _chroot(rootfs, [f"{VENV}/bin/python", "-c", "import ssl, sqlite3, venv"], "checking the venv")
    # What apt left behind, and documentation: about a quarter of the size, and each step of a
    # build copies the whole file system on the private engine's storage driver (vfs).
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    for docs in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"):
        for path in (rootfs / docs).glob("*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _chroot(rootfs: Path, command: list[str], what: str) -> None:
    _run(["chroot", str(rootfs), *command], what, timeout=300, env=CHROOT_ENV)


def _run(command: list[str], what: str, *, timeout: float, env: dict[str, str] | None = None,
         log_path: Path | None = None, unavailable: bool = False) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise BaseImageUnavailable(f"{what} took more than {timeout:.0f}s") from error
    if log_path is not None:
        log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        message = f"{what} failed with exit code {result.returncode}: {tail}"
        # A failing debootstrap is almost always an unreachable mirror: the tests skip (outside CI).
        if unavailable:
            raise BaseImageUnavailable(message)
        raise RuntimeError(message)


def _debootstrap_command() -> str:
    found = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if os.path.exists(found):
        return found
    if shutil.which("apt-get") is None:
        raise BaseImageUnavailable("debootstrap is not installed and there is no apt-get to install it")
    started = time.monotonic()
    log.info("base image: installing debootstrap with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0 or shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        raise BaseImageUnavailable(f"cannot install debootstrap: {result.stderr.strip()[-300:]}")
    log.info("base image: debootstrap installed in %.1fs", time.monotonic() - started)
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((point for point in points if point.startswith(prefix)), key=len, reverse=True)


def _remove_rootfs(work: Path) -> None:
    """Removes the build folder, never crossing into something mounted in it (/proc, a bound /dev)."""
    for point in mounts_under(work):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = mounts_under(work)
    if left:
        log.warning("base image: %s still has mounts (%s); leaving it in place", work, ", ".join(left))
        return
    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.base_image ENGINE_URL (unix:///path/docker.sock)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    client = docker.DockerClient(base_url=argv[0], version="auto", timeout=600)
    try:
        print(ensure_base_image(client))
    except BaseImageUnavailable as error:
        print(f"base image unavailable: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
