"""A small SMTP client: replies, pipelining, STARTTLS, every read bounded by the deadline."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from typing import NamedTuple

from check_mailgw.chain import Dialogue
from check_mailgw.deadline import Deadline, DeadlineExceeded

# Reply codes the plugin compares replies with (RFC 5321 4.2.2 and 4.2.3, RFC 4954 6), the
# code in the name as aiosmtpd names them, so that a search for the number finds every use.
S220_READY = 220
S235_AUTH_SUCCESS = 235
S250_OK = 250
S251_WILL_FORWARD = 251
S334_AUTH_CONTINUE = 334
S354_START_MAIL_INPUT = 354
S421_SERVICE_NOT_AVAILABLE = 421
S500_SYNTAX_ERROR = 500
S502_NOT_IMPLEMENTED = 502
S504_PARAMETER_NOT_IMPLEMENTED = 504
S530_AUTH_REQUIRED = 530  # also "must issue a STARTTLS command first" (RFC 3207 4)
S534_MECHANISM_TOO_WEAK = 534
S538_ENCRYPTION_REQUIRED = 538
# EHLO unknown: an old server that speaks only HELO.
NOT_RECOGNISED = (S500_SYNTAX_ERROR, S502_NOT_IMPLEMENTED, S504_PARAMETER_NOT_IMPLEMENTED)
TRANSIENT = range(400, 500)  # 4yz: the server asks to try again later
NOT_ACCEPTED = range(400, 600)  # 4yz and 5yz: the command was not carried out

MAX_LINE = 8192  # RFC 5321 allows 512; generous for chatty servers, bounded for broken ones
# Real servers end a reply within a few dozen lines (EHLO lists the most); a reply still
# going after this many is broken, and is a diagnosis, never cut off and taken as whole.
MAX_LINES = 200
# And none sends more than a few kilobytes: 200 lines of 8 KiB would be 1.6 MB of words.
MAX_REPLY = 32 * 1024
# RFC 5321 4.2: Reply-code "-" [ textstring ] on a continuation line, Reply-code
# [ SP textstring ] on the last: "250", "250-" and "220 " are all valid lines.
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?")
_REPLY_START = re.compile(rb"[2-5][0-9][0-9][ -]")
_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3})\b")


class SmtpProtocolError(Exception):
    """The peer did not behave like an SMTP server."""


class ConnectionClosed(SmtpProtocolError):
    """The server closed the connection while a reply was expected."""

    def __init__(self, waiting_for: str) -> None:
        super().__init__(f"the server closed the connection while we waited for {waiting_for}")
        self.waiting_for = waiting_for


class NotSmtp(SmtpProtocolError):
    """The server sent something that is not an SMTP reply."""

    def __init__(self, line: bytes, waiting_for: str) -> None:
        text = line.decode("utf-8", "replace").strip()[:120]
        super().__init__(f"not an SMTP reply to {waiting_for}: {text!r}")
        self.line = text
        self.waiting_for = waiting_for


class LineTooLong(SmtpProtocolError):
    """A reply line went on past MAX_LINE bytes without its end."""

    def __init__(self, start: bytes, waiting_for: str) -> None:
        super().__init__(f"a line of {waiting_for} is longer than {MAX_LINE} bytes")
        self.start = start.decode("utf-8", "replace")[:120]
        self.waiting_for = waiting_for


class ReplyTooLong(SmtpProtocolError):
    """A reply went on past MAX_REPLY bytes, in lines of a sane length each."""

    def __init__(self, first_line: str, waiting_for: str) -> None:
        super().__init__(f"{waiting_for} is longer than {MAX_REPLY} bytes")
        self.start = first_line[:120]
        self.waiting_for = waiting_for


class TlsBroken(SmtpProtocolError):
    """The TLS layer failed after the handshake (a bad record, an alert from the server)."""

    def __init__(self, error: ssl.SSLError, waiting_for: str) -> None:
        super().__init__(f"TLS failed while waiting for {waiting_for}: {error}")
        self.error = error
        self.waiting_for = waiting_for


class ReplyDidNotEnd(SmtpProtocolError):
    """A multiline reply went on far past what any real server sends."""

    def __init__(self, code: int, first_line: str, lines: int, waiting_for: str) -> None:
        super().__init__(f"{waiting_for} did not end after {lines} lines")
        self.code = code
        self.first_line = first_line
        self.lines = lines
        self.waiting_for = waiting_for

    @property
    def start(self) -> str:
        """The code and the first line, as the server sent them."""
        return f"{self.code} {self.first_line.strip()}".strip()


class Reply(NamedTuple):
    """Domain model: an SMTP reply: code and text lines, with the enhanced status code."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(line.strip() for line in self.lines if line.strip())

    @property
    def enhanced(self) -> str | None:
        match = _ENHANCED.match(self.lines[0].strip()) if self.lines else None
        return match.group(1) if match else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class SmtpConnection:
    """An SMTP session over a connected socket; it records a redacted dialogue."""

    def __init__(self, sock: socket.socket, deadline: Deadline, dialogue: Dialogue) -> None:
        self.sock = sock
        self.deadline = deadline
        self.dialogue = dialogue
        self._buffer = b""
        self.capabilities: dict[str, str] = {}

    # Sending and receiving
    def send(self, *lines: str, shown: str | None = None) -> None:
        """Sends lines in one write (pipelining); shown replaces a line that holds a secret."""
        for line in lines:
            self.dialogue.add(f"C: {shown if shown is not None else line}")
        # Named as shown: a line that carries a secret is named by its mask, and an empty
        # line (the SASL answer to an error challenge) by what it is.
        verb = (shown if shown is not None else lines[0]).split(" ", 1)[0] or "an empty line"
        self.sock.settimeout(self.deadline.budget(f"sending {verb}"))
        self.sock.sendall(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))

    def send_data(self, payload: bytes, shown: str) -> None:
        self.dialogue.add(f"C: {shown}")
        self.sock.settimeout(self.deadline.budget("sending the message"))
        self.sock.sendall(payload)

    def read_reply(self, waiting_for: str) -> Reply:
        code: int | None = None
        lines: list[str] = []
        size = 0
        while True:
            raw = self._read_line(waiting_for)
            size += len(raw)
            if size > MAX_REPLY:
                start = f"{code} {lines[0].strip()}".strip() if lines else ""
                self.dialogue.add(f"S: {start} ... (more than {MAX_REPLY} bytes)")
                raise ReplyTooLong(start, waiting_for)
            match = _REPLY_LINE.fullmatch(raw.rstrip(b"\r\n"))
            if not match or (code is not None and int(match.group(1)) != code):
                raise NotSmtp(raw, waiting_for)
            code = int(match.group(1))
            lines.append((match.group(3) or b"").decode("utf-8", "replace"))
            if match.group(2) != b"-":  # a space, or the code alone: the last line
                break
            if len(lines) >= MAX_LINES:
                endless = ReplyDidNotEnd(code, lines[0], len(lines), waiting_for)
                self.dialogue.add(f"S: {endless.start} ... ({len(lines)} lines, no last one)")
                raise endless
        reply = Reply(code, tuple(lines))
        self.dialogue.add(f"S: {reply}")
        return reply

    def command(self, line: str, shown: str | None = None) -> Reply:
        self.send(line, shown=shown)
        verb = (shown or line).split(" ", 1)[0]
        return self.read_reply(f"the reply to {verb}")

    def _read_line(self, waiting_for: str) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                if _REPLY_START.match(self._buffer):
                    raise LineTooLong(self._buffer, waiting_for)
                raise NotSmtp(self._buffer[:MAX_LINE], waiting_for)
            try:
                self.sock.settimeout(self.deadline.budget(waiting_for))
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise DeadlineExceeded(waiting_for) from None
            except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
                chunk = b""
            except ssl.SSLError as error:
                raise TlsBroken(error, waiting_for) from None
            if not chunk:
                if self._buffer.strip():
                    raise NotSmtp(self._buffer, waiting_for)
                raise ConnectionClosed(waiting_for)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    # Session steps
    def ehlo(self, name: str) -> Reply:
        """EHLO, falling back to HELO for servers without ESMTP; remembers the extensions."""
        reply = self.command(f"EHLO {name}")
        self.capabilities = {}
        if reply.code == S250_OK:
            for line in reply.lines[1:]:
                if not line.strip():  # "250-" alone: a valid line that names nothing
                    continue
                keyword, _, params = line.strip().partition(" ")
                keyword, eq, rest = keyword.partition("=")  # old 'AUTH=LOGIN' form
                params = f"{rest} {params}".strip() if eq else params
                self.capabilities[keyword.upper()] = params.strip()
            return reply
        if reply.code in NOT_RECOGNISED:
            return self.command(f"HELO {name}")
        return reply

    def offers(self, extension: str) -> bool:
        return extension.upper() in self.capabilities

    def auth_mechanisms(self) -> list[str]:
        return self.capabilities.get("AUTH", "").upper().split()

    def switch_to(self, tls_sock: ssl.SSLSocket) -> None:
        """Continues over TLS; plaintext buffered after the 220 is dropped (no injection)."""
        self._buffer = b""
        self.sock = tls_sock

    def quit(self) -> None:
        """QUIT without waiting for the 221: one round trip saved, nothing lost."""
        with contextlib.suppress(OSError, DeadlineExceeded):
            self.send("QUIT")
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
