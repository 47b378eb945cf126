"""Benchmark: the smtp chain against a distant gateway, versus a plain smtplib check.

Round trips are the real cost of a check against a server far away, so this puts
a delay proxy on loopback between the client and the sandbox's STARTTLS server
(every chunk is held back DELAY seconds in each direction) and times, in the same
run and process:

- baseline: what a straightforward smtplib check does (EHLO, STARTTLS, EHLO,
  login, MAIL, RCPT, RSET, QUIT, each waiting for its reply);
- check_mailgw: the smtp mode's chain (AUTH PLAIN with the initial response,
  MAIL/RCPT/RSET pipelined, QUIT not waited for).

Run by hand:  python3 bench/round_trips.py [--delay 0.02] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import smtplib
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from check_mailgw.modes import run_mode
from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER, write_password_file
from check_mailgw.sandbox.ca import SandboxCA
from check_mailgw.sandbox.smtp_server import start_smtp
from check_mailgw.secret import Redactor
from check_mailgw.settings import build_settings


class DelayProxy:
    """A TCP relay on 127.0.0.1 that holds every chunk back by a fixed delay."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
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
        with contextlib.suppress(asyncio.CancelledError):  # stop() ends idle relays
            await asyncio.gather(self._pipe(client_reader, server_writer),
                                 self._pipe(server_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
                queue.put_nowait((time.monotonic() + self.delay, chunk))
        except ConnectionError:
            pass
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


def smtplib_check(port: int, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        client.mail(SANDBOX_USER)
        client.rcpt(SANDBOX_USER)
        client.rset()


def mailgw_check(port: int, ca_file: str, password_file: str) -> None:
    settings = build_settings({
        "hostname": "127.0.0.1", "port": port, "tls": "starttls", "sender": SANDBOX_USER,
        "username": SANDBOX_USER, "password_file": password_file, "ca_file": ca_file,
    }, env={})
    report = run_mode(settings, Redactor())
    assert report.failure is None, report.failure


def timed(check: Callable[[], None], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        check()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.02, help="one-way delay in seconds")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    ca = SandboxCA()
    with tempfile.TemporaryDirectory() as directory, \
            start_smtp(security="starttls", ca=ca) as server:
        ca_file = str(ca.write_ca(Path(directory) / "ca.pem"))
        password_file = str(write_password_file(Path(directory) / "password"))
        proxy = DelayProxy(server.port, args.delay)
        try:
            candidates = {
                "baseline (smtplib)": lambda: smtplib_check(proxy.port, ca_file),
                "check_mailgw smtp": lambda: mailgw_check(proxy.port, ca_file, password_file),
            }
            for check in candidates.values():  # warm up imports and the CA
                check()
            results = {name: timed(check, args.runs) for name, check in candidates.items()}
        finally:
            proxy.stop()

    rtt = 2 * args.delay
    print(f"one-way delay {args.delay * 1000:.0f} ms (RTT {rtt * 1000:.0f} ms), "
          f"{args.runs} runs each")
    baseline = statistics.median(results["baseline (smtplib)"])
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<20} median {median * 1000:7.1f} ms  = {median / rtt:4.1f} RTT  "
              f"({median / baseline:.2f} x baseline)")


if __name__ == "__main__":
    main()
