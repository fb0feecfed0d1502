"""Certificates for TLS to a test engine, made with the ``openssl`` command in a directory of their own.

    certs = make_certs(Path(tempfile.mkdtemp()))
    certs.ca, certs.server_cert, certs.server_key   # for dockerd --tlsverify
    certs.client_dir                              # ca.pem, cert.pem, key.pem: a DOCKER_CERT_PATH

A CA signs a server certificate (for ``127.0.0.1`` and ``localhost``, server
auth) and a client certificate (client auth). ``make_certs(dir, name="other")``
in another directory makes an unrelated CA with its own pair, for the wrong-CA
case. EC P-256 keys: quick to make, and both Go and OpenSSL take them.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class OpensslUnavailable(RuntimeError):
    """The ``openssl`` command is missing (apt-get install openssl)."""


@dataclass(frozen=True)
class CertSet:
    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @property
    def client_dir(self) -> Path:
        """A directory laid out as docker's ``DOCKER_CERT_PATH``: ca.pem, cert.pem, key.pem."""
        return self.directory / "client"


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OpensslUnavailable("openssl is not installed (apt-get install openssl)")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _leaf(directory: Path, name: str, subject: str, extensions: str, ca: Path, ca_key: Path) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f"{name}-key.pem", directory / f"{name}.csr",
                           directory / f"{name}-cert.pem", directory / f"{name}.ext")
    ext.write_text(extensions)
    _openssl("req", *_KEY, "-keyout", key.name, "-out", csr.name, "-subj", subject, cwd=directory)
    _openssl("x509", "-req", "-in", csr.name, "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", DAYS, "-sha256", "-extfile", ext.name, "-out", cert.name, cwd=directory)
    return cert, key


def make_certs(directory: Path, name: str = "dnscock-test") -> CertSet:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    _openssl("req", "-x509", *_KEY, "-keyout", ca_key.name, "-out", ca.name, "-days", DAYS, "-sha256",
             "-subj", f"/CN={name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=directory)
    common = "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\nbasicConstraints=CA:FALSE\n"
    server_cert, server_key = _leaf(
        directory, "server", "/CN=localhost",
        common + "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                 "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        ca, ca_key)
    client_cert, client_key = _leaf(
        directory, "client", f"/CN={name} client",
        common + "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        ca, ca_key)
    client_dir = directory / "client"
    client_dir.mkdir(exist_ok=True)
    for source, target in ((ca, "ca.pem"), (client_cert, "cert.pem"), (client_key, "key.pem")):
        shutil.copyfile(source, client_dir / target)
    for key in (ca_key, server_key, client_key, client_dir / "key.pem"):
        key.chmod(0o600)
    return CertSet(directory, ca, ca_key, server_cert, server_key, client_cert, client_key)
