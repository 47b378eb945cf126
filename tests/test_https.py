"""HTTPS plumbing of the Microsoft modes, against a real HTTPS server and proxy on loopback."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
import trustme

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.errors import SettingsError
from check_mailgw.net.https import DeadlineHttpClient, https_session, proxy_for
from check_mailgw.net.tls import client_context, handshake
from check_mailgw.net.tunnel import open_tunnel, proxy_display, proxy_endpoint
from check_mailgw.outcome import StepFailed
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.plumbing.proxy import ConnectProxy, start_proxy

TIMEOUT = 5.0
PROXY_USER, PROXY_PASSWORD = "monitor", "pr0xy-Pa55word"
CLIENT_SECRET = "s3cret-Value~never-shown"
TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                   "no_proxy", "HTTP_PROXY", "http_proxy")


# --- a loopback HTTPS server -------------------------------------------------------------------

class SandboxHandler(BaseHTTPRequestHandler):
    """Answers by path: /stall and /slow-body hold the answer until the test ends."""

    server: HttpsServer

    def do_GET(self) -> None:
        self.server.seen.append(f"GET {self.path}")
        if self.path.startswith("/stall"):
            self.server.release.wait(TIMEOUT)
            return
        if self.path.startswith("/slow-body"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.server.release.wait(TIMEOUT)
            return
        if self.path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant_url = f"https://127.0.0.1:{self.server.port}/{self.path.split('/')[1]}"
            self.reply({
                "authorization_endpoint": f"{tenant_url}/oauth2/v2.0/authorize",
                "token_endpoint": f"{tenant_url}/oauth2/v2.0/token",
                "issuer": f"{tenant_url}/v2.0",
            })
            return
        self.reply({"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.bodies.append(self.rfile.read(length).decode())
        self.server.seen.append(f"POST {self.path}")
        self.reply({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                    "access_token": TOKEN})

    def reply(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", "request-1234")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class HttpsServer(ThreadingHTTPServer):
    """HTTPS on loopback; the handshake happens in each client's thread, joined on close."""

    daemon_threads = False  # server_close() waits for every handler

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), SandboxHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)
        self.port: int = self.server_address[1]
        self.seen: list[str] = []
        self.bodies: list[str] = []
        self.release = threading.Event()

    def url(self, path: str = "/ok") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes are what several tests are about


@contextmanager
def serving(context: ssl.SSLContext) -> Iterator[HttpsServer]:
    server = HttpsServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def https_server(sandbox_ca: SandboxCA) -> Iterator[HttpsServer]:
    with serving(sandbox_ca.server_context()) as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with start_proxy() as running:
        yield running


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sandbox_context(ca_file: Path) -> ssl.SSLContext:
    return client_context(str(ca_file), insecure=False)


def with_credentials(proxy_url: str, user: str = PROXY_USER,
                     password: str = PROXY_PASSWORD) -> str:
    return proxy_url.replace("http://", f"http://{user}:{password}@")


# --- proxy_for ---------------------------------------------------------------------------------

URL = "https://login.example.com/tenant/oauth2/v2.0/token"


def test_explicit_proxy_wins_over_the_environment_and_no_proxy() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:3128", "NO_PROXY": "*"}
    assert proxy_for(URL, "http://cli-proxy:8080", env) == "http://cli-proxy:8080"


def test_an_empty_explicit_proxy_means_direct() -> None:
    assert proxy_for(URL, "", {"HTTPS_PROXY": "http://env-proxy:3128"}) is None


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_environment_proxy_in_either_case(name: str) -> None:
    assert proxy_for(URL, None, {name: "http://env-proxy:3128"}) == "http://env-proxy:3128"


def test_https_proxy_comes_before_all_proxy_and_lower_case_first() -> None:
    env = {"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://upper:2",
           "https_proxy": "http://lower:3"}
    assert proxy_for(URL, None, env) == "http://lower:3"
    del env["https_proxy"]
    assert proxy_for(URL, None, env) == "http://upper:2"


def test_no_proxy_variable_no_proxy_and_bare_host_gets_a_scheme() -> None:
    assert proxy_for(URL, None, {}) is None
    assert proxy_for(URL, None, {"HTTPS_PROXY": ""}) is None
    assert proxy_for(URL, None, {"https_proxy": "proxy.corp:3128"}) == "http://proxy.corp:3128"


def test_proxy_for_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    assert proxy_for(URL, None) == "http://env-proxy:3128"
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert proxy_for(URL, None) is None


