"""``dnscock host-setup``: what the host's resolvers and Docker need in order to ask dnscock, written or removed.

For the resolvers that have no API (systemd-resolved has one: see
``-host-resolver``), it prints, for the running configuration (the same
flags, env vars and config file as the server), what to add; with
``--apply`` it writes it, and with ``--remove`` it removes exactly what it
wrote, and the directories it made for it (when nothing else has been put
in them meanwhile), so that the tree is byte for byte as before. It never
edits /etc/resolv.conf. Targets:

* ``resolved``: a drop-in, ``/etc/systemd/resolved.conf.d/dnscock.conf``
  (``DNS=IP:PORT``, ``Domains=~<domain>``), for those who prefer a file;
* ``networkmanager``: NetworkManager's dnsmasq, ``/etc/NetworkManager/dnsmasq.d/dnscock.conf``
  (``server=/<domain>/IP#PORT``);
* ``dnsmasq``: plain dnsmasq, ``/etc/dnsmasq.d/dnscock.conf`` (the same line);
* ``macos``: ``/etc/resolver/<domain>`` (``nameserver`` and ``port`` lines);
* ``docker``: ``/etc/docker/daemon.json``'s ``dns`` and ``dns-search``, so
  that containers ask dnscock (at the default bridge's gateway, port 53).

Every file it writes begins with a line that marks it as dnscock's; a file
without it is never touched. daemon.json is shared with other settings: its
original bytes are kept beside it (``daemon.json.dnscock``) and put back by
``--remove``. Applying twice changes nothing; ``--root DIR`` works on a tree
under DIR instead of /.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dnscock.addresses import Address
from dnscock.config import load_config
from dnscock.errors import DnscockError
from dnscock.listeners import BRIDGE

MARK = "# Written by dnscock host-setup; `dnscock host-setup --remove` removes it."
# The second line of a file whose directories --apply made: --remove takes them away too (when empty).
MADE = "# host-setup made its directories: "
TARGETS = ("resolved", "networkmanager", "dnsmasq", "macos", "docker")


class HostSetupError(DnscockError):
    pass


@dataclass(frozen=True)
class Plan:
    """One target: where, what, and whether this host looks like it has that resolver."""

    target: str
    path: str  # absolute, as on the host
    content: str
    present: str  # a directory whose existence says the target is there
    json_keys: tuple[str, ...] = ()  # daemon.json: the keys merged in, not a whole file


def plans(domain: str, host: Address, docker_address: str | None) -> list[Plan]:
    """What each target needs, for dnscock answering ``domain`` at ``host`` (and containers at ``docker_address``)."""
    server = f"{host.host}:{host.port}" if ":" not in host.host else f"[{host.host}]:{host.port}"
    listing = [
        Plan("resolved", "/etc/systemd/resolved.conf.d/dnscock.conf",
             f"{MARK}\n[Resolve]\nDNS={server}\nDomains=~{domain}\n", "/etc/systemd"),
        Plan("networkmanager", "/etc/NetworkManager/dnsmasq.d/dnscock.conf",
             f"{MARK}\nserver=/{domain}/{host.host}#{host.port}\n", "/etc/NetworkManager"),
        Plan("dnsmasq", "/etc/dnsmasq.d/dnscock.conf", f"{MARK}\nserver=/{domain}/{host.host}#{host.port}\n",
             "/etc/dnsmasq.d"),
        Plan("macos", f"/etc/resolver/{domain}", f"{MARK}\nnameserver {host.host}\nport {host.port}\n",
             "/etc/resolver"),
    ]
    if docker_address is not None:
        listing.append(Plan("docker", "/etc/docker/daemon.json",
                            json.dumps({"dns": [docker_address], "dns-search": [domain]}, indent=2) + "\n",
                            "/etc/docker", json_keys=("dns", "dns-search")))
    return listing


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def apply(plan: Plan, root: Path) -> str:
    """Writes the target's file (or merges daemon.json's keys); returns what happened, for the user."""
    path = _under(root, plan.path)
    if plan.json_keys:
        return _apply_json(plan, path, root)
    made: list[str] = []
    if path.exists():
        current = path.read_text(errors="replace")
        made, content = _split_made(current)
        if content == plan.content:
            return f"{plan.path}: unchanged"
        if not current.startswith(MARK):
            raise HostSetupError(f"{plan.path} exists and is not dnscock's: not touched (remove it or merge by hand)")
    made += _make_parents(path, root)
    first, _, rest = plan.content.partition("\n")
    path.write_text(f"{first}\n{MADE}{' '.join(made)}\n{rest}" if made else plan.content)
    return f"{plan.path}: written"


def _make_parents(path: Path, root: Path) -> list[str]:
    """Makes the missing directories above ``path``; returns them (outermost first), as paths on the host."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
    return ["/" + str(directory.relative_to(root)) for directory in reversed(missing)]


def _split_made(text: str) -> tuple[list[str], str]:
    """A file --apply wrote: (the directories it made for it, the file without that line)."""
    lines = text.split("\n", 2)
    if len(lines) < 2 or not lines[1].startswith(MADE):
        return [], text
    return lines[1][len(MADE):].split(), "\n".join(lines[:1] + lines[2:])


def _remove_made(made: Sequence[str], root: Path) -> None:
    """The directories --apply made, innermost first, each only when nothing else has been put in it."""
    for directory in reversed(made):
        try:
            _under(root, directory).rmdir()
        except OSError:  # not empty (somebody else's file is there now), or gone
            return


