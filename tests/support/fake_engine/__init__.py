"""A fake Docker Engine API server on a unix socket, for tests and benchmarks with many containers.

It answers the few endpoints dnscock uses, in the JSON shapes of Docker
20.10 (API 1.41), for N running containers made up deterministically
(``fixtures``), optionally as the manager of a made-up two-node swarm
(``swarm``). ``GET /events`` streams, one JSON object per line, until the
client leaves or the server stops (``since`` and ``until`` are accepted and
ignored, nothing is replayed). Without the swarm mode, ``/info`` says the
engine is in no swarm and the swarm's listings answer 503.

The parts:

- ``fixtures``: the made-up containers, images, bridge network, ``/version``
  and ``/info`` documents, container events;
- ``swarm``: the made-up swarm (services, tasks, nodes, overlay networks);
- ``filters``: the API's query parameters and filter rules;
- ``protocol``: HTTP/1.1 requests and responses as bytes;
- ``routes``: what each endpoint answers;
- ``server``: the asyncio server on the unix socket;
- ``engine``: ``FakeEngine``, the table and event hub that ties them together;
- ``process``: the fake engine in a child process, for those who need it apart;
- ``__main__``: the command line (``python -m tests.support.fake_engine``).

From Python::

    engine = FakeEngine("/tmp/docker.sock", containers=50)
    engine.start()
    added = engine.add_container()          # emits "start" on every /events stream
    engine.remove_container(added.id)       # emits "die", "stop", "destroy"
    engine.stop()
"""

from tests.support.fake_engine.engine import FakeEngine
from tests.support.fake_engine.fixtures import PATH_ENV, FakeContainer, Image, container_ip, make_image
from tests.support.fake_engine.process import FakeEngineProcess
from tests.support.fake_engine.swarm import PUBLISHING_EVERY, FakeSwarm, SwarmTask

__all__ = ["PATH_ENV", "PUBLISHING_EVERY", "FakeContainer", "FakeEngine", "FakeEngineProcess", "FakeSwarm", "Image",
           "SwarmTask", "container_ip", "make_image"]
