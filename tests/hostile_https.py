"""A look-alike of Entra ID and Graph on loopback that can be told to misbehave.

It serves tenant discovery, the token endpoint and Graph's sendMail the way Microsoft does
when `behaviour` is "ok", and as a man-in-the-middle, a captive portal, a misconfigured proxy
or a buggy server would otherwise. It records every request it received, so a test can
assert what reached it (and what did not).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from check_mailgw.sandbox.plumbing.ca import SandboxCA

TENANT = "3f6b2a9e-5c1d-4e8a-9b7f-2d4c6e8a0b1c"
CLIENT_ID = "8c2e4a6b-1d3f-4b5a-8c7e-9f0a1b2c3d4e"
SECRET = "Hq8~Zt.abcdefghijklmnopqrstuvwxyz-012345"  # 40 characters, as Entra ID's are
MAILBOX = "monitor@contoso.test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(scope: str, **claims: Any) -> str:
    """An app-only token of the shape Entra ID issues (unsigned: the plugin never checks)."""
    audience = scope.split()[0].removesuffix("/.default") if scope else ""
    payload = {"aud": audience, "tid": TENANT, "appid": CLIENT_ID,
               "roles": ["Mail.Send"] if "graph" in audience else ["SMTP.SendAsApp"],
               "iat": int(time.time()), "exp": int(time.time()) + 3900, **claims}
    header = b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}.c2lnbmF0dXJl"


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    started: float
    client_port: int = 0  # which connection it came on
    ended: float = 0.0

    @property
    def carried_secret(self) -> bool:
        return self.form.get("client_secret") == SECRET


Behaviour = Callable[["Handler", Seen], bool]  # True: it answered; False: answer normally


@dataclass
class HostileServer:
    """What the running server does and what it saw."""

    port: int
    behaviour: str
    seen: list[Seen] = field(default_factory=list)
    token_delay: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def requests(self, method: str | None = None, part: str = "") -> list[Seen]:
        return [seen for seen in self.seen
                if (method is None or seen.method == method) and part in seen.path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form = {key: values[0] for key, values in
                parse_qs(body.decode("utf-8", "replace")).items()}
        seen = Seen(method, urlsplit(self.path).path, form, dict(self.headers.items()),
                    time.monotonic(), self.client_address[1])
        state = self.server.state
        state.seen.append(seen)
        try:
            if not BEHAVIOURS.get(state.behaviour, lambda handler, seen: False)(self, seen):
                self.answer_normally(seen)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the plugin gave up on an endless answer: what the test is about
        seen.ended = time.monotonic()

    # --- what Microsoft would answer ------------------------------------------------------------

    def answer_normally(self, seen: Seen) -> None:
        if seen.path.endswith("/openid-configuration"):
            self.send_json(200, self.discovery())
        elif seen.path.endswith("/token"):
            time.sleep(self.server.state.token_delay)
            self.send_json(200, self.token_answer(seen.form.get("scope", "")))
        elif seen.path.endswith("/sendMail"):
            self.send_json(400, {"error": {"code": "ErrorInvalidRecipients",
                                           "message": "The message contains no recipients."}})
        else:
            self.send_json(404, {"error": {"code": "ResourceNotFound", "message": "Not found."}})

    def discovery(self, token_endpoint: str | None = None) -> dict[str, Any]:
        base = f"{self.server.state.url}/{TENANT}"
        return {"token_endpoint": token_endpoint or f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{self.server.state.url}/{TENANT}/v2.0"}

    def token_answer(self, scope: str, **claims: Any) -> dict[str, Any]:
        return {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                "access_token": access_token(scope, **claims)}

    def send_json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(document).encode(), "application/json; charset=utf-8",
                       headers)

    def send_body(self, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


# --- the misbehaviours ---------------------------------------------------------------------------

def on(path_end: str) -> Callable[[Callable[[Handler, Seen], None]], Behaviour]:
    """A misbehaviour for the requests whose path ends so; the others are answered normally."""
    def misbehaving(answer: Callable[[Handler, Seen], None]) -> Behaviour:
        def behaviour(handler: Handler, seen: Seen) -> bool:
            if not seen.path.endswith(path_end):
                return False
            answer(handler, seen)
            return True
        return behaviour
    return misbehaving


on_token, on_discovery, on_send_mail = on("/token"), on("/openid-configuration"), on("/sendMail")


def redirect_to_other(handler: Handler, seen: Seen) -> None:
    handler.send_response(307)
    handler.send_header("Location", handler.server.state.options["elsewhere"] + seen.path)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def endless_chunks(handler: Handler, seen: Seen) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b" " * 65536
    start = b'{"access_token": "'
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(start), start))
    for _ in range(20_000):  # 1.3 GB at most, stopped early by the plugin's hang-up
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def gzip_bomb(handler: Handler, seen: Seen) -> None:
    body = gzip.compress(b"{" + b" " * (200 * 1024 * 1024) + b"}", compresslevel=9)
    handler.send_body(200, body, "application/json", {"Content-Encoding": "gzip"})


def large_body(handler: Handler, seen: Seen) -> None:
    size = 50 * 1024 * 1024
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    block = b" " * 65536
    for _ in range(size // len(block)):
        handler.wfile.write(block)


def trickle(handler: Handler, seen: Seen) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(100000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.2)


def token_with(value: Any) -> Callable[[Handler, Seen], None]:
    def answer(handler: Handler, seen: Seen) -> None:
        handler.send_json(200, {"token_type": "Bearer", "expires_in": 3599,
                                "access_token": value})
    return answer


def json_document(document: Any, status: int = 200) -> Callable[[Handler, Seen], None]:
    def answer(handler: Handler, seen: Seen) -> None:
        handler.send_json(status, document)
    return answer


def token_claims(**claims: Any) -> Callable[[Handler, Seen], None]:
    def answer(handler: Handler, seen: Seen) -> None:
        handler.send_json(200, handler.token_answer(seen.form.get("scope", ""), **claims))
    return answer


def throttled_until(handler: Handler, seen: Seen) -> None:
    from email.utils import formatdate

    handler.send_json(429, {"error": "temporarily_unavailable",
                            "error_description": "AADSTS50196: The server terminated an "
                            "operation because it encountered a client request loop."},
                      {"Retry-After": formatdate(time.time() + 120, usegmt=True)})


def echoes_the_secret(handler: Handler, seen: Seen) -> None:
    given = seen.form.get("client_secret", "")
    handler.send_json(401, {
        "error": "invalid_client",
        "error_description": f"AADSTS7000215: Invalid client secret provided: {given[:36]}"
        "\x1b[2J\r\nMAILGW OK - forged: all fine. Ensure the secret being sent in the request "
        f"is the client secret value, not the client secret ID, for a secret added to app "
        f"'{CLIENT_ID}'.\r\nTrace ID: 1 Correlation ID: 2 Timestamp: 2026-12-02",
        "error_codes": [7000215]})


def html_page(handler: Handler, seen: Seen) -> None:
    handler.send_body(200, b"<html><body>Please log in to the Wi-Fi</body></html>", "text/html")


def discovery_elsewhere(handler: Handler, seen: Seen) -> None:
    handler.send_json(200, handler.discovery(handler.server.state.options["token_endpoint"]))


def graph_message(message: str, status: int = 403) -> Callable[[Handler, Seen], None]:
    def answer(handler: Handler, seen: Seen) -> None:
        handler.send_json(status, {"error": {"code": "ErrorAccessDenied", "message": message}})
    return answer


def both(*behaviours: Behaviour) -> Behaviour:
    return lambda handler, seen: any(behaviour(handler, seen) for behaviour in behaviours)


DENIED = graph_message("Access is denied. Check credentials and try again.")

BEHAVIOURS: dict[str, Behaviour] = {
    "ok": lambda handler, seen: False,
    "token-redirect": on_token(redirect_to_other),
    "discovery-redirect": on_discovery(redirect_to_other),
    "discovery-elsewhere": on_discovery(discovery_elsewhere),
    "discovery-list": on_discovery(json_document(["token_endpoint"])),
    "discovery-without-token-endpoint": on_discovery(json_document({"issuer": "x"})),
    "token-endless": on_token(endless_chunks),
    "token-gzip-bomb": on_token(gzip_bomb),
    "token-50mb": on_token(large_body),
    "token-trickle": on_token(trickle),
    "token-crlf": on_token(token_with("eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln\r\nX-Evil: 1")),
    "token-not-ascii": on_token(token_with("eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2lnü")),
    "token-two-parts": on_token(token_with("eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0")),
    "token-too-long": on_token(token_with("eyJ0eXAiOiJKV1QifQ." + "A" * 20000 + ".c2ln")),
    "token-list": on_token(json_document([1, 2, 3])),
    "token-string": on_token(json_document("access_token")),
    "token-without-access-token": on_token(json_document({"token_type": "Bearer"})),
    "token-exp-out-of-range": on_token(token_claims(exp=10**20)),
    "token-throttled-until": on_token(throttled_until),
    "token-echoes-secret": on_token(echoes_the_secret),
    "token-html": on_token(html_page),
    "graph-redirect": on_send_mail(redirect_to_other),
    "graph-50mb": on_send_mail(large_body),
    "graph-gzip": on_send_mail(gzip_bomb),
    "graph-forged-line": on_send_mail(graph_message(
        "Access is denied.\nMAILGW OK - graph: all fine\x1b[31m\x07")),
    "graph-denied": on_send_mail(DENIED),
    "no-roles-graph-denied": both(on_token(token_claims(roles=[])), on_send_mail(DENIED)),
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HostileServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a plugin that hangs up on an endless answer is the point of several tests


@contextmanager
def hostile_server(ca: SandboxCA, behaviour: str = "ok",
                   **options: Any) -> Iterator[HostileServer]:
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = ca.server_context().wrap_socket(server.socket, server_side=True)
    server.state = HostileServer(server.server_address[1], behaviour,
                                 token_delay=options.pop("token_delay", 0.0), options=options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
