"""dnscock: a DNS server for Docker hosts.

It keeps a table of the running containers, fed by the Docker Engine API,
answers ``<anything>.<container>.<image>.<environment>.<domain>`` from it and
forwards every other query to an upstream nameserver.
"""

__version__ = "0.1.0"
