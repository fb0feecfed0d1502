"""HTTP/1.1 as the fake engine speaks it: requests read from a connection's buffer, responses as bytes.

A request is its request line and headers up to the empty line (HTTP/1.0 or
1.1; lines may end in a bare LF; a ``Content-Length`` body is skipped
unread). Responses carry the headers a Docker 20.10 engine sends (Date, to
the second, and Content-Length unless the body is chunked already); an event
stream is chunked, one event a chunk.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple

from tests.support.fake_engine.fixtures import API_VERSION, ENGINE_VERSION, json_bytes

# Requests

MAX_HEAD = 64 * 1024  # bytes of request line and headers


class HttpError(Exception):
    """A request that cannot be read: answered with ``status`` and the message, then the connection is closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request(NamedTuple):
    method: str
    target: str
    keep_alive: bool  # False: answer with "Connection: close", then close


def parse_request(buffer: bytearray) -> tuple[Request, int] | None:
    """The first complete request in ``buffer`` and its size (head and body), or None until more arrives."""
    _skip_blank_lines(buffer)
    head_size, body_start = _find_blank_line(buffer)
    if head_size < 0:
        if len(buffer) > MAX_HEAD:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request line and headers too long")
        return None
    request_line, _, header_block = buffer[:head_size].decode("latin-1").partition("\n")
    method, target, version = _parse_request_line(request_line.rstrip("\r"))
    headers = _parse_headers(header_block.split("\n"))
    keep_alive = _keep_alive(version, headers.get("connection", ""))
    if "transfer-encoding" in headers:  # a chunked body: where it ends is not worth finding out
        return Request(method, target, keep_alive=False), body_start
    size = body_start + _content_length(headers)
    if len(buffer) < size:
        return None  # the body is still on its way
    return Request(method, target, keep_alive), size


def _skip_blank_lines(buffer: bytearray) -> None:
    """Drops line breaks before a request line (a server should ignore them, RFC 9112 section 2.2)."""
    blank = 0
    while blank < len(buffer) and buffer[blank] in b"\r\n":
        blank += 1
    del buffer[:blank]


def _find_blank_line(buffer: bytearray) -> tuple[int, int]:
    """(size of the head, where the body starts) at the first empty line; (-1, -1) while there is none.

    Lines end in CRLF, or in a bare LF as some clients write them: the head
    ends at the first LF followed by CRLF or by another LF.
    """
    crlf = buffer.find(b"\n\r\n", 0, MAX_HEAD)
    lf = buffer.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else MAX_HEAD)  # only one that comes first
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def _parse_request_line(line: str) -> tuple[str, str, str]:
    words = line.split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request line: {line[:100]!r}")
    method, target, version = words
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported HTTP version: {version[:20]!r}")
    return method, target, version


def _parse_headers(lines: list[str]) -> dict[str, str]:
    """Lower-case names to values (lines may end in CR); lines without a colon are ignored."""
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if "close" in tokens:
        return False
    return version == "HTTP/1.1" or "keep-alive" in tokens


def _content_length(headers: Mapping[str, str]) -> int:
    value = headers.get("content-length", "0")
    if not (value.isascii() and value.isdigit()):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length: {value[:20]!r}")
    return int(value)


# Responses

SERVER = f"Docker/{ENGINE_VERSION} (linux)"
PING_HEADERS = (("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"))
LAST_CHUNK = b"0\r\n\r\n"
CHUNKED = (("Transfer-Encoding", "chunked"),)
CHUNKING_SIZE = 2048  # Go's net/http sends a body this long or longer chunked, when no length is set


class Response(NamedTuple):
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # after the common ones, before Content-Length


class EventStream(NamedTuple):
    """The answer to ``GET /events``: a chunked stream of the events that pass ``filters``."""

    filters: dict[str, list[str]]


def json_response(status: HTTPStatus, document: Any) -> Response:
    return Response(status, json_bytes(document))


def response_bytes(response: Response, head_only: bool, close: bool) -> bytes:
    """The whole response (just its head for HEAD), with Content-Length unless its body is chunked already."""
    headers = response.headers if response.headers == CHUNKED else (
        *response.headers, ("Content-Length", str(len(response.body))))
    head = response_head(response.status, response.content_type, headers, close)
    return head if head_only else head + response.body


def response_head(
    status: HTTPStatus, content_type: str, headers: Iterable[tuple[str, str]], close: bool = False
) -> bytes:
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Api-Version: {API_VERSION}",
        f"Content-Type: {content_type}",
        f"Date: {_http_date(int(time.time()))}",
        "Docker-Experimental: false",
        "Ostype: linux",
        f"Server: {SERVER}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return formatdate(second, usegmt=True)


def event_chunk(line: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(line), line)


def listing_response(body: bytes) -> Response:
    """A listing as a 20.10 manager sends it: from CHUNKING_SIZE bytes on, chunked, the whole body in one chunk
    (Go's net/http, which gets the encoded JSON in one write)."""
    if len(body) >= CHUNKING_SIZE:
        return Response(HTTPStatus.OK, event_chunk(body) + LAST_CHUNK, headers=CHUNKED)
    return Response(HTTPStatus.OK, body)
