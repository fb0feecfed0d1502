"""The network link dnscock registers with systemd-resolved: a TUN device that lives exactly as long as dnscock.

resolved routes a domain to a link's servers only while that link is up,
has carrier and has a routable address. The engine's bridge has no carrier
while no container is attached to it, so dnscock makes a link of its own:
a TUN device (``dnscock0``, or the next free ``dnscock<N>``), not
persistent, so the kernel deletes it when its file descriptor closes, when
dnscock exits and just as well when it is killed, and resolved forgets
what was registered on it. Nothing can be left behind for a later start to
clean up. A TUN device has carrier while it is open; it gets the address
of ``-host-resolver-address`` (a /32 of the link-local range by default:
no route to anywhere) and is brought up, over rtnetlink. No packet goes
through it: resolved sends its queries to dnscock's listen address, and
LLMNR and mDNS are turned off on the link.

Creating it needs CAP_NET_ADMIN and ``/dev/net/tun``; it is made as root,
before ``-user``.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import itertools
import os
import socket
import struct
from dataclasses import dataclass

from dnscock.errors import DnscockError

NAME_PATTERN = "dnscock%d"  # the kernel picks the first free number
TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16

# linux/netlink.h, linux/rtnetlink.h, linux/if_link.h
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
RT_SCOPE_UNIVERSE = 0

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
_ATTRIBUTE = struct.Struct("=HH")


class OwnLinkError(DnscockError):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: {os.strerror(code)}")
        self.errno = code


@dataclass(frozen=True)
class LinkState:
    index: int
    flags: int

    @property
    def has_carrier(self) -> bool:
        return self.flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP


def _attribute(kind: int, payload: bytes) -> bytes:
    data = _ATTRIBUTE.pack(_ATTRIBUTE.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


class OwnLink:
    """The TUN device (open while this object is) and the rtnetlink socket that configures it."""

    def __init__(self, address: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        self.address = address
        self.name = ""
        self.index = 0
        self._tun: int | None = None
        self._netlink: socket.socket | None = None
        self._sequence = itertools.count(1)

    def open(self) -> None:
        """Creates the device, brings it up and gives it its address; raises OwnLinkError saying what failed."""
        try:
            self._tun = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            raise OwnLinkError(f"opening {TUN_DEVICE}", error.errno or errno.EIO) from None
        try:
            request = struct.pack(f"{IFNAMSIZ}sH", NAME_PATTERN.encode(), IFF_TUN | IFF_NO_PI)
            reply = fcntl.ioctl(self._tun, TUNSETIFF, request)
        except OSError as error:
            self.close()
            raise OwnLinkError(f"creating link {NAME_PATTERN}", error.errno or errno.EIO) from None
        self.name = reply[:IFNAMSIZ].rstrip(b"\0").decode()
        self.index = socket.if_nametoindex(self.name)
        self._netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._netlink.bind((0, 0))
        self.set_up()
        family = socket.AF_INET if self.address.version == 4 else socket.AF_INET6
        packed = self.address.ip.packed
        body = _IFADDR.pack(family, self.address.network.prefixlen, 0, RT_SCOPE_UNIVERSE, self.index) \
            + _attribute(IFA_LOCAL, packed) + _attribute(IFA_ADDRESS, packed)
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body,
                      f"adding address {self.address} to link {self.name}")

    @property
    def is_open(self) -> bool:
        return self._tun is not None

    def set_up(self) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, self.index, IFF_UP, IFF_UP)
        self._request(RTM_NEWLINK, NLM_F_ACK, body, f"bringing link {self.name} up")

    def state(self) -> LinkState | None:
        """The device as the kernel has it now (None: it is gone, deleted by somebody)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, self.index, 0, 0)
        try:
            payload = self._request(RTM_GETLINK, 0, body, f"reading link {self.name}")
        except OwnLinkError as error:
            if error.errno == errno.ENODEV:
                return None
            raise
        _, _, index, flags, _ = _IFINFO.unpack_from(payload)
        return LinkState(index, flags)

    def close(self) -> None:
        """Closes the device: the kernel deletes the link, and resolved forgets it."""
        for closing in (self._netlink,):
            if closing is not None:
                closing.close()
        self._netlink = None
        if self._tun is not None:
            os.close(self._tun)
            self._tun = None

    def _request(self, kind: int, flags: int, body: bytes, what: str) -> bytes:
        """Sends one request; returns the reply's payload (b"" for an acknowledgement)."""
        if self._netlink is None:
            raise OwnLinkError(what, errno.EBADF)
        sequence = next(self._sequence)
        self._netlink.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, sequence, 0) + body)
        while True:
            data = self._netlink.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply_kind, _, reply_sequence, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if reply_sequence != sequence:
                    continue  # a late reply to an earlier request
                if reply_kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise OwnLinkError(what, -code)
                    return b""
                return payload
