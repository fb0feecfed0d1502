"""A loopback port that is free for both UDP and TCP right now, for servers that cannot bind port 0.

dnscock itself can listen on port 0 and log the port it got; a container,
a compose service, a Procfile or a quiet dnscock needs the number up front.
A port is handed out once per process: two servers given ports before
either binds never get the same one.
"""

from __future__ import annotations

import socket

_handed_out: set[tuple[str, int]] = set()


def free_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            if (host, port) in _handed_out:
                continue
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        _handed_out.add((host, port))
        return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host} after {attempts} tries")


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``port`` (UDP nor TCP): whoever had it is gone."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:  # connections it served may linger in TIME_WAIT; a listener may not
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True
