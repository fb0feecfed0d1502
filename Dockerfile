# dnscock as a container. Build without a registry by passing a local base:
#   docker build --build-arg BASE=my/python:3.12 -t dnscock .
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

EXPOSE 53/udp 53/tcp
ENTRYPOINT ["python", "-m", "dnscock"]
