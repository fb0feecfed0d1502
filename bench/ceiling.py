"""The ceiling: the least a Python DNS server on gevent can do for the two hot cases, to measure dnscock against.

``python -m bench.ceiling forward PORT UPSTREAM_PORT`` relays UDP queries to
one upstream on 127.0.0.1: a fresh random id per query, a dict of the ones in
flight, the reply matched by id and question, the client's id put back, sent.
No cache, no ownership check, no timeouts, no counters: what any forwarder
must do and nothing more.

``python -m bench.ceiling answer PORT HOSTS_FILE`` answers A queries from a
hosts file: a reply kept per query bytes (but the id), so a repeated query
costs one dict lookup; a new one is read with dnslib and answered with
every address the file gives the name, as many as fit in 512 bytes (TC set
when some did not), NXDOMAIN for names not in the file.

Both read with gevent sockets in plain loops, as dnscock does (one greenlet
per socket); a benchmark gives them CPU 1 alone, like every contender. They
are measuring sticks, not servers: they trust every packet.
"""

from __future__ import annotations

import sys

from gevent import monkey

monkey.patch_all()

import random  # noqa: E402
import socket  # noqa: E402

import gevent  # noqa: E402

BUFFER = 4 << 20


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return sock


def forward(port: int, upstream_port: int) -> None:
    clients, upstream = _udp_socket(), _udp_socket()
    clients.bind(("127.0.0.1", port))
    upstream.connect(("127.0.0.1", upstream_port))
    waiting: dict[bytes, tuple[bytes, tuple, bytes]] = {}  # our id -> (client id, client address, question)

    def from_clients() -> None:
        receive, send, pick = clients.recvfrom, upstream.send, random.randbytes
        while True:
            query, address = receive(4096)
            ours = pick(2)
            while ours in waiting:
                ours = pick(2)
            waiting[ours] = (query[:2], address, query[12:query.find(b"\x00", 12) + 5])
            send(ours + query[2:])

    def from_upstream() -> None:
        receive, send = upstream.recv, clients.sendto
        while True:
            reply = receive(65535)
            entry = waiting.get(reply[:2])
            if entry is not None and reply[12:12 + len(entry[2])] == entry[2]:
                del waiting[reply[:2]]
                send(entry[0] + reply[2:], entry[1])

    gevent.joinall([gevent.spawn(from_clients), gevent.spawn(from_upstream)])


def answer(port: int, hosts_file: str) -> None:
    from dnslib import QTYPE, RR, A, DNSRecord

    table: dict[str, list[str]] = {}
    with open(hosts_file) as hosts:
        for line in hosts:
            address, *names = line.split()
            for name in names:
                table.setdefault(name.lower().rstrip(".") + ".", []).append(address)
    sock = _udp_socket()
    sock.bind(("127.0.0.1", port))
    kept: dict[bytes, bytes] = {}

    def first_time(query: bytes) -> bytes:
        message = DNSRecord.parse(query)
        reply = message.reply()
        addresses = table.get(str(message.q.qname).lower())
        if addresses is None:
            reply.header.rcode = 3
        elif message.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(message.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        packed = reply.pack()
        while len(packed) > 512:  # UDP without EDNS0 (RFC 1035 §4.2.1)
            reply.rr.pop()
            reply.header.tc = 1
            packed = reply.pack()
        kept[query[2:]] = packed[2:]
        return packed

    receive, send = sock.recvfrom, sock.sendto
    while True:
        query, address = receive(4096)
        rest = kept.get(query[2:])
        send(query[:2] + rest if rest is not None else first_time(query), address)


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    if mode == "forward":
        forward(int(arguments[0]), int(arguments[1]))
    elif mode == "answer":
        answer(int(arguments[0]), arguments[1])
    else:
        sys.exit(f"usage: {sys.argv[0]} forward PORT UPSTREAM_PORT | answer PORT HOSTS_FILE")