@pytest.mark.parametrize(("url", "no_proxy"), [
    (URL, "*"),
    (URL, "example.com"),
    (URL, ".example.com"),
    (URL, "*.example.com"),
    (URL, "login.example.com"),
    (URL, "LOGIN.Example.COM"),
    (URL, "other.test, login.example.com:443"),
    (URL, "other.test example.com"),
    ("https://10.1.2.3/", "10.0.0.0/8"),
    ("https://10.1.2.3:8443/", "10.1.2.3"),
    ("https://10.1.2.3:8443/", "10.1.2.3:8443"),
    ("https://[::1]:8443/", "::1"),
    ("https://[::1]:8443/", "[::1]:8443"),
    ("https://[fe80::1]/", "fe80::/10"),
    ("https://login.example.com./", "example.com"),
])
def test_no_proxy_exempts(url: str, no_proxy: str) -> None:
    assert proxy_for(url, None, {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": no_proxy}) is None


@pytest.mark.parametrize(("url", "no_proxy"), [
    (URL, "ample.com"),
    (URL, "example.org"),
    (URL, "login.example.com:8443"),
    (URL, "10.0.0.0/8"),
    ("https://10.1.2.3/", "10.1.2.4"),
    ("https://11.1.2.3/", "10.0.0.0/8"),
    ("https://[::2]/", "[::1]"),
    (URL, ""),
    (URL, " , ,"),
])
def test_no_proxy_leaves_others_to_the_proxy(url: str, no_proxy: str) -> None:
    env = {"https_proxy": "http://p:3128", "no_proxy": no_proxy}
    assert proxy_for(url, None, env) == "http://p:3128"


# --- https_session: trust ----------------------------------------------------------------------

def test_session_trusts_the_given_ca(https_server: HttpsServer,
                                     sandbox_context: ssl.SSLContext) -> None:
    with https_session(sandbox_context, None) as session:
        response = session.get(https_server.url(), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_session_ignores_requests_ca_bundle(https_server: HttpsServer, ca_file: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(ca_file))
    # The bundle in the environment would trust the server: plain requests proves it ...
    assert requests.get(https_server.url(), timeout=TIMEOUT).status_code == 200
    # ... yet a context for another CA (and the system store) must fail.
    other_ca = trustme.CA()
    other = ssl.create_default_context(cadata=other_ca.cert_pem.bytes().decode())
    for context in (other, client_context(None, insecure=False)):
        with https_session(context, None) as session, pytest.raises(requests.exceptions.SSLError):
            session.get(https_server.url(), timeout=TIMEOUT)


def test_session_adds_no_ca_to_the_context(https_server: HttpsServer,
                                           sandbox_context: ssl.SSLContext) -> None:
    """requests would load certifi's bundle into the context; only --ca-file may be in it."""
    with https_session(sandbox_context, None) as session:
        session.get(https_server.url(), timeout=TIMEOUT)
    assert len(sandbox_context.get_ca_certs()) == 1


def test_insecure_context_verifies_nothing(https_server: HttpsServer) -> None:
    with https_session(client_context(None, insecure=True), None) as session:
        assert session.get(https_server.url(), timeout=TIMEOUT).status_code == 200


def test_session_checks_the_host_name(sandbox_ca: SandboxCA,
                                      sandbox_context: ssl.SSLContext) -> None:
    with serving(sandbox_ca.server_context("wrong-host")) as server, \
            https_session(sandbox_context, None) as session, \
            pytest.raises(requests.exceptions.SSLError, match=r"not valid for '127\.0\.0\.1'"):
        session.get(server.url(), timeout=TIMEOUT)


# --- https_session: proxy ----------------------------------------------------------------------

def test_session_goes_through_the_given_proxy(https_server: HttpsServer, proxy: ConnectProxy,
                                              sandbox_context: ssl.SSLContext) -> None:
    with https_session(sandbox_context, proxy.url) as session:
        assert session.get(https_server.url(), timeout=TIMEOUT).status_code == 200
    assert proxy.tunnels == [f"127.0.0.1:{https_server.port}"]


def test_session_ignores_environment_proxies(https_server: HttpsServer, proxy: ConnectProxy,
                                             sandbox_context: ssl.SSLContext,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    with https_session(sandbox_context, None) as session:
        assert session.get(https_server.url(), timeout=TIMEOUT).status_code == 200
    assert proxy.tunnels == []


def test_the_context_applies_through_the_proxy(https_server: HttpsServer,
                                               proxy: ConnectProxy) -> None:
    with https_session(client_context(None, insecure=False), proxy.url) as session, \
            pytest.raises(requests.exceptions.SSLError):
        session.get(https_server.url(), timeout=TIMEOUT)
    assert proxy.tunnels == [f"127.0.0.1:{https_server.port}"]


def test_proxy_credentials_reach_the_proxy_and_no_record(https_server: HttpsServer,
                                                         sandbox_context: ssl.SSLContext) -> None:
    with start_proxy(require_auth=(PROXY_USER, PROXY_PASSWORD)) as guarded:
        session = https_session(sandbox_context, with_credentials(guarded.url))
        client = DeadlineHttpClient(session, Deadline(TIMEOUT))
        assert client.get(https_server.url()).status_code == 200
        client.close()
        assert guarded.tunnels == [f"127.0.0.1:{https_server.port}"]
    assert PROXY_PASSWORD not in "\n".join(client.exchanges)


def test_wrong_proxy_credentials_are_a_proxy_error(https_server: HttpsServer,
                                                   sandbox_context: ssl.SSLContext) -> None:
    with start_proxy(require_auth=(PROXY_USER, PROXY_PASSWORD)) as guarded:
        session = https_session(sandbox_context, with_credentials(guarded.url, password="x"))
        client = DeadlineHttpClient(session, Deadline(TIMEOUT))
        with pytest.raises(requests.exceptions.ProxyError) as caught:
            client.get(https_server.url())
        client.close()
        assert guarded.tunnels == []
    assert "407" in str(caught.value)
    assert f"{PROXY_USER}:x@" not in str(caught.value)
    assert re.fullmatch(r"GET https://127\.0\.0\.1:\d+/ok -> ProxyError \(\d+\.\d{3}s\)",
                        client.exchanges[0])


# --- DeadlineHttpClient ------------------------------------------------------------------------

def test_a_stalled_answer_is_the_deadline(https_server: HttpsServer,
                                          sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, None), Deadline(0.4))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        client.get(https_server.url("/stall"))
    assert time.monotonic() - started < 2.0
    assert caught.value.waiting_for == f"the answer of 127.0.0.1:{https_server.port}"
    assert re.fullmatch(r"GET https://127\.0\.0\.1:\d+/stall -> no answer in time \(0\.\d{3}s\)",
                        client.exchanges[0])
    client.close()


def test_a_body_that_stops_coming_is_the_deadline(https_server: HttpsServer,
                                                  sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, None), Deadline(0.4))
    with pytest.raises(DeadlineExceeded):
        client.get(https_server.url("/slow-body"))
    client.close()


def test_a_stall_through_the_proxy_is_the_deadline(https_server: HttpsServer,
                                                   proxy: ConnectProxy,
                                                   sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, proxy.url), Deadline(0.4))
    with pytest.raises(DeadlineExceeded):
        client.get(https_server.url("/stall"))
    client.close()


def test_a_proxy_that_never_answers_is_the_deadline(https_server: HttpsServer,
                                                    sandbox_context: ssl.SSLContext) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = DeadlineHttpClient(https_session(sandbox_context, silent_url), Deadline(0.4))
        with pytest.raises(DeadlineExceeded):
            client.get(https_server.url())
        client.close()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_refused_connections_are_not_the_deadline(sandbox_context: ssl.SSLContext) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = DeadlineHttpClient(https_session(sandbox_context, None), Deadline(TIMEOUT))
    with pytest.raises(requests.exceptions.ConnectionError) as direct:
        client.get(closed.replace("http:", "https:") + "/ok")
    assert not isinstance(direct.value, requests.exceptions.Timeout)
    client = DeadlineHttpClient(https_session(sandbox_context, closed), Deadline(TIMEOUT))
    with pytest.raises(requests.exceptions.ProxyError):
        client.get(f"https://127.0.0.1:{free_port()}/ok")


def test_a_target_the_proxy_cannot_reach_is_a_proxy_error(proxy: ConnectProxy,
                                                         sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, proxy.url), Deadline(TIMEOUT))
    with pytest.raises(requests.exceptions.ProxyError, match="502"):
        client.get(f"https://127.0.0.1:{free_port()}/ok")
    assert proxy.tunnels == []


