"""Tiny upstream nameservers on loopback, for forwarding tests.

Each runs in a thread on 127.0.0.1 with a port chosen by the kernel:

* ``answer``: answers every A query with ``ANSWER_IP`` (TTL 60), echoing the id;
* ``silent``: reads every query and never answers;
* ``formerr``: answers every query with FORMERR.
"""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

ANSWER_IP = "192.0.2.53"


class FakeUpstream:
    def __init__(self, mode: str = "answer", answer_ip: str = ANSWER_IP) -> None:
        if mode not in ("answer", "silent", "formerr"):
            raise ValueError(mode)
        self.mode = mode
        self.answer_ip = answer_ip
        self.queries: list[dns.message.Message] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, client = self._socket.recvfrom(65535)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            self.queries.append(query)
            if self.mode == "silent":
                continue
            reply = dns.message.make_response(query)
            if self.mode == "formerr":
                reply.set_rcode(dns.rcode.FORMERR)
            elif query.question[0].rdtype == dns.rdatatype.A:
                name = query.question[0].name
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", self.answer_ip))
            try:
                self._socket.sendto(reply.to_wire(), client)
            except OSError:
                return

    def close(self) -> None:
        self._socket.close()
