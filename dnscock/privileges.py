"""``-user``: started as root (to bind port 53), continue as an ordinary user.

The switch happens once every listening socket is bound and before
anything talks to the Docker engine or a client: supplementary groups
first (those of the user in /etc/group, so membership of the ``docker``
group still opens the engine's socket), then the group, then the user.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd

from dnscock.errors import ConfigError

log = logging.getLogger("dnscock")


def resolve_user(spec: str) -> tuple[int, int, str | None]:
    """``name``, ``uid``, ``name:group`` or ``uid:gid`` -> (uid, gid, user name or None)."""
    user, _, group = spec.partition(":")
    name: str | None = None
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise ConfigError(f"-user: no user {user!r} on this system") from None
        uid, gid = int(user), int(user)
    else:
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"-user: no group {group!r} on this system") from None
    return uid, gid, name


def switch_user(spec: str) -> None:
    """Becomes the user ``spec`` for good; raises ConfigError when that cannot be done."""
    uid, gid, name = resolve_user(spec)
    if os.geteuid() != 0:
        if os.geteuid() == uid:
            return
        raise ConfigError(f"-user={spec}: only root can switch users (running as uid {os.geteuid()})")
    if name is not None:
        os.initgroups(name, gid)
    else:
        os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise ConfigError(f"-user={spec}: the switch to uid {uid} did not hold")
    log.info("running as uid %d, gid %d%s", uid, gid, f" ({name})" if name else "")
