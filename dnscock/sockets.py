"""Sockets for DNS: binding listeners, receive buffers, and DNS-over-TCP framing (RFC 1035 §4.2.2).

Shared by the servers (clients' queries) and the forwarder (upstreams' answers).
"""

from __future__ import annotations

import errno
import logging
import socket

from dnscock.addresses import Address

log = logging.getLogger("dnscock.sockets")

# Room for a burst of datagrams while the loop is busy: the kernel's default (about 208 KiB,
# some 500 queries) overflowed at 44,000 queries a second and lost queries.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def grow_receive_buffer(sock: socket.socket, size: int = UDP_RECEIVE_BUFFER) -> None:
    """Asks for ``size`` bytes of receive buffer (the kernel caps it at net.core.rmem_max)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as error:
        log.debug("cannot grow the receive buffer: %s", error)


def bind_udp(address: Address) -> socket.socket:
    """A bound UDP socket; host "" is every address, IPv6 and IPv4 when the host has IPv6."""
    sock = _bind(address, socket.SOCK_DGRAM)
    grow_receive_buffer(sock)
    return sock


def bind_tcp(address: Address, backlog: int = 128) -> socket.socket:
    sock = _bind(address, socket.SOCK_STREAM)
    sock.listen(backlog)
    return sock


def bind_pair(address: Address, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on the same port; with port 0, one the kernel picks free for both."""
    for _ in range(attempts if address.port == 0 else 1):
        udp = bind_udp(address)
        try:
            return udp, bind_tcp(Address(address.host, bound_address(udp).port))
        except OSError:
            udp.close()
            if address.port != 0:
                raise
    raise OSError(f"no port free for both UDP and TCP after {attempts} tries")


def _bind(address: Address, kind: socket.SocketKind) -> socket.socket:
    if address.host:
        candidates = [(address.family, address.host)]
    else:
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    error: OSError | None = None
    for family, host in candidates:
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, address.port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


def bound_address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()[:2]
    return Address(host, port)


def primary_address() -> str | None:
    """The address this host's traffic leaves from by default (the default route's source), or None.

    Connecting a UDP socket only asks the kernel's routing table which
    source address it would use; nothing is sent. 192.0.2.1 (TEST-NET-1,
    RFC 5737) stands for any address that is not on a local network.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 53))
        except OSError:
            return None
        return probe.getsockname()[0]


def read_exactly(conn: socket.socket, size: int) -> bytes:
    """``size`` bytes from a stream; raises ConnectionError when it ends first."""
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            raise ConnectionError(errno.ECONNRESET, "connection closed early")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(conn: socket.socket) -> bytes:
    """One length-framed DNS message from a TCP stream; raises ConnectionError when the stream ends."""
    return read_exactly(conn, int.from_bytes(read_exactly(conn, 2), "big"))


def framed(message: bytes) -> bytes:
    """A DNS message with its 2-byte length, for a TCP stream."""
    return len(message).to_bytes(2, "big") + message
