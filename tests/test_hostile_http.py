"""The Microsoft modes against hostile look-alikes of Entra ID and Graph on loopback.

Each test runs the installed command against tests/hostile_https.py and asserts what a user
sees (exit code, first line, long output, JSON) and what reached the servers: a credential
goes nowhere else, no answer grows the plugin past a bounded size, and a malformed answer is
the server's fault in plain words, never an internal error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from check_mailgw.sandbox.plumbing.ca import SandboxCA
from tests.checkrun import PLUGIN, CheckRun, run_check
from tests.hostile_https import CLIENT_ID, MAILBOX, SECRET, TENANT, HostileServer, hostile_server

CRITICAL, UNKNOWN, WARNING = 2, 3, 1
MEMORY_CAP_KIB = 64 * 1024


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture(scope="module")
def files(ca: SandboxCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("hostile")
    secret = directory / "client-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return {"ca": ca.write_ca(directory / "ca.pem"), "secret": secret}


def args(server: HostileServer, files: dict[str, Path], mode: str = "graph",
         *extra: object) -> list[object]:
    """The token step alone (no Graph call), unless the test asks for the whole graph chain."""
    common = ["--mode", mode, "--authority", server.url, "--graph-url", server.url,
              "--tenant-id", TENANT, "--client-id", CLIENT_ID,
              "--client-secret-file", files["secret"], "--from", MAILBOX,
              "--ca-file", files["ca"], "-t", "8"]
    return [*common, *extra]


def token_only(server: HostileServer, files: dict[str, Path], *extra: object) -> CheckRun:
    return run_check(*args(server, files, "graph", "--check", "expiry",
                           "--secret-expires", "2030-01-01", *extra))


def assert_clean(run: CheckRun) -> None:
    """No secret, no traceback, nothing on stderr, no raw control character, no forged line."""
    text = run.stdout + run.stderr
    assert not any(SECRET[i:i + 12] in text for i in range(len(SECRET) - 11)), text
    assert "Traceback" not in text and "internal error" not in text, text
    assert run.stderr == "", run.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", run.stdout), run.stdout
    assert not any(line.startswith("MAILGW") for line in run.stdout.splitlines()[1:])


@pytest.fixture
def elsewhere(ca: SandboxCA) -> Iterator[HostileServer]:
    """A second server: where a redirect or a hostile discovery document points."""
    with hostile_server(ca) as server:
        yield server


# --- credentials go nowhere else -----------------------------------------------------------------

@pytest.mark.parametrize("behaviour", ["token-redirect", "discovery-redirect"])
def test_a_redirect_is_critical_and_nothing_follows_it(behaviour, ca, files, elsewhere) -> None:
    with hostile_server(ca, behaviour, elsewhere=elsewhere.url) as server:
        run = token_only(server, files, "-vv")
    assert run.exit_code == CRITICAL, run.stdout
    assert re.search(rf"token on 127\.0\.0\.1:{server.port}: the sign-in host answered with a "
                     rf"redirect to 127\.0\.0\.1:{elsewhere.port}: something else answers in "
                     r"Microsoft's place", run.first_line), run.first_line
    assert elsewhere.seen == [], "the redirect was followed"
    assert_clean(run)


@pytest.mark.parametrize("where", ["https://127.0.0.1:{other}/t/oauth2/v2.0/token",
                                   "http://127.0.0.1:{port}/t/oauth2/v2.0/token",
                                   "https://evil.test:{port}/t/oauth2/v2.0/token"])
def test_a_token_endpoint_elsewhere_is_refused_before_the_secret_is_sent(
        where, ca, files, elsewhere) -> None:
    with hostile_server(ca, "discovery-elsewhere", token_endpoint="") as server:
        server.options["token_endpoint"] = where.format(other=elsewhere.port, port=server.port)
        run = token_only(server, files, "--format", "json")
    assert run.exit_code == CRITICAL
    document = json.loads(run.stdout)
    token = next(step for step in document["steps"] if step["name"] == "token")
    assert token["problem"].startswith("the discovery document names a token endpoint at ")
    assert token["problem"].endswith("not at the sign-in host: refused; the secret was not sent")
    assert not any(seen.carried_secret for seen in server.seen + elsewhere.seen)
    assert elsewhere.seen == [] and server.requests("POST") == []
    assert_clean(run)


def test_server_text_that_echoes_the_secret_is_masked_and_kept_on_its_line(ca, files) -> None:
    with hostile_server(ca, "token-echoes-secret") as server:
        for verbosity in ("-v", "-vvv"):
            run = token_only(server, files, verbosity)
            assert run.exit_code == CRITICAL
            assert "AADSTS7000215" in run.first_line
            assert "\\x1b[2J" in run.stdout  # shown escaped, never acted on
            assert_clean(run)
        document = json.loads(token_only(server, files, "--format", "json", "-vvv").stdout)
    text = json.dumps(document)
    assert not any(SECRET[i:i + 12] in text for i in range(len(SECRET) - 11))


# --- malformed tokens ----------------------------------------------------------------------------

@pytest.mark.parametrize(("behaviour", "reason"), [
    ("token-crlf", "control characters in it"),
    ("token-not-ascii", "not ASCII"),
    ("token-two-parts", "not three base64url parts"),
    ("token-too-long", "over 16 KiB"),
    ("token-exp-out-of-range", "its exp claim 100000000000000000000 is not a time"),
])
def test_a_malformed_access_token_is_critical_and_never_shown(behaviour, reason, ca,
                                                              files) -> None:
    with hostile_server(ca, behaviour) as server:
        run = run_check(*args(server, files, "graph", "-vvv"))
        document = json.loads(run_check(*args(server, files, "graph", "--format", "json",
                                              "-vvv")).stdout)
    assert run.exit_code == CRITICAL, run.stdout
    assert "token on 127.0.0.1:" in run.first_line
    assert "the identity provider returned a malformed access token" in run.first_line
    assert reason in run.stdout
    assert "X-Evil" not in run.stdout and "eyJhdWQiOiJ4In0" not in run.stdout
    assert server.requests("POST", "sendMail") == [], "a malformed token was used"
    assert "eyJhdWQiOiJ4In0" not in json.dumps(document)
    assert_clean(run)


# --- bounded whatever a server sends -------------------------------------------------------------

def peak_memory(command: list[object]) -> tuple[CheckRun, int]:
    """Runs the command in a process of its own and returns its peak RSS in KiB."""
    probe = ("import resource, subprocess, sys; "
             "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, "
             "stdin=subprocess.DEVNULL); "
             "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) "
             "+ '\\n' + str(done.returncode) + '\\n' + done.stdout); "
             "sys.stderr.write(done.stderr)")
    completed = subprocess.run([sys.executable, "-c", probe, str(PLUGIN), *map(str, command)],
                               capture_output=True, text=True, timeout=60)
    peak, code, stdout = completed.stdout.split("\n", 2)
    return CheckRun(int(code), stdout, completed.stderr), int(peak)


@pytest.mark.parametrize(("behaviour", "words"), [
    ("token-endless", "the token endpoint's answer exceeds 1 MiB"),
    ("token-50mb", "the token endpoint's answer exceeds 1 MiB"),
    ("token-gzip-bomb", "the token endpoint's answer came compressed (gzip) though asked for "
                        "none: refused"),
])
def test_an_oversized_or_compressed_answer_is_critical_within_a_bounded_size(
        behaviour, words, ca, files) -> None:
    with hostile_server(ca, behaviour) as server:
        run, peak = peak_memory(args(server, files, "graph", "--check", "expiry",
                                     "--secret-expires", "2030-01-01"))
    assert run.exit_code == CRITICAL, run.stdout
    assert words in run.first_line, run.first_line
    assert peak < MEMORY_CAP_KIB, f"peak RSS {peak} KiB"
    assert_clean(run)


@pytest.mark.parametrize(("behaviour", "words"), [
    ("graph-50mb", "Graph's answer exceeds 4 MiB"),
    ("graph-gzip", "Graph's answer came compressed (gzip) though asked for none: refused"),
])
def test_an_oversized_or_compressed_graph_answer_is_critical_too(behaviour, words, ca,
                                                                  files) -> None:
    with hostile_server(ca, behaviour) as server:
        run, peak = peak_memory(args(server, files, "graph", "--secret-expires", "2030-01-01"))
    assert run.exit_code == CRITICAL, run.stdout
    assert "send on 127.0.0.1:" in run.first_line
    assert words in run.first_line, run.first_line
    assert peak < MEMORY_CAP_KIB, f"peak RSS {peak} KiB"


def test_an_answer_that_trickles_in_ends_at_the_deadline_naming_the_sign_in_host(
        ca, files) -> None:
    with hostile_server(ca, "token-trickle") as server:
        run = token_only(server, files, "-t", "2")
    assert run.exit_code == UNKNOWN, run.stdout
    assert re.search(rf"token on 127\.0\.0\.1:{server.port}: timed out after 2s \(-t\) waiting "
                     rf"for the answer of 127\.0\.0\.1:{server.port}", run.first_line), run.stdout
    assert_clean(run)


# --- malformed but small answers are the server's fault ------------------------------------------

@pytest.mark.parametrize(("behaviour", "words"), [
    ("discovery-list", "the discovery document is JSON but not an object: HTTP 200: a list"),
    ("discovery-without-token-endpoint", "the discovery document names no token_endpoint"),
    ("token-list", "the token endpoint's answer is JSON but not an object: HTTP 200: a list"),
    ("token-string", "the token endpoint's answer is JSON but not an object: HTTP 200: a str"),
    ("token-without-access-token", "the token endpoint's answer holds no access_token: "
                                   "HTTP 200"),
    ("token-html", "the token endpoint did not answer with JSON: HTTP 200 text/html"),
])
def test_a_malformed_small_answer_is_critical_in_plain_words(behaviour, words, ca,
                                                             files) -> None:
    with hostile_server(ca, behaviour) as server:
        run = token_only(server, files, "-vv")
    assert run.exit_code == CRITICAL, run.stdout
    assert words in run.first_line, run.first_line
    assert "unknown error" not in run.stdout
    assert_clean(run)


def test_retry_after_as_an_http_date_is_turned_into_seconds(ca, files) -> None:
    with hostile_server(ca, "token-throttled-until") as server:
        run = token_only(server, files)
    assert run.exit_code == WARNING, run.stdout
    assert re.search(r"HTTP 429; retry after 1[12]\ds \(\d\d:\d\d:\d\d UTC\)", run.first_line), \
        run.first_line
    assert "GMTs" not in run.stdout


# --- Graph ---------------------------------------------------------------------------------------

def test_a_graph_redirect_is_critical_and_the_token_goes_nowhere_else(ca, files,
                                                                      elsewhere) -> None:
    with hostile_server(ca, "graph-redirect", elsewhere=elsewhere.url) as server:
        run = run_check(*args(server, files, "graph", "--secret-expires", "2030-01-01"))
    assert run.exit_code == CRITICAL, run.stdout
    assert re.search(rf"send on 127\.0\.0\.1:{server.port}: Graph answered with a redirect to "
                     rf"127\.0\.0\.1:{elsewhere.port}", run.first_line), run.first_line
    assert elsewhere.seen == []


def test_a_graph_message_cannot_forge_a_status_line(ca, files) -> None:
    with hostile_server(ca, "graph-forged-line") as server:
        for verbosity in ("-v", "-vv", "-vvv"):
            run = run_check(*args(server, files, "graph", "--secret-expires", "2030-01-01",
                                  verbosity))
            assert run.exit_code == CRITICAL
            assert "Access is denied.\\nMAILGW OK" in run.stdout
            assert_clean(run)


def test_a_refusal_of_a_token_without_roles_names_the_likely_cause(ca, files) -> None:
    with hostile_server(ca, "graph-denied") as server:
        run = run_check(*args(server, files, "graph", "--secret-expires", "2030-01-01"))
    assert run.exit_code == CRITICAL
    assert "sendMail refused" in run.first_line
    assert "token has no roles" not in run.first_line  # this token carries Mail.Send
    with hostile_server(ca, "no-roles-graph-denied") as server:
        run = run_check(*args(server, files, "graph", "--secret-expires", "2030-01-01", "-v"))
    assert run.exit_code == CRITICAL
    assert "sendMail refused (token has no roles: Mail.Send unconsented, or no RBAC role): " \
        "403 ErrorAccessDenied" in run.first_line, run.first_line


# --- the o365-smtp mode's two tokens -------------------------------------------------------------

def test_o365_smtp_asks_for_its_two_tokens_side_by_side(ca, files) -> None:
    with hostile_server(ca, token_delay=1.0) as server:
        run = run_check(*args(server, files, "o365-smtp", "-H", "127.0.0.1", "-p", "1",
                              "--tls", "starttls"))
    assert run.exit_code == CRITICAL  # nothing listens on port 1: the transport fails
    posts = server.requests("POST", "/token")
    scopes = {seen.form.get("scope", "").split()[0] for seen in posts}
    assert {"https://outlook.office365.com/.default",
            "https://graph.microsoft.com/.default"} <= scopes, scopes
    first, second = sorted(posts, key=lambda seen: seen.started)[:2]
    assert second.started < first.ended, "the second token was asked for after the first"


def test_a_secret_expires_date_in_the_past_while_the_secret_works_is_called_out_of_date(
        ca, files) -> None:
    with hostile_server(ca) as server:
        run = run_check(*args(server, files, "graph", "--check", "expiry",
                              "--secret-expires", "2020-01-01", "-v"))
    assert run.exit_code == WARNING, run.stdout
    assert "--secret-expires 2020-01-01 is past, yet the secret signs in: the date given is " \
        "probably out of date" in run.first_line, run.first_line
    assert "fix: update --secret-expires" in run.long_output
    assert "create a new client secret" not in run.stdout
    assert "secret_days" not in run.perfdata


def test_discovery_and_token_share_one_connection(ca, files) -> None:
    """Answers are read whole, so the connection serves the next request: one TLS handshake
    to the sign-in host, not one per request (a round trip or two against a distant host)."""
    with hostile_server(ca) as server:
        run = token_only(server, files)
    assert run.exit_code == 0, run.stdout
    discovery, token = server.requests("GET", "openid-configuration"), server.requests("POST")
    assert len(discovery) == 1 and len(token) == 1
    assert discovery[0].client_port == token[0].client_port
