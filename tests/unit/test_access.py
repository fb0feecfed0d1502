"""-allow-from and -rate-limit: which clients get answers, and how many a second."""

from __future__ import annotations

import pytest

from dnscock.access import ALLOW, DROP, SLIP, ClientFilter, RateLimiter
from dnscock.options import DEFAULT_ALLOW_FROM
from dnscock.values import parse_networks


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("10.1.2.3", True), ("172.16.0.1", True),
    ("172.31.255.254", True), ("192.168.1.1", True), ("fd00:dc0c::5", True), ("169.254.1.1", True),
    ("fe80::1%eth0", True), ("::ffff:10.0.0.1", True), ("::ffff:127.0.0.1", True),
    ("8.8.8.8", False), ("172.32.0.1", False), ("2001:db8::1", False), ("::ffff:8.8.8.8", False),
    ("1.1.1.1", False), ("not an address", False),
])
def test_default_networks_are_loopback_and_private(host, allowed):
    assert ClientFilter(parse_networks(DEFAULT_ALLOW_FROM)).allows(host) is allowed


def test_any_allows_everyone_and_a_list_only_itself():
    assert ClientFilter(parse_networks("any")).allows("8.8.8.8")
    assert ClientFilter(parse_networks("any")).allows("2001:db8::1")
    only = ClientFilter(parse_networks("10.0.0.0/8, 2001:db8::/32"))
    assert only.allows("10.9.9.9") and only.allows("2001:db8::53") and not only.allows("127.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_per_network_with_slip():
    clock = Clock()
    limiter = RateLimiter(rate=5, slip=2, clock=clock)
    verdicts = [limiter.check(f"10.0.0.{i % 3 + 1}") for i in range(11)]  # one /24
    assert verdicts[:5] == [ALLOW] * 5
    assert verdicts[5:] == [DROP, SLIP, DROP, SLIP, DROP, SLIP], "every 2nd reply over the limit slips"
    assert limiter.check("10.0.1.1") == ALLOW, "another /24 has its own budget"
    clock.now += 0.4  # two tokens back
    assert [limiter.check("10.0.0.9") for _ in range(3)] == [ALLOW, ALLOW, DROP]
    clock.now += 10  # never more than a second's worth
    assert [limiter.check("10.0.0.9") for _ in range(6)].count(ALLOW) == 5


def test_ipv6_clients_are_grouped_by_56_and_slip_zero_drops_all():
    limiter = RateLimiter(rate=1, slip=0, clock=Clock())
    assert limiter.check("2001:db8:0:ff::1") == ALLOW
    assert limiter.check("2001:db8:0:1::2") == DROP, "same /56"
    assert limiter.check("2001:db8:0:100::1") == ALLOW, "another /56"
    assert limiter.network_of("::ffff:192.0.2.7") == "192.0.2.0/24"
