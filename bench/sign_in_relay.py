"""A CONNECT proxy on loopback that sees the requests inside its tunnels, and may delay them.

The check reaches the sandbox's identity provider through it with --proxy. It opens the TLS
of each tunnel with a certificate of the sandbox CA (which the check trusts through
--ca-file), writes down each request's method and path (never its query, headers or body,
which hold the secret), and passes the bytes on over TLS to the sandbox. With a delay,
every chunk is held back that long in each direction: a distant sign-in host, on one
machine. Tunnels go only to loopback addresses.

Shared by the benchmarks here and tests/test_discovery_cache.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from check_mailgw.sandbox.plumbing.ca import SandboxCA

MAX_HEAD = 16384


@dataclass
class RequestLog:
    """The requests of one tunnel, found in the client's bytes as they pass."""

    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    _buffer: bytes = b""
    _body_left: int = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._body_left:
                taken = min(self._body_left, len(self._buffer))
                self._buffer, self._body_left = self._buffer[taken:], self._body_left - taken
                if self._body_left:
                    return
            head, separator, rest = self._buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            request_line, *headers = head.decode("latin-1").split("\r\n")
            method, target = [*request_line.split(" "), "", ""][:2]
            self.requests.append((method, urlsplit(target).path))
            lengths = [value for name, _, value in (line.partition(":") for line in headers)
                       if name.strip().lower() == "content-length"]
            self._buffer, self._body_left = rest, int(lengths[0]) if lengths else 0


class SignInRelay:
    """A TLS-opening CONNECT proxy on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, ca: SandboxCA, delay: float = 0.0) -> None:
        self.delay = delay
        self.server_context = ca.server_context()
        self.client_context = ca.client_context()
        self.tunnels: list[RequestLog] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[tuple[str, str]]:
        """Every request seen so far, tunnel after tunnel."""
        return [request for tunnel in self.tunnels for request in tunnel.requests]

    def clear(self) -> None:
        self.tunnels.clear()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._tunnel, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError,
                                 asyncio.LimitOverrunError, asyncio.CancelledError):
            head = await reader.readuntil(b"\r\n\r\n")
            parts = head[:MAX_HEAD].decode("latin-1").split("\r\n")[0].split(" ")
            target = urlsplit(f"//{parts[1]}") if len(parts) == 3 else None
            if parts[0] != "CONNECT" or target is None or not target.port or \
                    not ipaddress.ip_address(target.hostname or "0.0.0.0").is_loopback:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.server_context)
            upstream_reader, upstream_writer = await asyncio.open_connection(
                target.hostname, target.port, ssl=self.client_context,
                server_hostname=target.hostname)
            log = RequestLog()
            self.tunnels.append(log)
            await asyncio.gather(self._pipe(reader, upstream_writer, log),
                                 self._pipe(upstream_reader, writer, None))
        writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    log: RequestLog | None) -> None:
        # Chunks are delivered in order, each `delay` after it arrived: a one-way latency.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not chunk:
                    with contextlib.suppress(OSError):
                        writer.close()
                    return
                writer.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        sender = asyncio.ensure_future(deliver())
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                if log is not None:
                    log.feed(chunk)
                queue.put_nowait((time.monotonic() + self.delay, chunk))
        queue.put_nowait((time.monotonic() + self.delay, b""))
        await sender

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(5)
        self.loop.close()

    def __enter__(self) -> SignInRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
