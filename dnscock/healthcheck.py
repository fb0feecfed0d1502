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

from dnscock.addresses import Address
from dnscock.config import Config, load_config

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


def probe_address(config: Config) -> Address | None:
    """Where dnscock listens, as a local client reaches it; with -dns=bridge, the gateway the engine names."""
    if config.listen.host != "bridge":
        return config.listen.reachable()
    from dnscock.engine import EngineClient
    from dnscock.naming import split_addresses

    try:
        client = EngineClient(config.docker_url)
        try:
            configs = (client.default_bridge().get("IPAM") or {}).get("Config") or []
        finally:
            client.close()
    except Exception:  # no engine: nowhere to look
        return None
    ipv4, _ = split_addresses(str(item.get("Gateway") or "") for item in configs)
    return Address(ipv4[0], config.listen.port) if ipv4 else None


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    address = probe_address(config)
    if address is None:
        print("dnscock: the default bridge's address cannot be read from the engine", file=sys.stderr)
        return 1
    if is_answering(address, config.zone):
        return 0
    print(f"dnscock: no DNS answer from {address}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
