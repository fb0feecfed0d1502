"""``python -m dnscock.healthcheck``: is the DNS server answering? Exit 0 if so, 1 if not.

For a container HEALTHCHECK (slim images have no ``dig``). It reads the
same options as the server (flags, ``DNSCOCK_*`` env vars, the config file),
sends an SOA query for the zone to the address dnscock listens on, and
accepts any well-formed reply to it: a server that answers, even SERVFAIL
while the engine is away, is alive.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from dnslib import DNSRecord

from dnscock.config import Address, load_config

TIMEOUT = 2.0


def probe_address(listen: Address) -> tuple[str, int]:
    """Where to send the probe: the listen address, or loopback when it is every address."""
    host = listen.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, listen.port


def is_answering(address: tuple[str, int], zone: str, timeout: float = TIMEOUT) -> bool:
    query = DNSRecord.question(zone + ".", "SOA")
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(bytes(query.pack()), address)
            data = sock.recv(65535)
            reply = DNSRecord.parse(data)
        except (OSError, Exception):  # no answer, or not DNS
            return False
    return reply.header.id == query.header.id and bool(reply.header.qr)


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    address = probe_address(config.listen)
    if is_answering(address, config.zone):
        return 0
    print(f"dnscock: no DNS answer from {address[0]}:{address[1]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
