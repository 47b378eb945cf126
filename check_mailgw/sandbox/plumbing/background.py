"""Event loops in threads, and TCP listeners that can be stopped without leaving anything open."""

import asyncio
import contextlib
import errno
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

# Long enough for any loopback handshake, short enough not to pile up stuck ones.
HANDSHAKE_TIMEOUT = 10.0


def listen_on(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A non-blocking TCP socket listening on an IP literal."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Fixed ports must be reusable right after a previous run stopped.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class RunningServer:
    """A server that runs until stop(); as a context manager it stops on leaving."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BackgroundLoop:
    """An asyncio event loop running in a daemon thread, owned by one sandbox server."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel whatever still runs, stop the loop and wait for its thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(_cancel_remaining_tasks())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await settle()


async def settle(rounds: int = 5) -> None:
    """Let the loop run the callbacks that closing transports schedule."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class TcpService:
    """Accepts and tracks TCP connections, so stopping leaves no socket or handshake behind."""

    def __init__(
        self,
        background: BackgroundLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        # Every accepted socket, from accept() on: a connection cut during its
        # handshake, or before its task ever ran, must still be closed.
        self._accepted: set[socket.socket] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.Transport] = set()
        background.run(self._start())

    async def _start(self) -> None:
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        loop = asyncio.get_running_loop()
        self._accepted = {conn for conn in self._accepted if conn.fileno() != -1}
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                # Nothing left to accept, or a client that gave up in the queue.
                return
            self._accepted.add(conn)
            # Replies are small writes; waiting for ACKs would add 40 ms to each.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        handshake_timeout = HANDSHAKE_TIMEOUT if self._ssl_context else None
        try:
            transport, _ = await loop.connect_accepted_socket(
                self._protocol_factory,
                conn,
                ssl=self._ssl_context,
                ssl_handshake_timeout=handshake_timeout,
            )
        except OSError:
            # A failed handshake or a client that left early: its own business
            # (or the very point of a scenario), not the server's.
            conn.close()
            return
        self._transports = {known for known in self._transports if not known.is_closing()}
        self._transports.add(transport)

    async def aclose(self) -> None:
        """Stop listening and cut every connection (run on the service's loop)."""
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for transport in self._transports:
            # Python 3.11.2: an SSL transport closed twice has dropped its protocol
            # and abort() fails on it; later versions make that abort a no-op.
            with contextlib.suppress(AttributeError):
                transport.abort()
        self._transports.clear()
        await settle()
        for conn in self._accepted:
            conn.close()
        self._accepted.clear()


ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def serve_tcp(
    name: str,
    sock: socket.socket,
    setup: Callable[[asyncio.AbstractEventLoop], tuple[ProtocolFactory, ssl.SSLContext | None]],
) -> Callable[[], None]:
    """Serve a listening socket on an event loop of its own thread.

    setup gets that loop and gives the protocol factory and the TLS context (None: no TLS
    on accept). Returns the function that cuts every connection and ends the thread.
    """
    background = BackgroundLoop(name)
    try:
        factory, context = setup(background.loop)
        service = TcpService(background, sock, factory, ssl_context=context)
    except BaseException:
        sock.close()
        background.close()
        raise

    def stop() -> None:
        try:
            background.run(service.aclose())
        finally:
            background.close()

    return stop


class PortInUse(Exception):
    """A port the sandbox was told to listen on is taken."""

    def __init__(self, listener: str, host: str, port: int) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} ({listener}): address already in use "
            "(another mailgw-sandbox?): stop what listens there, or give another "
            "--port-base N (0 picks free ports)")


@contextlib.contextmanager
def listening(host: str, **ports: int) -> Iterator[None]:
    """Names the port taken when a listener on one of ports fails so (PortInUse)."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        for listener, port in ports.items():
            if port and _taken(host, port):
                raise PortInUse(listener, host, port) from error
        raise


def _taken(host: str, port: int) -> bool:
    try:
        listen_on(host, port).close()
    except OSError as error:
        return error.errno == errno.EADDRINUSE
    return False
