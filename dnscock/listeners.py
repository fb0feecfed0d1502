"""The DNS listeners: UDP and TCP on one address, bound at start, or moved to follow the default bridge.

With ``-dns=ADDR`` the sockets are bound once, before anything else (and
before ``-user`` drops root). With ``-dns=bridge[:PORT]`` dnscock listens on
the gateway address of the first engine's default bridge, the address
containers reach the host at: read from the engine (never guessed) at each
connect and resync, and the listeners move when it changes. Until the
engine has said, dnscock does not listen, and /health says so.
"""

from __future__ import annotations

import logging

from dnscock.addresses import Address
from dnscock.pipeline import Pipeline
from dnscock.server import TcpServer, UdpServer
from dnscock.sockets import bind_pair, bound_address

log = logging.getLogger("dnscock")

BRIDGE = "bridge"  # -dns=bridge[:PORT]: the host of the listen address is the engine's default bridge's gateway


class Listeners:
    def __init__(self, pipeline: Pipeline, tcp_idle_timeout: float, tcp_connections: int) -> None:
        self.pipeline = pipeline
        self.tcp_idle_timeout = tcp_idle_timeout
        self.tcp_connections = tcp_connections
        self.servers: dict[str, UdpServer | TcpServer] = {}
        self.address: Address | None = None  # as bound (the port the kernel chose, for port 0)
        self.wanted: Address | None = None  # as asked (a bridge's gateway and -dns's port)

    def bind(self, address: Address) -> None:
        """Binds UDP and TCP on ``address`` (servers made, not started); raises OSError naming it."""
        try:
            udp_socket, tcp_socket = bind_pair(address)
        except OSError as error:
            raise OSError(f"cannot listen on {address}: {error.strerror or error}") from None
        self.servers = {
            "udp": UdpServer(udp_socket, self.pipeline),
            "tcp": TcpServer(tcp_socket, self.pipeline, self.tcp_idle_timeout, self.tcp_connections),
        }
        self.wanted, self.address = address, bound_address(udp_socket)

    def start(self, why: str = "") -> None:
        for server in self.servers.values():
            server.start()
        log.info("listening on udp %s and tcp %s%s", self.address, bound_address(self.servers["tcp"].socket), why)

    def move_to(self, address: Address) -> None:
        """Listens on ``address`` from now on (a no-op when it does already); a failure keeps the old ones."""
        if address == self.wanted:
            return
        old = dict(self.servers)
        try:
            self.bind(address)
        except OSError as error:
            log.error("%s: still listening on %s", error, self.address or "nothing")
            self.servers = old
            return
        self.start(" (the default bridge's gateway)")
        for server in old.values():
            server.stop(timeout=1)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop(timeout=1)