def test_nothing_is_sent_once_the_deadline_has_passed(https_server: HttpsServer,
                                                      sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, None), Deadline(0.0))
    with pytest.raises(DeadlineExceeded):
        client.get(https_server.url())
    assert https_server.seen == []


def test_exchanges_keep_no_query_string_or_body(https_server: HttpsServer,
                                                sandbox_context: ssl.SSLContext) -> None:
    client = DeadlineHttpClient(https_session(sandbox_context, None), Deadline(TIMEOUT))
    got = client.get(https_server.url("/ok?code=hidden"), params={"client_secret": CLIENT_SECRET})
    posted = client.post(https_server.url("/token"), data={"client_secret": CLIENT_SECRET},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=0.000001)
    client.close()
    assert got.status_code == posted.status_code == 200
    assert CLIENT_SECRET in https_server.seen[0] and CLIENT_SECRET in https_server.bodies[0]
    assert re.fullmatch(r"GET https://127\.0\.0\.1:\d+/ok -> 200 \(\d+\.\d{3}s\)",
                        client.exchanges[0])
    assert re.fullmatch(r"POST https://127\.0\.0\.1:\d+/token -> 200 \(\d+\.\d{3}s\)",
                        client.exchanges[1])
    record = "\n".join(client.exchanges)
    assert "hidden" not in record and CLIENT_SECRET not in record and TOKEN not in record
    assert client.last_response is posted
    assert client.last_response.headers["x-ms-request-id"] == "request-1234"


