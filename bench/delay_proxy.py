"""A TCP relay on loopback that delays every chunk: a distant server, on one machine.

It also counts, per connection, the times the client waited for the server: the
server's turns to speak (its greeting, each reply or batch of pipelined replies, the
TLS handshake's answer) that begin while the client still listens. A reply the client
does not wait for (to a QUIT sent just before closing) is not counted.

Shared by the benchmarks in this directory (run them as scripts: bench/ is on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass


@dataclass
class Conversation:
    """Who spoke last on one relayed connection, and how often the client waited."""

    waits: int = 0
    client_spoke_last: bool = True  # the server speaks first: its greeting is a wait
    client_closed: bool = False


class DelayProxy:
    """A TCP relay on 127.0.0.1 that holds every chunk back by a fixed delay."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.conversations: list[Conversation] = []  # one per finished connection
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.target_port)
        conversation = Conversation()
        with contextlib.suppress(asyncio.CancelledError):  # stop() ends idle relays
            await asyncio.gather(
                self._pipe(client_reader, server_writer, conversation, from_client=True),
                self._pipe(server_reader, client_writer, conversation, from_client=False))
        self.conversations.append(conversation)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    conversation: Conversation, *, from_client: bool) -> None:
        # Chunks are delivered in order, each DELAY after it arrived: a one-way latency.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                try:
                    await writer.drain()
                except ConnectionError:
                    return

        sender = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                # Seen as it arrives, before its delay: the order in which each side spoke.
                if from_client:
                    conversation.client_spoke_last = True
                elif conversation.client_spoke_last and not conversation.client_closed:
                    conversation.waits += 1
                    conversation.client_spoke_last = False
                queue.put_nowait((time.monotonic() + self.delay, chunk))
        except ConnectionError:
            pass
        if from_client:
            conversation.client_closed = True
        queue.put_nowait((time.monotonic() + self.delay, b""))
        await sender

    def stop(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(5)
