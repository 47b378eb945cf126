"""SMTP clients for the sandbox tests: raw CRLF lines, smtplib, Exchange's XOAUTH2.

The tests that stop a server also check with no_errors_logged that it logged no error.
"""

import base64
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from check_mailgw.sandbox.m365.cloud import M365Sandbox
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp.listeners import SmtpServer

TIMEOUT = 5.0


class LineClient:
    """Test helper: speaks raw SMTP over a (TLS) socket, one CRLF line at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii"))

    def line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line.decode("ascii")

    def reply(self) -> list[str]:
        """All lines of one (possibly multi-line) reply."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def last(self) -> str:
        return self.reply()[-1]


@contextmanager
def raw_client(
    server: SmtpServer, context: ssl.SSLContext | None = None, timeout: float = TIMEOUT
) -> Iterator[LineClient]:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server.host)
        yield LineClient(sock)
    finally:
        sock.close()


def reply_text(code: int, message: bytes) -> str:
    return f"{code} {message.decode()}"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [record for record in caplog.records if record.levelno >= logging.ERROR]


def xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


@contextmanager
def exchange_session(sandbox: M365Sandbox, ca: SandboxCA) -> Iterator[smtplib.SMTP]:
    """smtplib session with the Exchange listener, after STARTTLS and the second EHLO."""
    client = smtplib.SMTP(sandbox.smtp_host, sandbox.smtp_port, timeout=TIMEOUT)
    try:
        client.ehlo()
        client.starttls(context=ca.client_context())
        client.ehlo()
        yield client
    finally:
        client.close()


def xoauth2_login(client: smtplib.SMTP, user: str, token: str) -> str:
    """AUTH XOAUTH2 as Microsoft documents it: the blob after an empty 334 challenge."""
    code, challenge = client.docmd("AUTH", "XOAUTH2")
    assert (code, challenge) == (334, b"")
    return reply_text(*client.docmd(xoauth2(user, token)))
