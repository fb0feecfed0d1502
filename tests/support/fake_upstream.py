"""Tiny upstream nameservers on loopback, for forwarding tests.

Each serves UDP and TCP on one port of 127.0.0.1 chosen by the kernel, in threads:

* ``answer``: answers A queries with ``answer_ip`` (TTL ``ttl``), others NOERROR/empty;
  NXDOMAIN with an SOA for names starting with ``nx``;
* ``silent``: reads every query and never answers;
* ``formerr``: answers every query with FORMERR;
* ``truncate``: like ``answer``, but over UDP only a TC reply with no records.
"""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

ANSWER_IP = "192.0.2.53"
MODES = ("answer", "silent", "formerr", "truncate")


class FakeUpstream:
    def __init__(self, mode: str = "answer", answer_ip: str = ANSWER_IP, ttl: int = 60, records: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode, self.answer_ip, self.ttl, self.records = mode, answer_ip, ttl, records
        self.queries: list[dns.message.Message] = []
        self.tcp_queries: list[dns.message.Message] = []
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self.port = self._udp.getsockname()[1]
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(16)
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._serve_udp, daemon=True).start()
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def reply_to(self, query: dns.message.Message, tcp: bool) -> dns.message.Message | None:
        if self.mode == "silent":
            return None
        reply = dns.message.make_response(query)
        if self.mode == "formerr":
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        if self.mode == "truncate" and not tcp:
            reply.flags |= dns.flags.TC
            return reply
        question = query.question[0]
        if question.name.labels[0].lower().startswith(b"nx"):
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(dns.rrset.from_text(
                question.name.parent(), 300, "IN", "SOA", f"ns.{question.name.parent()} host. 1 2 3 4 {self.ttl}"))
        elif question.rdtype == dns.rdatatype.A:
            base = self.answer_ip.rsplit(".", 1)[0]
            last = int(self.answer_ip.rsplit(".", 1)[1])
            addresses = [f"{base}.{(last + i) % 256}" for i in range(self.records)]
            reply.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", "A", *addresses))
        return reply

    def _serve_udp(self) -> None:
        while True:
            try:
                data, client = self._udp.recvfrom(65535)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            self.queries.append(query)
            reply = self.reply_to(query, tcp=False)
            if reply is not None:
                try:
                    self._udp.sendto(reply.to_wire(), client)
                except OSError:
                    return

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while True:
                    header = conn.recv(2, socket.MSG_WAITALL)
                    if len(header) < 2:
                        return
                    data = conn.recv(int.from_bytes(header, "big"), socket.MSG_WAITALL)
                    query = dns.message.from_wire(data)
                    self.tcp_queries.append(query)
                    reply = self.reply_to(query, tcp=True)
                    if reply is None:
                        continue
                    wire = reply.to_wire()
                    conn.sendall(len(wire).to_bytes(2, "big") + wire)
            except Exception:
                return

    def close(self) -> None:
        for sock in (self._udp, self._tcp):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
