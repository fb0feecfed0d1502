"""A tiny authoritative nameserver on loopback: one zone, a few records, for resolvers to ask.

    signed = FakeAuthority("signed.test", "a A 192.0.2.1")
    ns = FakeAuthority("docker", "@ NS ns.dnscock", "ns.dnscock A 127.53.0.1", host="127.53.0.1", port=53)

Records are zone-file lines (``owner [ttl] type rdata``), owners relative to the zone
unless they end in a dot, ``@`` for the apex. The zone gets an SOA unless one is given.
Replies carry the AA bit, and say what an authoritative server says:

* the records of the name and type asked, with the addresses of in-zone NS targets
  (glue) in the additional section;
* NODATA (NOERROR, the SOA in the authority section) for a name that exists, if only as
  the parent of another, but has no records of the type asked;
* NXDOMAIN with the SOA for a name of the zone that does not exist;
* REFUSED for a name outside the zone.

It is a ``FakeUpstream`` with another way to answer: it records arrivals the same way
(``arrivals``, ``wait_for``), and its ``mode`` may make it silent, FORMERR and so on.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.support.fake_upstream import FakeUpstream


class FakeAuthority(FakeUpstream):
    def __init__(self, zone: str, *records: str, ttl: int = 60, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = dns.name.from_text(zone)
        self.rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for line in records:
            self.add(line, ttl)
        if (self.zone, dns.rdatatype.SOA) not in self.rrsets:
            self.add(f"@ SOA ns.{self.zone} hostmaster.{self.zone} 1 3600 600 86400 {ttl}", ttl)
        super().__init__("answer", ttl=ttl, host=host, port=port)

    def add(self, line: str, ttl: int | None = None) -> None:
        """Adds one record (``owner [ttl] type rdata``); may be called while serving."""
        owner, *fields = line.split()
        record_ttl = ttl if ttl is not None else self.ttl
        if fields and fields[0].isdigit():
            record_ttl = int(fields.pop(0))
        if len(fields) < 2:
            raise ValueError(f"not a record: {line!r} (owner [ttl] type rdata)")
        name = self.zone if owner == "@" else dns.name.from_text(owner, origin=self.zone)
        rdtype = dns.rdatatype.from_text(fields[0])
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, " ".join(fields[1:]),
                                     origin=self.zone, relativize=False)
        rrset = self.rrsets.setdefault((name, rdtype), dns.rrset.RRset(name, dns.rdataclass.IN, rdtype))
        rrset.add(rdata, record_ttl)

    def reply_to_question(self, query: dns.message.Message, reply: dns.message.Message) -> dns.message.Message:
        if not query.question:
            return reply
        question = query.question[0]
        if not question.name.is_subdomain(self.zone):
            reply.set_rcode(dns.rcode.REFUSED)
            return reply
        reply.flags |= dns.flags.AA
        found = self.rrsets.get((question.name, question.rdtype))
        if found is not None:
            reply.answer.append(found)
            reply.additional.extend(self._glue(found))
            return reply
        # A name with no records of its own but names below it (an empty non-terminal) exists too.
        if not any(name.is_subdomain(question.name) for name, _ in list(self.rrsets)):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority.append(self.rrsets[(self.zone, dns.rdatatype.SOA)])
        return reply

    def _glue(self, rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        if rrset.rdtype != dns.rdatatype.NS:
            return []
        return [self.rrsets[(rdata.target, rdtype)] for rdata in rrset
                for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) if (rdata.target, rdtype) in self.rrsets]
