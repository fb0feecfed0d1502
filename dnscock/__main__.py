"""Entry point: ``python -m dnscock`` (and the ``dnscock`` console script).

``python -m dnscock records ...`` prints the live table of a running server;
``python -m dnscock host-setup ...`` sets the host's resolvers up to ask it.

gevent's monkey-patching comes first, before anything imports ``socket``,
so that docker-py's blocking calls yield to the DNS greenlets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from dnscock.app import main  # noqa: E402


def run() -> None:
    if sys.argv[1:2] == ["records"]:
        from dnscock.records_command import main as records

        sys.exit(records(sys.argv[2:]))
    if sys.argv[1:2] == ["host-setup"]:
        from dnscock.host_setup import main as host_setup

        sys.exit(host_setup(sys.argv[2:]))
    sys.exit(main())


if __name__ == "__main__":
    run()
