"""-host-resolver without systemd-resolved: auto does nothing but say so; jeepney is loaded only when it is on.

The runs with a real resolved are in tests/docker/test_host_resolver.py.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.dnscock_process import ROOT, rcode

NO_BUS = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/dnscock-test-bus"}
NO_ENGINE = "unix:///nonexistent/docker.sock"


def test_auto_without_a_system_bus_says_so_once_and_serves(start_dnscock, upstream):
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-host-resolver=auto",
                            env=NO_BUS)
    line = dnscock.wait_for_log(r"-host-resolver=auto: no system bus \(.*\): not registering with systemd-resolved")
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"
    assert sum("dnscock.resolved" in entry for entry in dnscock.lines) == 1, line.string


def test_a_bad_mode_or_address_is_a_one_line_error():
    for argument, message in (
            ("-host-resolver=networkd", "argument -host-resolver/--host-resolver: 'networkd' is not none, resolved "
                                        "or auto"),
            ("-host-resolver-address=10.0.0.300", "argument -host-resolver-address/--host-resolver-address: "
                                                  "'10.0.0.300' is not an IP address (with an optional /prefix)")):
        result = subprocess.run([sys.executable, "-m", "dnscock", "-dns=127.0.0.1:0", argument], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2
        assert result.stderr.splitlines()[-1] == f"dnscock: error: {message}"


def test_jeepney_is_not_imported_unless_registration_is_on():
    code = ("from gevent import monkey; monkey.patch_all(); import sys; import dnscock.app, dnscock.http_api; "
            "print('jeepney' in sys.modules, 'dnscock.resolved' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["False", "False"], result.stderr
