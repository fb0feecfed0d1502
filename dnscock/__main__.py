"""Entry point: ``python -m dnscock``. Patches the standard library for gevent first."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from dnscock.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
