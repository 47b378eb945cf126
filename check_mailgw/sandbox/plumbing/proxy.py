"""A small HTTP CONNECT proxy on loopback, for the tests and benchmarks of the proxy paths.

It tunnels only to loopback addresses, so nothing sent through it can leave the machine.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import select
import socket
import socketserver
import threading
from typing import Any

from check_mailgw.sandbox.plumbing.background import RunningServer

MAX_HEAD = 16384
CLIENT_TIMEOUT = 10.0  # for the request head; the relay itself waits as long as both sides live
RELAY_CHUNK = 65536
JOIN_TIMEOUT = 5.0
REASONS = {
    200: "Connection established",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ProxyServer(socketserver.TCPServer):
    """Accepts clients, one thread each, and knows every socket it must close when stopping."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], require_auth: tuple[str, str] | None,
                 refuse: int | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.require_auth = require_auth
        self.refuse = refuse
        self.tunnels: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        super().__init__(address, TunnelHandler)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked here, in the accepting thread, so that stop() cannot miss a fresh client.
        self.track(request)
        thread = threading.Thread(target=self._serve, args=(request, client_address),
                                  name="sandbox-proxy-client", daemon=True)
        with self._lock:
            self._threads = [known for known in self._threads if known.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # a client or target that went away: its own business
        finally:
            self.untrack(request)
            self.shutdown_request(request)

    def cut_everything(self) -> None:
        """Wake every thread blocked on a socket, then wait for them to finish."""
        self.stopping.set()
        with self._lock:
            sockets, threads = list(self._open), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)


class TunnelHandler(socketserver.BaseRequestHandler):
    """One client: read its CONNECT, judge it, then relay bytes both ways."""

    server: ProxyServer
    request: socket.socket

    def handle(self) -> None:
        self.request.settimeout(CLIENT_TIMEOUT)
        head, early = read_request_head(self.request)
        if head is None:
            return
        lines = head.decode("latin-1").replace("\r\n", "\n").strip("\n").split("\n")
        parts = lines[0].split()
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self.answer(400)
        elif parts[0].upper() != "CONNECT":
            self.answer(405)
        elif self.server.refuse is not None:
            self.answer(self.server.refuse)
        elif not self.authorised(headers.get("proxy-authorization", "")):
            self.answer(407)
        else:
            self.tunnel(parts[1], early)

    def authorised(self, given: str) -> bool:
        if self.server.require_auth is None:
            return True
        user, password = self.server.require_auth
        expected = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "basic" and value.strip() == expected

    def tunnel(self, authority: str, early: bytes) -> None:
        target = loopback_target(authority)
        if target is None:
            self.answer(403)
            return
        family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        self.server.track(upstream)
        try:
            upstream.settimeout(CLIENT_TIMEOUT)
            try:
                upstream.connect(target)
            except OSError:
                self.answer(502)
                return
            self.server.tunnels.append(authority)
            self.answer(200)
            if early:
                upstream.sendall(early)
            relay(self.request, upstream, self.server.stopping)
        finally:
            self.server.untrack(upstream)
            upstream.close()

    def answer(self, status: int) -> None:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Refused')}"]
        if status == 407:
            lines.append('Proxy-Authenticate: Basic realm="check_mailgw sandbox"')
        if status != 200:
            lines += ["Content-Length: 0", "Connection: close"]
        self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def read_request_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head, and whatever the client sent after it already."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None, b""
        if not chunk or len(data) > MAX_HEAD:
            return None, b""
        data += chunk
    head, _, early = data.partition(b"\r\n\r\n")
    return head, early


def loopback_target(authority: str) -> tuple[str, int] | None:
    """(address, port) for '127.0.0.1:443' or '[::1]:443'; None for anything off loopback."""
    host, _, port = authority.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: this proxy resolves nothing, so it can reach nothing outside
    if not address.is_loopback or not port.isdigit():
        return None
    return str(address), int(port)


def relay(client: socket.socket, upstream: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or the proxy stops)."""
    client.settimeout(None)
    upstream.settimeout(None)
    peers = {client: upstream, upstream: client}
    while not stopping.is_set():
        readable, _, _ = select.select(list(peers), [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(RELAY_CHUNK)
            except OSError:
                return
            if not data:
                return
            try:
                peers[sock].sendall(data)
            except OSError:
                return


class ConnectProxy(RunningServer):
    """A running sandbox proxy: its URL, and the tunnels it opened ("host:port")."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 require_auth: tuple[str, str] | None = None, refuse: int | None = None) -> None:
        self._server = ProxyServer((host, port), require_auth, refuse)
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="sandbox-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def tunnels(self) -> list[str]:
        return self._server.tunnels

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._thread.join()
        self._server.cut_everything()
        self._server.server_close()


def start_proxy(host: str = "127.0.0.1", port: int = 0, *,
                require_auth: tuple[str, str] | None = None,
                refuse: int | None = None) -> ConnectProxy:
    """Starts a CONNECT proxy; refuse=407/403/502 answers every CONNECT with that status."""
    return ConnectProxy(host, port, require_auth=require_auth, refuse=refuse)