def test_msal_acquires_a_token_through_the_client(https_server: HttpsServer,
                                                  proxy: ConnectProxy,
                                                  sandbox_context: ssl.SSLContext) -> None:
    """msal 1.39, unchanged, with this client: tenant discovery, then the token request."""
    client = DeadlineHttpClient(https_session(sandbox_context, proxy.url), Deadline(TIMEOUT))
    app = msal.ConfidentialClientApplication(
        "00000000-0000-0000-0000-000000000001", client_credential=CLIENT_SECRET,
        authority=f"https://127.0.0.1:{https_server.port}/sandbox-tenant",
        http_client=client, instance_discovery=False, azure_region=False,
    )
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    client.close()
    assert result["access_token"] == TOKEN
    assert [line.split(" -> ")[0].split("/", 3)[-1] for line in client.exchanges] == [
        "sandbox-tenant/v2.0/.well-known/openid-configuration",
        "sandbox-tenant/oauth2/v2.0/token",
    ]
    assert CLIENT_SECRET in https_server.bodies[0]
    assert CLIENT_SECRET not in "\n".join(client.exchanges)
    assert len(proxy.tunnels) >= 1


# --- open_tunnel -------------------------------------------------------------------------------

def connect_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_tunnel_then_tls_to_the_host_behind_it(https_server: HttpsServer, proxy: ConnectProxy,
                                               sandbox_ca: SandboxCA) -> None:
    deadline = Deadline(TIMEOUT)
    with connect_to(proxy.port) as sock:
        status = open_tunnel(sock, "127.0.0.1", https_server.port, deadline, proxy.url)
        assert status == "HTTP/1.1 200 Connection established"
        with handshake(sock, sandbox_ca.client_context(), "127.0.0.1", deadline,
                       "through the proxy") as tls:
            tls.sendall(b"GET /ok HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert tls.recv(4096).startswith(b"HTTP/1.0 200 ")
    assert proxy.tunnels == [f"127.0.0.1:{https_server.port}"]


def test_tunnel_with_credentials(https_server: HttpsServer) -> None:
    with start_proxy(require_auth=(PROXY_USER, PROXY_PASSWORD)) as guarded, \
            connect_to(guarded.port) as sock:
        open_tunnel(sock, "127.0.0.1", https_server.port, Deadline(TIMEOUT),
                    with_credentials(guarded.url))
        assert guarded.tunnels == [f"127.0.0.1:{https_server.port}"]


def test_tunnel_to_ipv6_loopback() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as target, \
            start_proxy() as running, connect_to(running.port) as sock:
        port = target.getsockname()[1]
        open_tunnel(sock, "::1", port, Deadline(TIMEOUT), running.url)
        assert running.tunnels == [f"[::1]:{port}"]
        target.accept()[0].close()


@pytest.mark.parametrize(("refuse", "status_line", "fix"), [
    (407, "HTTP/1.1 407 Proxy Authentication Required", "wants credentials"),
    (403, "HTTP/1.1 403 Forbidden", "policy forbids tunnels to 127.0.0.1:443"),
    (502, "HTTP/1.1 502 Bad Gateway", "could not reach 127.0.0.1:443"),
    (503, "HTTP/1.1 503 Service Unavailable", "could not reach"),
    (405, "HTTP/1.1 405 Method Not Allowed", "unexpected answer"),
])
def test_tunnel_refusals_are_told_apart(refuse: int, status_line: str, fix: str) -> None:
    with start_proxy(refuse=refuse) as refusing, connect_to(refusing.port) as sock, \
            pytest.raises(StepFailed) as caught:
        open_tunnel(sock, "127.0.0.1", 443, Deadline(TIMEOUT), refusing.url)
    diagnosis = caught.value.diagnosis
    assert diagnosis.problem == "proxy refused the tunnel"
    assert diagnosis.reply == status_line
    assert fix in (diagnosis.fix or "")


def test_refused_credentials_are_named_and_never_shown() -> None:
    with start_proxy(require_auth=(PROXY_USER, PROXY_PASSWORD)) as guarded, \
            connect_to(guarded.port) as sock, pytest.raises(StepFailed) as caught:
        open_tunnel(sock, "127.0.0.1", 443, Deadline(TIMEOUT),
                    with_credentials(guarded.url, password="wrong-Pa55word"))
    diagnosis = caught.value.diagnosis
    assert "did not accept the user and password" in (diagnosis.fix or "")
    text = f"{caught.value} {diagnosis}"
    assert "wrong-Pa55word" not in text and PROXY_USER not in text


def test_the_sandbox_proxy_tunnels_only_to_loopback() -> None:
    with start_proxy() as running, connect_to(running.port) as sock, \
            pytest.raises(StepFailed) as caught:
        open_tunnel(sock, "192.0.2.1", 443, Deadline(TIMEOUT), running.url)
    assert caught.value.diagnosis.reply == "HTTP/1.1 403 Forbidden"
    assert running.tunnels == []


def test_a_proxy_that_hangs_up() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            connect_to(listener.getsockname()[1]) as sock:
        listener.accept()[0].close()
        with pytest.raises(StepFailed) as caught:
            open_tunnel(sock, "127.0.0.1", 443, Deadline(TIMEOUT), "http://127.0.0.1:1")
    assert caught.value.diagnosis.problem == "the proxy closed the connection"


def test_something_else_than_a_proxy_is_named_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            connect_to(listener.getsockname()[1]) as sock:
        accepted, _ = listener.accept()
        with accepted:
            accepted.sendall(b"220 mail.example.com ESMTP ready\r\n")
            started = time.monotonic()
            with pytest.raises(StepFailed) as caught:
                open_tunnel(sock, "127.0.0.1", 443, Deadline(TIMEOUT), "http://127.0.0.1:1")
    assert time.monotonic() - started < 1.0
    assert caught.value.diagnosis.problem == "not an HTTP proxy"
    assert caught.value.diagnosis.reply == "220 mail.example.com ESMTP ready"


def test_a_proxy_that_never_answers_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            connect_to(listener.getsockname()[1]) as sock, \
            pytest.raises(DeadlineExceeded) as caught:
        open_tunnel(sock, "127.0.0.1", 443, Deadline(0.3), "http://127.0.0.1:1")
    assert caught.value.waiting_for == "the proxy's answer to CONNECT"


def test_the_first_bytes_of_the_far_end_stay_in_the_socket() -> None:
    """An SMTP greeting in the same segment as the proxy's 200 belongs to the caller."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            connect_to(listener.getsockname()[1]) as sock:
        accepted, _ = listener.accept()
        with accepted:
            accepted.sendall(b"HTTP/1.0 200 OK\r\nVia: test\r\n\r\n220 mail ESMTP\r\n")
            assert open_tunnel(sock, "127.0.0.1", 587, Deadline(TIMEOUT),
                               "http://127.0.0.1:1") == "HTTP/1.0 200 OK"
            assert sock.recv(100) == b"220 mail ESMTP\r\n"
            request = accepted.recv(1000)
    assert request.startswith(b"CONNECT 127.0.0.1:587 HTTP/1.1\r\nHost: 127.0.0.1:587\r\n")


def test_proxy_endpoint_and_display() -> None:
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp:3128"
    assert proxy_endpoint(url) == ("proxy.corp", 3128)
    assert proxy_endpoint("http://proxy.corp") == ("proxy.corp", 80)
    assert proxy_endpoint("http://[::1]:8080") == ("::1", 8080)
    assert proxy_display(url) == "http://proxy.corp:3128"
    with pytest.raises(SettingsError) as caught:
        proxy_endpoint(f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp:1080")
    assert PROXY_PASSWORD not in str(caught.value)


# --- the sandbox proxy -------------------------------------------------------------------------

def test_stopping_the_proxy_cuts_open_tunnels(https_server: HttpsServer) -> None:
    running = start_proxy()
    with connect_to(running.port) as sock:
        open_tunnel(sock, "127.0.0.1", https_server.port, Deadline(TIMEOUT), running.url)
        running.stop()
        assert sock.recv(100) == b""
    running.stop()  # a second stop is harmless


def test_the_proxy_answers_other_methods_with_405(proxy: ConnectProxy) -> None:
    with connect_to(proxy.port) as sock:
        sock.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 405 ")
