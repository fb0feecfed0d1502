"""A records file changed while dnscock runs: read again within a second or two, broken then fixed, and SIGHUP."""

from __future__ import annotations

import os
import signal

import requests

from tests.conftest import NO_ENGINE

FOLLOW = 3.0  # seconds within which a changed file shows in the answers (dnscock looks once a second)


def addresses(reply) -> list[str]:
    return sorted(rr.address for rrset in reply.answer for rr in rrset if rrset.rdtype == 1)


def test_a_records_file_is_followed_rejected_whole_when_broken_and_read_at_once_on_sighup(start_dnscock, upstream,
                                                                                         tmp_path):
    path = tmp_path / "static.records"
    path.write_text("# one name\n10.7.0.1  printer.lan\n")
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", f"-records={path}",
                            "-http=127.0.0.1:0")
    assert dnscock.addresses("printer.lan") == ["10.7.0.1"]

    # Changed: picked up without a restart.
    path.write_text("10.7.0.1  printer.lan\nnas.lan 60 A 10.7.0.2\nfiles.lan CNAME nas.lan\n")
    dnscock.wait_for_answer("nas.lan", lambda reply: addresses(reply) == ["10.7.0.2"], timeout=FOLLOW)
    reply = dnscock.query("files.lan")  # a CNAME, and its target's address (RFC 1034 §4.3.2)
    assert [rrset.rdtype for rrset in reply.answer] == [5, 1] and reply.answer[1][0].address == "10.7.0.2"

    # Broken: rejected as a whole, one log line naming file:line, the previous version keeps serving.
    mark = len(dnscock.lines)
    path.write_text("10.7.0.1  printer.lan\nnas.lan 60 A 10.7.0.3\nscanner.lan A not-an-address\n")
    dnscock.wait_for_log(rf"records file rejected, its last version keeps serving: {path}:3: 'not-an-address'",
                         timeout=FOLLOW, start=mark)
    assert dnscock.addresses("nas.lan") == ["10.7.0.2"], "nothing half-loaded"
    assert "10.7.0.4" not in dnscock.addresses("scanner.lan")

    # Fixed: read again.
    path.write_text("10.7.0.1  printer.lan\nnas.lan 60 A 10.7.0.3\nscanner.lan A 10.7.0.4\n")
    dnscock.wait_for_answer("scanner.lan", lambda reply: addresses(reply) == ["10.7.0.4"], timeout=FOLLOW)
    assert dnscock.addresses("nas.lan") == ["10.7.0.3"]

    # SIGHUP reads it at once: a change the watcher cannot see (same size, inode and times) shows after it.
    stat = path.stat()
    path.write_text("10.7.0.1  printer.lan\nnas.lan 60 A 10.7.0.5\nscanner.lan A 10.7.0.4\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dnscock.addresses("nas.lan") == ["10.7.0.3"]
    mark = len(dnscock.lines)
    dnscock.process.send_signal(signal.SIGHUP)
    dnscock.wait_for_log(r"records file .* read again", start=mark)
    assert dnscock.addresses("nas.lan") == ["10.7.0.5"]

    services = requests.get(f"{dnscock.http_url}/services", timeout=5).json()
    assert sorted(service["Names"][0] for service in services.values() if service["Kind"] == "static") == [
        "nas.lan", "printer.lan", "scanner.lan"]


def test_a_records_file_that_cannot_be_used_stops_dnscock_at_start_naming_the_line(tmp_path):
    import subprocess
    import sys

    from tests.support.dnscock_process import ROOT

    path = tmp_path / "bad.records"
    path.write_text("ok.lan A 10.0.0.1\nbad.lan MX\n")
    result = subprocess.run([sys.executable, "-m", "dnscock", f"-records={path}", "-dns=127.0.0.1:0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"dnscock: error: argument -records/--records: {path}:2: MX takes a "
                                     "preference and an exchange")