def remove(plan: Plan, root: Path) -> str:
    path = _under(root, plan.path)
    if plan.json_keys:
        return _remove_json(path, plan, root)
    if not path.exists():
        return f"{plan.path}: not there"
    current = path.read_text(errors="replace")
    if not current.startswith(MARK):
        return f"{plan.path}: not dnscock's, left alone"
    path.unlink()
    _remove_made(_split_made(current)[0], root)
    return f"{plan.path}: removed"


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".dnscock")


def _apply_json(plan: Plan, path: Path, root: Path) -> str:
    wanted = json.loads(plan.content)
    backup = _backup(path)
    original = path.read_bytes() if path.exists() else None
    if backup.exists() and original is not None:
        current = json.loads(original or b"{}")
        if all(current.get(key) == wanted[key] for key in plan.json_keys):
            return f"{plan.path}: unchanged"
    try:
        settings = json.loads(original) if original else {}
    except ValueError as error:
        raise HostSetupError(f"{plan.path} is not JSON ({error}): not touched") from None
    if not isinstance(settings, dict):
        raise HostSetupError(f"{plan.path} is not a JSON object: not touched")
    if not backup.exists():  # the original bytes, or that there was no file, kept for --remove
        made = _make_parents(path, root)
        backup.write_text(json.dumps({"existed": original is not None,
                                      "original": original.decode() if original is not None else None,
                                      "made": made}))
    settings.update(wanted)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return f"{plan.path}: {', '.join(plan.json_keys)} set (restart dockerd to use them)"


def _remove_json(path: Path, plan: Plan, root: Path) -> str:
    backup = _backup(path)
    if not backup.exists():
        return f"{plan.path}: not changed by dnscock"
    kept = json.loads(backup.read_text())
    if kept["existed"]:
        path.write_text(kept["original"])
    else:
        path.unlink(missing_ok=True)
    backup.unlink()
    _remove_made(kept.get("made") or (), root)
    return f"{plan.path}: restored as it was"


def _host_address(listen: Address) -> Address:
    """Where the host's resolvers ask dnscock: the -dns address, loopback for a wildcard one."""
    return listen.reachable()


def _docker_address(listen: Address, given: str | None, engine_url: str) -> tuple[str | None, str]:
    """(the address containers ask, or None; why not) for daemon.json, whose ``dns`` takes no port."""
    if listen.port != 53:
        return None, f"containers ask port 53 only, dnscock listens on {listen.port} (-dns)"
    if given:
        return given, ""
    if not listen.is_wildcard and not listen.reachable().host.startswith("127.") and listen.host != "::1":
        return listen.host, ""
    return _bridge_gateway(engine_url)


def _bridge_gateway(engine_url: str) -> tuple[str | None, str]:
    """(the IPv4 gateway of the engine's default bridge, or None; why not)."""
    try:
        from dnscock.engine import EngineClient

        client = EngineClient(engine_url)
        try:
            configs = (client.default_bridge().get("IPAM") or {}).get("Config") or []
        finally:
            client.close()
    except Exception as error:  # the engine's reasons are many: any of them means "give --address"
        return None, f"cannot read the default bridge's gateway from {engine_url} ({error}): give --address"
    gateways = [str(config["Gateway"]) for config in configs if config.get("Gateway") and ":" not in config["Gateway"]]
    if not gateways:
        return None, "the default bridge has no IPv4 gateway: give --address"
    return gateways[0], ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnscock host-setup", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--target", action="append", choices=TARGETS,
                        help="a resolver to set up (repeatable; default: every one this host seems to have)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="write the files")
    mode.add_argument("--remove", action="store_true", help="remove what --apply wrote")
    parser.add_argument("--root", default="/", type=Path, help="work on the tree under this directory (default: /)")
    parser.add_argument("--address", help="the address containers reach dnscock at (daemon.json; default: the "
                        "-dns address when specific, else the default bridge's gateway)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Its own options, and the server's (flags, env vars, config file) for the rest.
    args, server_options = _parser().parse_known_args(argv)
    config = load_config(server_options)
    listen = config.listen
    if listen.host == BRIDGE:  # -dns=bridge: where the server will listen is the default bridge's gateway
        gateway, problem = (args.address, "") if args.address else _bridge_gateway(config.docker_url)
        if gateway is None:
            print(f"dnscock host-setup: -dns=bridge: {problem}", file=sys.stderr)
            return 1
        listen = Address(gateway, listen.port)
    docker_address, docker_problem = _docker_address(listen, args.address, config.docker_url)
    listing = plans(config.zone, _host_address(listen), docker_address)
    chosen = [plan for plan in listing if (plan.target in args.target if args.target else
                                           not (args.apply or args.remove)
                                           or _under(args.root, plan.present).exists())]
    if args.target and "docker" in args.target and docker_address is None:
        print(f"dnscock host-setup: docker: {docker_problem}", file=sys.stderr)
        return 1
    if not args.apply and not args.remove:
        for plan in chosen:
            what = f"merge into {plan.path}" if plan.json_keys else plan.path
            print(f"# {plan.target}: {what}\n{plan.content}")
        if docker_address is None:
            print(f"# docker: nothing, {docker_problem}")
        return 0
    status = 0
    for plan in chosen:
        try:
            print(f"{plan.target}: {apply(plan, args.root) if args.apply else remove(plan, args.root)}")
        except (HostSetupError, OSError) as error:
            print(f"dnscock host-setup: {plan.target}: {error}", file=sys.stderr)
            status = 1
    return status
