"""Who gets answers: ``-allow-from`` (client networks) and ``-rate-limit`` (replies a second per network).

Both sit in front of everything else on the query path, so each check is a
dict lookup for a client seen before: the verdict for an address, and the
network an address belongs to, are remembered in bounded tables.

Rate limiting follows the idea of BIND's response rate limiting: clients are
grouped by /24 (IPv4) or /56 (IPv6), since a spoofed flood comes from many
addresses of one network as easily as from one; each group may get
``rate`` UDP replies a second (a token bucket holding at most one second's
worth). Over the limit, every ``slip``-th query gets a truncated empty
reply, so that a real client behind a spoofed flood retries over TCP and
still gets its answer, and the rest are dropped. TCP is never limited: its
handshake proves the address.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Iterable

from dnscock.addresses import IPNetwork

# At most this many addresses are remembered; past it the table starts over (one lookup each).
MEMO_LIMIT = 65536


def client_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP; an IPv4-mapped IPv6 address (a dual-stack socket) as IPv4; a zone id dropped."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientFilter:
    """``allows(host)``: is the client in one of the allowed networks?"""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self.verdicts: dict[str, bool] = {}  # remembered per address; read directly by the query path

    def allows(self, host: str) -> bool:
        verdict = self.verdicts.get(host)
        if verdict is None:
            address = client_address(host)
            verdict = address is not None and any(address in network for network in self.networks)
            if len(self.verdicts) >= MEMO_LIMIT:
                self.verdicts.clear()
            self.verdicts[host] = verdict
        return verdict


class Verdict(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # outside -allow-from: REFUSED
    SLIP = "slip"  # over -rate-limit: a truncated empty reply
    DROP = "drop"  # over -rate-limit: nothing


class Admission:
    """Who gets an answer: -allow-from for every query, -rate-limit (when set) for UDP ones."""

    def __init__(self, allow_from: Iterable[IPNetwork], rate: int = 0, slip: int = 2) -> None:
        self.clients = ClientFilter(allow_from)
        self.rate_limiter = RateLimiter(rate, slip) if rate else None
        # The addresses -allow-from let in before (True) or not (False): with no rate limit,
        # one lookup here admits a client seen before.
        self.allowed = self.clients.verdicts

    def check(self, host: str, tcp: bool) -> Verdict:
        """The verdict for a query from ``host`` ("" when there is no client address: allowed)."""
        if not host:
            return Verdict.ALLOW
        if not self.clients.allows(host):
            return Verdict.REFUSE
        if self.rate_limiter is None or tcp:
            return Verdict.ALLOW
        verdict = self.rate_limiter.check(host)
        return Verdict.ALLOW if verdict == ALLOW else Verdict.SLIP if verdict == SLIP else Verdict.DROP


ALLOW, SLIP, DROP = 0, 1, 2


class _Bucket:
    __slots__ = ("tokens", "updated", "over")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens, self.updated, self.over = tokens, updated, 0


class RateLimiter:
    """``check(host)`` -> ALLOW, SLIP (send a truncated reply) or DROP, per client network."""

    def __init__(self, rate: int, slip: int, clock=time.monotonic) -> None:
        self.rate, self.slip, self.clock = rate, slip, clock
        self._networks: dict[str, str] = {}
        self._buckets: dict[str, _Bucket] = {}

    def network_of(self, host: str) -> str:
        network = self._networks.get(host)
        if network is None:
            address = client_address(host)
            if address is None:
                network = host
            else:
                network = str(ipaddress.ip_network(f"{address}/{24 if address.version == 4 else 56}", strict=False))
            if len(self._networks) >= MEMO_LIMIT:
                self._networks.clear()
            self._networks[host] = network
        return network

    def check(self, host: str) -> int:
        now = self.clock()
        key = self.network_of(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MEMO_LIMIT:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.rate), now)
        else:
            bucket.tokens = min(float(self.rate), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return ALLOW
        bucket.over += 1
        return SLIP if self.slip and bucket.over % self.slip == 0 else DROP

    def _forget_idle(self, now: float) -> None:
        """Drops the networks whose bucket has refilled (they would start full anyway)."""
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if now - bucket.updated < 1.0}
