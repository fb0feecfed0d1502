"""Split horizon (``-split-horizon``): which of a container's addresses a client is answered.

A container on several networks has an address on each, and a client can
usually reach only the one on a network it shares. A client whose address
lies in the subnet of one or more of the container's networks gets the
container's addresses on those networks only; every other client (the
host, loopback, a network the container is not on) gets all of them, as
without split horizon. Docker's embedded DNS answers the same way. The
networks' gateway addresses are the host's own: the host asking from one
(a query to the bridge's address, or through -dns=bridge) gets all of
them too, though its address lies in the subnet.

A client's ``View`` is the set of the table's subnets it is in; answers
and the replies kept for them depend on it, so the local reply caches key
them by the view's ``tag`` as well (b"" for the view of every client in no
such subnet, by far the most common). Views are remembered per client
address until the table's set of subnets changes; while no record has
addresses on more than one network, nothing is computed at all.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from dnscock.access import MEMO_LIMIT, client_address
from dnscock.records import RecordStore


class View(NamedTuple):
    tag: bytes  # appended to the keys of local replies; b"" for EVERYONE
    subnets: frozenset[str]  # the table's subnets the client is in


EVERYONE = View(b"", frozenset())


class Views:
    def __init__(self, store: RecordStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._memo: dict[str, View] = {}
        self._tags: dict[frozenset[str], View] = {}
        self._generation = -1
        self._subnets: frozenset[str] = frozenset()
        self._gateways: frozenset[str] = frozenset()
        self._networks: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []

    def of(self, client: str) -> View:
        """The view of a client (its address as the socket gives it; "" for no client)."""
        if not self.enabled or not client or not self.store.spanning:
            return EVERYONE
        if self.store.generation != self._generation:
            self._refresh()
        view = self._memo.get(client)
        if view is None:
            view = self._compute(client)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[client] = view
        return view

    def _refresh(self) -> None:
        self._generation = self.store.generation
        subnets, gateways = frozenset(self.store.subnets()), frozenset(self.store.gateways())
        if subnets != self._subnets or gateways != self._gateways:
            self._subnets, self._gateways = subnets, gateways
            self._networks = [(subnet, ipaddress.ip_network(subnet)) for subnet in sorted(subnets)]
            self._memo.clear()

    def _compute(self, client: str) -> View:
        address = client_address(client)
        if address is None or str(address) in self._gateways:
            return EVERYONE
        inside = frozenset(subnet for subnet, network in self._networks
                           if network.version == address.version and address in network)
        if not inside:
            return EVERYONE
        view = self._tags.get(inside)
        if view is None:
            view = self._tags[inside] = View(b"\x00view" + struct.pack("!I", len(self._tags) + 1), inside)
        return view
