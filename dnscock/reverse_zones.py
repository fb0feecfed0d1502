"""The reverse zones of the Docker networks' subnets (RFC 1035 §3.5, RFC 3596 §2.5), which dnscock serves.

A subnet's reverse names sit under a zone cut on an octet (IPv4) or nibble
(IPv6) boundary. A prefix off the boundary is split into the zones one step
longer (a /20 into sixteen /24 zones), never widened: a wider zone would
take reverse names that are not the network's (a LAN next to it) away from
their own servers. Prefixes shorter than 8 bits have no zone of their own.

dnscock answers every name in these zones itself: a container's address
its PTR, any other name NXDOMAIN. So it never forwards them, which matters
when systemd-resolved sends these zones to dnscock and dnscock's upstream
is resolved (a loop otherwise).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

MIN_PREFIX = 8
_UNIT = {4: 8, 6: 4}  # bits per label


def zones_of(subnet: str) -> list[tuple[str, ...]]:
    """The reverse zones (label tuples, lower case, apex first) that cover exactly ``subnet``."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return []
    if network.prefixlen < MIN_PREFIX:
        return []
    unit = _UNIT[network.version]
    aligned = -(-network.prefixlen // unit) * unit
    zones = []
    for part in network.subnets(new_prefix=aligned):
        labels = part.network_address.reverse_pointer.split(".")
        # reverse_pointer names every label of the address: keep the aligned prefix's and the suffix.
        zones.append(tuple(labels[len(labels) - 2 - aligned // unit:]))
    return zones


class ReverseZones:
    """The set of zones, with a lookup from a name's labels to the zone holding it."""

    def __init__(self, subnets: Iterable[str] = ()) -> None:
        self.subnets = frozenset(subnets)
        self.zones = {zone for subnet in self.subnets for zone in zones_of(subnet)}
        self._lengths = sorted({len(zone) for zone in self.zones})
        self.names = sorted(".".join(zone) for zone in self.zones)

    def apex_length(self, labels: tuple[str, ...]) -> int:
        """How many of ``labels`` (lower case) name the zone holding the name; 0: in none of them."""
        for length in self._lengths:
            if length > len(labels):
                break
            if labels[len(labels) - length:] in self.zones:
                return length
        return 0
