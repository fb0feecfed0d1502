"""The address types the whole program shares: ``Address`` (host and port), ``IPNetwork``, ``Engine``.

They live apart from the option parser so that the query path can use them
without importing it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PUBLISHED = "published"  # ?address=published: containers answer the host addresses they publish ports on


class Address(NamedTuple):
    """A host and a port; host "" means every local address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def is_wildcard(self) -> bool:
        """Does it stand for every local address?"""
        return self.host in ("", "0.0.0.0", "::")

    def reachable(self) -> Address:
        """Where a client on this host reaches a server listening here: loopback for a wildcard address."""
        if not self.is_wildcard:
            return self
        return Address("::1" if self.host == "::" else "127.0.0.1", self.port)


class Engine(NamedTuple):
    """A Docker engine to watch, and perhaps the address its host is reached at from elsewhere."""

    url: str
    # With several hosts: what this engine's containers that publish ports answer; PUBLISHED: each answers the host
    # addresses its ports are published on (rootless engines, Docker Desktop, WSL).
    address: str = ""


class Nameserver(NamedTuple):
    """An upstream nameserver, for every name or only for names in ``domains``."""

    address: Address
    domains: tuple[str, ...] = ()
