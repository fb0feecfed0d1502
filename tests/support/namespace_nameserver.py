"""A FakeUpstream run as a program, for network namespaces the test process is not in (tests/support/resolved.py).

    python -m tests.support.namespace_nameserver [--host 127.0.0.1] [--port 0] [--answer-ip IP] [--ptr NAME]

It answers as FakeUpstream's ``answer`` mode does (A: ``--answer-ip``; NXDOMAIN for names
starting with ``nx``; others NOERROR, empty), and PTR questions with ``--ptr``. It prints
``listening HOST:PORT`` once serving, then ``query NAME TYPE udp|tcp`` for each query, and
ends when its stdin closes or on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import dns.message
import dns.rdatatype
import dns.rrset

from tests.support.fake_upstream import ANSWER_IP, FakeUpstream


class PrintingNameserver(FakeUpstream):
    def __init__(self, ptr: str, **kwargs) -> None:
        self.ptr = ptr
        self._print_lock = threading.Lock()
        super().__init__("answer", **kwargs)

    def _record(self, query: dns.message.Message, tcp: bool) -> None:
        super()._record(query, tcp)
        arrival = self.arrivals[-1]
        with self._print_lock:
            print(f"query {arrival.name or '-'} {arrival.rdtype or '-'} {'tcp' if tcp else 'udp'}", flush=True)

    def reply_to_question(self, query: dns.message.Message, reply: dns.message.Message) -> dns.message.Message:
        if query.question and query.question[0].rdtype == dns.rdatatype.PTR:
            reply.answer.append(dns.rrset.from_text(query.question[0].name, self.ttl, "IN", "PTR", self.ptr))
            return reply
        return super().reply_to_question(query, reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answer-ip", default=ANSWER_IP)
    parser.add_argument("--ptr", default="ptr.test.lan.")
    args = parser.parse_args()
    server = PrintingNameserver(args.ptr, answer_ip=args.answer_ip, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening {server.address}", flush=True)
    try:
        sys.stdin.read()  # until stdin closes
    finally:
        server.close()


if __name__ == "__main__":
    main()
