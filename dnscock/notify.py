"""systemd's service notifications (``Type=notify``): READY, STOPPING and STATUS lines, sent to ``$NOTIFY_SOCKET``.

The protocol is one datagram per message on the unix socket systemd names
in ``$NOTIFY_SOCKET`` (``@`` in front for the abstract namespace):
``READY=1`` once dnscock listens and has synced with its engines,
``STOPPING=1`` on the way out, ``STATUS=...`` a line ``systemctl status``
shows. No library is needed. Without ``$NOTIFY_SOCKET`` nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("dnscock.notify")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as error:
            log.debug("cannot notify systemd at %r: %s", self.address, error)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """A new STATUS line, when it differs from the last one."""
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")
