"""Crude misbehaviour no SMTP engine would produce: refusals, strangers, silence, blackholes."""

import asyncio
import socket

from check_mailgw.sandbox import replies
from check_mailgw.sandbox.background import listen_on
from check_mailgw.sandbox.scenarios import Scenario

# These imitate SMTP servers refusing service, so on an implicit-TLS port they
# speak TLS first; an SSH server or a silent peer would not.
SCRIPTS_BEHIND_TLS = frozenset({"reply-and-close", "reply-and-await-quit"})

_MAX_LINE = 4096


def speaks_tls(scenario: Scenario) -> bool:
    """Whether the script runs behind TLS on an implicit-TLS port."""
    return scenario.script in SCRIPTS_BEHIND_TLS


class ScriptedSession(asyncio.Protocol):
    """Plays a scenario's script on one connection."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._scenario.opening:
            self._send(self._scenario.opening)
        if self._scenario.script == "reply-and-close":
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._scenario.script != "reply-and-await-quit":
            return
        self._buffer = (self._buffer + data)[-_MAX_LINE:]
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.strip().upper() == b"QUIT":
                self._send(replies.BYE)
                assert self._transport is not None
                self._transport.close()
                return
            # RFC 5321 4.3.1: after a 554 greeting, everything but QUIT gets 503.
            self._send(replies.BAD_SEQUENCE)

    def eof_received(self) -> bool:
        return False

    def _send(self, line: str) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.write(line.encode("ascii") + b"\r\n")


class Blackhole:
    """A listener whose accept queue it keeps full itself, so that clients' SYNs are dropped."""

    def __init__(self, host: str, port: int) -> None:
        # A backlog of 0 still queues one connection: ours, never accepted.
        self._listener = listen_on(host, port, backlog=0)
        self.port: int = self._listener.getsockname()[1]
        try:
            self._filler = socket.create_connection((host, self.port), timeout=5)
        except BaseException:
            self._listener.close()
            raise

    def close(self) -> None:
        self._filler.close()
        self._listener.close()
