"""What a server says reaches the output redacted and on its own line, whatever it sends.

A scripted SMTP server on loopback answers AUTH with a reply that echoes the credentials
(whole, truncated, base64, URL-encoded), and carries ESC sequences, BEL, NUL, C1 controls,
bare line feeds and bytes that are not UTF-8. None of it may reach the first line, the long
output at any verbosity, or JSON as such.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from check_mailgw.secret import Redactor
from tests.checkrun import CheckRun, run_check

USER = "monitor@hostile.test"
PASSWORD = "Tr0ub4dor&3-correct-horse-battery-staple"  # 40 characters

# Raw bytes a terminal or a log viewer would act on, and their escaped forms in the output.
RAW_CONTROLS = ("\x1b", "\x07", "\x00", "\x85", "\x9b", "\u2028", "\u202e", "\r")


def echoing_reply(auth_line: bytes) -> bytes:
    """A 535 that repeats what it was sent, cut and re-encoded, wrapped in control bytes."""
    blob = auth_line.split()[-1].decode()
    return (
        "535-5.7.8 \x1b[31mauthentication failed\x1b[0m\x07 for "
        f"{PASSWORD[:36]}\x00 (you sent {blob[:-2]})\r\n"
        f"535-5.7.8 url form {quote(PASSWORD, safe='')} \x9b2J\u2028\u202e tail\r\n"
        "535 5.7.8 \xc2\x85end\nMAILGW OK - smtp forged: all fine\r\n"
    ).encode("utf-8", "surrogateescape") + b" \xff\xfe not utf-8\r\n"


class HostileSmtp:
    """A plain SMTP server that offers AUTH PLAIN and answers it with echoing_reply."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                self.session(conn)

    def session(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        reader = conn.makefile("rb")
        conn.sendall(b"220 hostile.test ESMTP\r\n")
        for line in reader:
            self.received.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-hostile.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif verb == b"AUTH":
                conn.sendall(echoing_reply(line.strip()))
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def hostile_smtp() -> Iterator[HostileSmtp]:
    server = HostileSmtp()
    yield server
    server.close()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def check(server: HostileSmtp, password_file: Path, *extra: str) -> CheckRun:
    return run_check("--mode", "smtp", "-H", "127.0.0.1", "-p", server.port,
                     "--from", USER, "-U", USER, "--password-file", password_file,
                     "--allow-cleartext-auth", "-t", "10", *extra)


def secret_forms() -> list[str]:
    """What would give the password away: its runs of 12, and its encoded forms."""
    plain = f"\0{USER}\0{PASSWORD}".encode()
    forms = [PASSWORD[i:i + 12] for i in range(len(PASSWORD) - 11)]
    forms += [quote(PASSWORD, safe=""), base64.b64encode(plain).decode()[:-2][-12:]]
    return forms


def assert_no_leak(text: str) -> None:
    for form in secret_forms():
        assert form not in text, f"{form!r} leaked"


def assert_printable(text: str) -> None:
    for character in RAW_CONTROLS:
        assert character not in text, f"{character!r} printed raw"
    lines = text.splitlines()
    assert not any(line.startswith("MAILGW") for line in lines[1:]), "a forged status line"


@pytest.mark.parametrize("verbosity", ["-v", "-vv", "-vvv"])
def test_an_echoing_hostile_reply_is_redacted_and_kept_on_its_line(
        hostile_smtp: HostileSmtp, password_file: Path, verbosity: str) -> None:
    run = check(hostile_smtp, password_file, verbosity)
    assert run.exit_code == 2, run.stdout
    assert run.first_line.startswith("MAILGW CRITICAL - auth on 127.0.0.1:"), run.first_line
    assert "535" in run.first_line and "5.7.8" in run.first_line
    assert_no_leak(run.stdout + run.stderr)
    assert_printable(run.stdout)
    assert run.stderr == ""
    # The server's words are still there, escaped rather than dropped.
    assert "\\x1b[31mauthentication failed" in run.stdout
    assert "\\x07" in run.stdout


def test_the_json_document_holds_no_raw_control_and_no_part_of_the_secret(
        hostile_smtp: HostileSmtp, password_file: Path) -> None:
    run = check(hostile_smtp, password_file, "--format", "json", "-vvv")
    assert run.exit_code == 2
    document = json.loads(run.stdout)
    text = json.dumps(document, ensure_ascii=False)
    assert_no_leak(text)
    auth = next(step for step in document["steps"] if step["name"] == "auth")
    assert auth["state"] == "CRITICAL"
    for value in (auth["reply"], auth["problem"], *auth["dialogue"]):
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202e]", value or ""), value


def test_the_password_reached_the_server_and_only_once(hostile_smtp: HostileSmtp,
                                                        password_file: Path) -> None:
    check(hostile_smtp, password_file)
    auth = [line for line in hostile_smtp.received if line.upper().startswith(b"AUTH")]
    assert len(auth) == 1
    assert base64.b64decode(auth[0].split()[-1]) == f"\0{USER}\0{PASSWORD}".encode()


# --- the redactor itself -------------------------------------------------------------------------

SECRET = "Zq8~Q.abcdefghijklmnopqrstuvwxyz-0123456"  # a client secret's shape: 40 characters


@pytest.mark.parametrize("shown", [
    SECRET, SECRET[:36], SECRET[4:], SECRET[10:22],
    quote(SECRET, safe=""), json.dumps(SECRET)[1:-1],
    base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(b"x" + SECRET.encode()).decode(),
    base64.b64encode(b"xy" + SECRET.encode()).decode(),
    base64.urlsafe_b64encode(b"\0user\0" + SECRET.encode()).decode(),
])
def test_every_form_and_every_long_run_of_a_secret_is_masked(shown: str) -> None:
    redact = Redactor([SECRET])
    masked = redact(f"AADSTS7000215: Invalid client secret provided: {shown}. Trace ID: 1")
    assert "****" in masked
    assert not any(shown[i:i + 12] in masked for i in range(len(shown) - 11))
    assert masked.startswith("AADSTS7000215: Invalid client secret provided: ")
    assert masked.endswith(". Trace ID: 1")


def test_short_runs_and_other_text_stay() -> None:
    redact = Redactor([SECRET, "pw"])
    text = f"hint {SECRET[:3]}, eleven {SECRET[5:16]}, and pw is too short to mask"
    assert redact(text) == text
    assert Redactor(["hunter2"])("pw=hunter2, again hunter2.") == "pw=****, again ****."
