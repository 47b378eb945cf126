"""A small HTTP/1.1 server over TLS on loopback, for the sandbox's cloud services.

It runs on a BackgroundLoop behind a TcpService, so stopping it closes every
connection and TLS transport at once, keep-alive ones included.
"""

import asyncio
import http.client
import io
import ipaddress
import logging
import ssl
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol

from check_mailgw.sandbox.plumbing.background import (
    ProtocolFactory,
    RunningServer,
    listen_on,
    serve_tcp,
)
from check_mailgw.sandbox.plumbing.http_answers import HttpAnswer, HttpRequest

log = logging.getLogger(__name__)

MAX_HEAD = 65_536
MAX_BODY = 1_048_576
# A client keeping a connection open without a request is dropped after this.
IDLE_TIMEOUT = 60.0


class HttpApp(Protocol):
    """Whatever answers the requests: the sandbox's identity provider and Graph."""

    async def answer(self, request: HttpRequest) -> HttpAnswer: ...


class HttpsServer(RunningServer):
    """A running HTTPS listener: where it listens and how to stop it."""

    def __init__(self, host: str, port: int, stop: Callable[[], None]) -> None:
        self.host = host
        self.port = port
        self._stop = stop
        self._stopped = False

    @property
    def base_url(self) -> str:
        """https://host:port, with an IPv6 literal in brackets."""
        return base_url(self.host, self.port)

    def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self._stop()

    def __repr__(self) -> str:
        return f"<HttpsServer {self.base_url}>"


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    return f"https://{shown}:{port}"


def start_https(
    make_app: Callable[[str], HttpApp],
    *,
    context: ssl.SSLContext,
    host: str = "127.0.0.1",
    port: int = 0,
) -> HttpsServer:
    """Listen on an IP literal (port 0: any free port); make_app gets the server's base URL."""
    sock = listen_on(host, port)
    bound_port: int = sock.getsockname()[1]

    def setup(loop: asyncio.AbstractEventLoop) -> tuple[ProtocolFactory, ssl.SSLContext]:
        app = make_app(base_url(host, bound_port))

        def connection() -> asyncio.Protocol:
            reader = asyncio.StreamReader(limit=MAX_HEAD)
            return asyncio.StreamReaderProtocol(
                reader, lambda r, w: _serve_connection(app, r, w)
            )

        return connection, context

    stop = serve_tcp(f"sandbox-https-{bound_port}", sock, setup)
    return HttpsServer(host, bound_port, stop)


async def _serve_connection(
    app: HttpApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            request = await _read_request(reader)
            if request is None:
                break
            if isinstance(request, HttpAnswer):
                writer.write(_render(request, "GET", keep_alive=False))
                await writer.drain()
                break
            try:
                answer = await app.answer(request)
            except Exception:
                log.exception("sandbox HTTPS request %s %s failed", request.method, request.path)
                answer = HttpAnswer(500)
            keep_alive = _keeps_alive(request)
            writer.write(_render(answer, request.method, keep_alive))
            await writer.drain()
            if not keep_alive:
                break
    except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
        # A client that left, or idled out: its own business.
        pass
    except asyncio.CancelledError:
        # The server stops. Ending quietly, as this is the connection's own task:
        # Python 3.11's stream callback logs a cancelled one as an error.
        pass
    finally:
        writer.close()


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | HttpAnswer | None:
    """The next request; an answer if it cannot be served; None once the client is done."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise
        return None
    except asyncio.LimitOverrunError:
        return HttpAnswer(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
    request_line, _, header_block = head.partition(b"\r\n")
    parts = request_line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return HttpAnswer(HTTPStatus.BAD_REQUEST)
    method, target, version = parts
    headers = http.client.parse_headers(io.BytesIO(header_block))
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return HttpAnswer(HTTPStatus.LENGTH_REQUIRED)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        return HttpAnswer(HTTPStatus.BAD_REQUEST)
    if not 0 <= length <= MAX_BODY:
        return HttpAnswer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return HttpRequest(method.upper(), path, query, headers, body, version)


def _keeps_alive(request: HttpRequest) -> bool:
    connection = (request.header("Connection") or "").lower()
    # HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps alive unless asked not to.
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


def _render(answer: HttpAnswer, method: str, keep_alive: bool) -> bytes:
    status = HTTPStatus(answer.status)
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Date: {formatdate(usegmt=True)}",
        "Cache-Control: no-store, no-cache",
        f"Content-Length: {len(answer.body)}",
    ]
    if answer.content_type:
        lines.append(f"Content-Type: {answer.content_type}")
    lines += [f"{name}: {value}" for name, value in answer.headers]
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    # One write per answer: no small segments waiting on delayed ACKs.
    return head if method == "HEAD" else head + answer.body
