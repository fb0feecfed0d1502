# dnscock as a container. Build without a registry by passing a local base:
#   docker build --build-arg BASE=my/python:3.12 -t dnscock .
# Run it with the engine socket and, optionally, a config file mounted:
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v "$PWD/dnscock.conf:/etc/dnscock/dnscock.conf:ro" -p 53:53/udp -p 53:53/tcp dnscock
# To register with the host's systemd-resolved (-host-resolver, README "Use it from the
# host and from containers") it needs the host's network and system bus, a TUN device,
# CAP_NET_ADMIN and root inside:
#   docker run -d --network host --user 0 --cap-add NET_ADMIN --device /dev/net/tun \
#     -v /run/dbus/system_bus_socket:/run/dbus/system_bus_socket \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro dnscock -dns=127.0.0.1:5300 -host-resolver=resolved
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

# Dependencies in their own layer: a code change does not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

COPY dnscock/ dnscock/
# The config file to mount over: /etc/dnscock/dnscock.conf (read when present).
COPY conf/dnscock.conf /etc/dnscock/dnscock.conf

# Not root: Docker (20.10+) lets any user bind port 53 inside the container's own
# network namespace. Reading the engine socket needs its group: --group-add.
RUN useradd --system --uid 10053 --no-create-home --shell /usr/sbin/nologin dnscock
USER dnscock

EXPOSE 53/udp 53/tcp
# A real DNS query to the address dnscock listens on (slim images have no dig).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["python", "-m", "dnscock.healthcheck"]
# dnscock handles SIGTERM itself, so `docker stop` ends it at once.
ENTRYPOINT ["python", "-m", "dnscock"]
