"""The reverse zones of subnets: on octet and nibble boundaries, split, never widened."""

from __future__ import annotations

import pytest

from dnscock.reverse_zones import ReverseZones, zones_of


@pytest.mark.parametrize(("subnet", "first", "count"), [
    ("172.17.0.0/16", "17.172.in-addr.arpa", 1),
    ("10.213.5.0/24", "5.213.10.in-addr.arpa", 1),
    ("192.168.16.0/20", "16.168.192.in-addr.arpa", 16),  # split into /24 zones, not widened to a /16
    ("10.1.2.3/32", "3.2.1.10.in-addr.arpa", 1),
    ("10.0.0.0/8", "10.in-addr.arpa", 1),
    ("fd00:dc0c:88::/64", "0.0.0.0.8.8.0.0.c.0.c.d.0.0.d.f.ip6.arpa", 1),
    ("fd00::/9", "0.d.f.ip6.arpa", 8),
    ("172.20.0.5/16", "20.172.in-addr.arpa", 1),  # host bits: the network's
])
def test_zones_of_a_subnet(subnet, first, count):
    zones = zones_of(subnet)
    assert (".".join(zones[0]), len(zones)) == (first, count)


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "10.0.0.0/7", "::/0", "not a subnet"])
def test_too_wide_or_broken_subnets_have_no_zone(subnet):
    assert zones_of(subnet) == []


def test_zone_names_are_unique_and_lookup_finds_the_zone():
    assert ReverseZones(["172.17.0.0/16", "172.17.0.0/16", "10.213.5.0/24"]).names == [
        "17.172.in-addr.arpa", "5.213.10.in-addr.arpa"]
    zones = ReverseZones(["172.17.0.0/16"])
    assert zones.apex_length(("9", "0", "17", "172", "in-addr", "arpa")) == 4
    assert zones.apex_length(("17", "172", "in-addr", "arpa")) == 4
    assert zones.apex_length(("172", "in-addr", "arpa")) == 0
    assert zones.apex_length(("9", "0", "18", "172", "in-addr", "arpa")) == 0
