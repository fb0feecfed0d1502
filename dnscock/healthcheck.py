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


def is_answering(address: Address, zone: str, timeout: float = TIMEOUT) -> bool:
    query = DNSRecord.question(zone + ".", "SOA")
    with socket.socket(address.family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(bytes(query.pack()), (address.host, address.port))
            data = sock.recv(65535)
            reply = DNSRecord.parse(data)
        except (OSError, Exception):  # no answer, or not DNS
            return False
    return reply.header.id == query.header.id and bool(reply.header.qr)


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    address = config.listen.reachable()
    if is_answering(address, config.zone):
        return 0
    print(f"dnscock: no DNS answer from {address}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
