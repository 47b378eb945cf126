"""Servers aiosmtpd cannot play: refusals, strangers, silence, blackholes, endless replies,
and small ESMTP dialogues of their own (no PIPELINING, replies of a code alone)."""

import asyncio
import socket

from check_mailgw.sandbox.accounts import SANDBOX_DOMAIN
from check_mailgw.sandbox.plumbing.background import listen_on
from check_mailgw.sandbox.scenarios import Scenario, Script
from check_mailgw.sandbox.smtp import canned_replies

# These imitate SMTP servers, so on an implicit-TLS port they speak TLS first;
# an SSH server or a silent peer would not.
SCRIPTS_BEHIND_TLS = frozenset({
    "reply-and-close", "reply-and-await-quit", "endless-reply", "no-pipelining",
    "terse-replies",
})

# Replies by command verb, for the scripts that hold a whole session; any other
# verb is not implemented.
DIALOGUES: dict[Script, dict[str, str]] = {
    # An ESMTP server that offers neither PIPELINING nor STARTTLS nor AUTH, as
    # plenty of internal relays do: each command waits for its own reply. It
    # takes mail from its own domain only (see _refused_sender).
    "no-pipelining": {
        "EHLO": f"250-{canned_replies.SANDBOX_HOSTNAME}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
        "HELO": f"250 {canned_replies.SANDBOX_HOSTNAME}",
        "MAIL": canned_replies.SENDER_OK,
        "RCPT": canned_replies.RECIPIENT_OK,
        "RSET": canned_replies.OK,
        "NOOP": canned_replies.OK,
        "QUIT": canned_replies.BYE,
    },
    # RFC 5321 4.2 to the letter: the text after a reply code is optional.
    "terse-replies": {
        "EHLO": "250-\r\n250-8BITMIME\r\n250",
        "HELO": "250",
        "MAIL": "250",
        "RCPT": "250 ",
        "RSET": "250",
        "NOOP": "250",
        "QUIT": "221",
    },
}
NOT_IMPLEMENTED = {"terse-replies": "502"}

_MAX_LINE = 4096
# Continuation lines written per batch of an endless reply.
_ENDLESS_BATCH = 64


def speaks_tls(scenario: Scenario) -> bool:
    """Whether the script runs behind TLS on an implicit-TLS port."""
    return scenario.script in SCRIPTS_BEHIND_TLS


class ScriptedSession(asyncio.Protocol):
    """Plays a scenario's script on one connection."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._endless_lines = 0  # of the endless reply, once it started
        self._paused = False
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._scenario.opening:
            self._send(self._scenario.opening)
        if self._scenario.script == "reply-and-close":
            transport.close()

    def data_received(self, data: bytes) -> None:
        script = self._scenario.script
        if script not in ("reply-and-await-quit", "endless-reply", *DIALOGUES):
            return
        self._buffer = (self._buffer + data)[-_MAX_LINE:]
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            verb = line.strip().split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb == b"QUIT":
                self._send(DIALOGUES.get(script, {}).get("QUIT", canned_replies.BYE))
                assert self._transport is not None
                self._transport.close()
                return
            self._answer(verb.decode("ascii", "replace"), line.decode("utf-8", "replace"))

    def _answer(self, verb: str, line: str) -> None:
        script = self._scenario.script
        if script == "reply-and-await-quit":
            # RFC 5321 4.3.1: after a 554 greeting, everything but QUIT gets 503.
            self._send(canned_replies.BAD_SEQUENCE)
        elif script == "endless-reply":
            if not self._endless_lines:  # the reply to the first command never ends
                self._write_endless()
        elif script == "no-pipelining" and verb == "MAIL" and (refusal := _refused_sender(line)):
            self._send(refusal)
        elif script in DIALOGUES:
            self._send(DIALOGUES[script].get(verb, NOT_IMPLEMENTED.get(script,
                                                                       canned_replies.NOT_IMPLEMENTED)))

    def _write_endless(self) -> None:
        """Continuation lines until the client leaves, a batch per turn of the event loop.

        One batch at a time lets the loop tell that the client left (a TLS transport
        takes writes after the peer is gone); a full buffer pauses the writing, and
        resume_writing goes on.
        """
        assert self._transport is not None
        if self._paused or self._lost or self._transport.is_closing():
            return
        first = self._endless_lines
        batch = [f"250-X-LINE-{n}" for n in range(first, first + _ENDLESS_BATCH)]
        if not first:
            batch[0] = f"250-{canned_replies.SANDBOX_HOSTNAME}"
        self._endless_lines += len(batch)
        self._transport.write("".join(f"{line}\r\n" for line in batch).encode("ascii"))
        asyncio.get_running_loop().call_soon(self._write_endless)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._write_endless()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True

    def eof_received(self) -> bool:
        return False

    def _send(self, line: str) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():
            self._transport.write(line.encode("ascii") + b"\r\n")


def _refused_sender(mail_from: str) -> str | None:
    """The refusal of a MAIL FROM outside the sandbox's domain, as Postfix words it."""
    address = mail_from.partition(":")[2].strip().strip("<>")
    if address.lower().endswith(f"@{SANDBOX_DOMAIN}"):
        return None
    return f"553 5.7.1 <{address}>: Sender address rejected: not owned by this relay"


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
