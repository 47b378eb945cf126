"""A local Microsoft 365 as a whole (sandbox/m365/cloud.py): starting, stopping, oauth_args."""

import gc
import os
import socket
import ssl
import stat
import time
from pathlib import Path

import pytest
import requests
from m365_clients import StartM365
from smtp_clients import TIMEOUT, no_errors_logged

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.m365.cloud import start_m365
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_TENANT_ID,
    SigningKey,
)
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.scenarios import SCENARIOS

pytest_plugins = ["m365_fixtures"]


def test_every_scenario_starts_and_stops_the_m365_listeners(
    sandbox_ca: SandboxCA, sandbox_signing_key: SigningKey
) -> None:
    for name in SCENARIOS:
        with start_m365(ca=sandbox_ca, scenario=name, signing_key=sandbox_signing_key) as sandbox:
            assert sandbox.https.port > 0 and sandbox.smtp_port > 0


def test_stopping_cuts_open_keep_alive_and_slow_requests_at_once(
    m365: StartM365, https: requests.Session, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = m365("token-slow")
    # A keep-alive connection, idle in the pool.
    assert https.get(f"{sandbox.authority}/{SANDBOX_TENANT_ID}/discovery/v2.0/keys").ok
    # And a token request the server is still sleeping on.
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = context.wrap_socket(
        socket.create_connection((sandbox.smtp_host, sandbox.https.port), timeout=TIMEOUT),
        server_hostname=sandbox.smtp_host,
    )
    with raw:
        raw.sendall(
            f"POST /{SANDBOX_TENANT_ID}/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        time.sleep(0.2)
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 1
        try:
            left = raw.recv(4096)
        except (ConnectionError, ssl.SSLError):
            left = b""
        assert left == b""
    gc.collect()
    assert no_errors_logged(caplog)


def test_oauth_args_point_the_plugin_at_a_running_sandbox(
    m365: StartM365, ca_file: Path, client_secret_file: Path
) -> None:
    sandbox = m365()
    arguments = oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file)
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert options == {
        "--mode": "o365-smtp",
        "-H": "127.0.0.1",
        "-p": str(sandbox.smtp_port),
        "--authority": sandbox.authority,
        "--graph-url": sandbox.graph_url,
        "--tenant-id": SANDBOX_TENANT_ID,
        "--client-id": SANDBOX_CLIENT_ID,
        "--client-secret-file": str(client_secret_file),
        "--from": SANDBOX_USER,
        "--ca-file": str(ca_file),
    }
    assert client_secret_file.read_text() == SANDBOX_CLIENT_SECRET
    assert stat.S_IMODE(os.stat(client_secret_file).st_mode) == 0o600
    graph = oauth_args(sandbox, "graph", ca_file, client_secret_file)
    assert "-H" not in graph and "-p" not in graph
