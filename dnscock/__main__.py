"""Entry point: ``python -m dnscock`` (and the ``dnscock`` console script).

gevent's monkey-patching comes first, before anything imports ``socket``,
so that docker-py's blocking calls yield to the DNS greenlets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from dnscock.app import main  # noqa: E402


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
