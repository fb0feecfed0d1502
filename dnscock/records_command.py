"""``python -m dnscock records``: the live table of a running dnscock, for humans (or ``--json``).

It asks the server's HTTP API (``GET /services``), so the server must run
with ``-http``. The address comes from ``--http ADDR``, else from the same
place as the server's own: ``DNSCOCK_HTTP`` or the config file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from dnscock.addresses import Address
from dnscock.config import load_config
from dnscock.values import parse_optional_listen

TIMEOUT = 5.0
COLUMNS = ("NAMES", "IMAGE", "IPS", "TTL", "ALIASES", "NETWORKS", "HEALTH", "ID")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnscock records", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--http", "-http", type=parse_optional_listen, metavar="ADDR",
                        help="dnscock's -http address (default: DNSCOCK_HTTP or the config file's 'http')")
    parser.add_argument("--json", "-json", action="store_true", help="print the services as JSON")
    return parser


def _server_address() -> Address | None:
    return load_config([]).http


def fetch_services(address: Address, timeout: float = TIMEOUT) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://{address.reachable()}/services", timeout=timeout) as response:
        return json.load(response)


def rows(services: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    def cell(values: Any) -> str:
        return ",".join(str(value) for value in values) if values else "-"

    table = []
    for service_id, service in services.items():
        short = service_id if service.get("Manual") else service_id[:12]
        if service.get("Proxy"):  # a proxy name: which app's label or variable asked for it, not an id
            short = "from " + cell(service["Proxy"].get("From"))
        table.append((
            cell(service.get("Names") or [service.get("Name", "")]),
            service.get("Image") or "-",
            cell(service.get("IPs")) if not service.get("Stopped") else "(stopped)",
            str(service.get("TTL", "")),
            cell(service.get("Aliases")),
            "(manual)" if service.get("Manual") else cell(service.get("Networks"))
            + (f" ({service['Kind']})" if service.get("Kind") not in (None, "container", "manual") else ""),
            service.get("Health") or "-",
            short,
        ))
    table.sort()
    return table


def format_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in [COLUMNS, *table]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    address = args.http or _server_address()
    if address is None:
        print("dnscock records: no HTTP address: give --http ADDR (the -http of the running dnscock)",
              file=sys.stderr)
        return 2
    try:
        services = fetch_services(address)
    except (OSError, urllib.error.URLError, ValueError) as error:
        print(f"dnscock records: cannot read http://{address}/services: {error}", file=sys.stderr)
        return 1
    text = json.dumps(services, indent=1) if args.json else format_table(rows(services))
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # piped into head: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
