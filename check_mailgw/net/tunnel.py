"""A tunnel through an HTTP proxy (CONNECT, RFC 9110 section 9.3.6), refusals told apart."""

from __future__ import annotations

import base64
import contextlib
import re
import socket
from urllib.parse import unquote, urlsplit

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.errors import SettingsError
from check_mailgw.net.http_status import (
    HTTP_403_FORBIDDEN,
    HTTP_407_PROXY_AUTHENTICATION_REQUIRED,
    HTTP_502_BAD_GATEWAY,
    HTTP_503_SERVICE_UNAVAILABLE,
    HTTP_504_GATEWAY_TIMEOUT,
    SUCCESSFUL,
)
from check_mailgw.outcome import Diagnosis, State, StepFailed

WAITING_FOR = "the proxy's answer to CONNECT"
MAX_HEAD = 16384  # a proxy's answer head is a few hundred bytes; bounded for broken ones
MAX_REPLY_WORDS = 200
QUOTE_WAIT = 0.5  # seconds to wait for the rest of a line that is not HTTP
DEFAULT_PORTS = {"http": 80, "https": 443}
_STATUS_LINE = r"HTTP/\d(?:\.\d)? (\d{3})(?: .*)?"  # compiled on first use, by a proxied run
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


def proxy_endpoint(proxy_url: str) -> tuple[str, int]:
    """The host and port to connect to for a proxy URL such as http://user:pw@proxy:3128."""
    parts = urlsplit(proxy_url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port == -1:
        raise SettingsError(f"proxy {proxy_display(proxy_url)}: expected http://host:port")
    return parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def proxy_display(proxy_url: str) -> str:
    """The proxy URL as it may be shown: without user and password."""
    parts = urlsplit(proxy_url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if parts.scheme else host


def open_tunnel(sock: socket.socket, host: str, port: int, deadline: Deadline,
                proxy_url: str) -> str:
    """Asks the proxy on sock for a tunnel to host:port; returns the proxy's status line.

    Afterwards the socket carries the bytes of host:port (the caller wraps it in TLS). The
    answer is read byte by byte so that nothing the far end sends first (an SMTP greeting)
    is swallowed with it.
    """
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    credentials = basic_credentials(proxy_url)
    if credentials:
        lines.append(f"Proxy-Authorization: Basic {credentials}")
    try:
        sock.settimeout(deadline.budget(WAITING_FOR))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    except TimeoutError:
        raise DeadlineExceeded(WAITING_FOR) from None
    except OSError as error:
        raise proxy_closed(error) from None
    head = read_head(sock, deadline)
    status_line, headers = parse_head(head)
    status = int(status_line.split()[1])
    if status in SUCCESSFUL:
        return status_line
    raise StepFailed(Diagnosis(
        State.CRITICAL, "proxy refused the tunnel", status_line,
        fix=refusal_fix(status, authority, headers, bool(credentials)),
    ))


def basic_credentials(proxy_url: str) -> str | None:
    parts = urlsplit(proxy_url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return base64.b64encode(pair.encode()).decode("ascii")


def read_head(sock: socket.socket, deadline: Deadline) -> bytes:
    head = bytearray()
    while not head.endswith(_HEAD_ENDS):
        try:
            sock.settimeout(deadline.budget(WAITING_FOR))
            byte = sock.recv(1)
        except TimeoutError:
            raise DeadlineExceeded(WAITING_FOR) from None
        except OSError as error:
            raise proxy_closed(error) from None
        if not byte:
            if head:
                raise not_http(bytes(head))
            raise proxy_closed(None)
        head += byte
        # Anything else (an SMTP or TLS server) never ends a head: say so at once.
        if not b"HTTP/".startswith(bytes(head[:5])) or len(head) > MAX_HEAD:
            raise not_http(bytes(head) + rest_of_line(sock, deadline))
    return bytes(head)


def rest_of_line(sock: socket.socket, deadline: Deadline) -> bytes:
    """What is left of the first line, to quote it; whatever has arrived within a moment."""
    rest = bytearray()
    with contextlib.suppress(OSError):
        while len(rest) < MAX_REPLY_WORDS and not rest.endswith(b"\n"):
            sock.settimeout(deadline.budget(WAITING_FOR, cap=QUOTE_WAIT))
            byte = sock.recv(1)
            if not byte:
                break
            rest += byte
    return bytes(rest)


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The status line and the headers (names in lower case) of a proxy's answer."""
    text = head.decode("latin-1")
    status_line, *header_lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    if not re.fullmatch(_STATUS_LINE, status_line):
        raise not_http(head)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return printable(status_line), headers


def refusal_fix(status: int, authority: str, headers: dict[str, str],
                credentials_given: bool) -> str:
    if status == HTTP_407_PROXY_AUTHENTICATION_REQUIRED:
        scheme = headers.get("proxy-authenticate", "").split(" ", 1)[0]
        if scheme and scheme.lower() != "basic":
            return (f"the proxy asks for {scheme} authentication, which this check does not "
                    f"speak: have the proxy let {authority} through without authentication, or "
                    "give a proxy that takes Basic credentials")
        if credentials_given:
            return ("the proxy did not accept the user and password of the proxy URL: check "
                    "them (special characters must be percent-encoded in the URL)")
        return ("the proxy wants credentials: put them in the proxy URL, --proxy "
                "http://user:password@host:port or the HTTPS_PROXY environment variable")
    if status == HTTP_403_FORBIDDEN:
        return (f"the proxy's policy forbids tunnels to {authority}: have it allowed (many "
                "proxies allow CONNECT only to port 443)")
    if status in (HTTP_502_BAD_GATEWAY, HTTP_503_SERVICE_UNAVAILABLE, HTTP_504_GATEWAY_TIMEOUT):
        return (f"the proxy could not reach {authority}: check the proxy's own name "
                "resolution, route and firewall towards that host")
    return "unexpected answer from the proxy: check its logs and configuration"


def printable(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text.strip())
    return cleaned[:MAX_REPLY_WORDS]


def not_http(head: bytes) -> StepFailed:
    first_line = head.decode("latin-1").strip().split("\n", 1)[0]
    return StepFailed(Diagnosis(
        State.CRITICAL, "not an HTTP proxy", printable(first_line) or None,
        fix="the proxy address leads to something that does not answer CONNECT like an HTTP "
        "proxy: check the host and port of the proxy URL",
    ))


def proxy_closed(error: OSError | None) -> StepFailed:
    reason = (error.strerror or str(error)) if error else None
    return StepFailed(Diagnosis(
        State.CRITICAL, "the proxy closed the connection", reason,
        fix="the proxy hung up on CONNECT: check the proxy's logs; it may refuse this "
        "client's address or expect TLS (an https:// proxy URL)",
    ))
