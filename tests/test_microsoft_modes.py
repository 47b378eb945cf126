"""The o365-smtp and graph modes against the sandbox's Microsoft 365: one case per diagnosis.

Each case is named by the state it expects first; it gives the mode, the sandbox scenario,
options beyond the usual ones, and what a user must see: exit code, first line, the -v
output with its fix, and the perfdata labels.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field

import pytest
from checkrun import run_check

from check_mailgw.sandbox.check_commands import oauth_args

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@dataclass(frozen=True)
class Case:
    name: str
    mode: str
    scenario: str
    exit_code: int
    first_line: str  # regex, searched in the first line
    long_output: str = ""  # regex, searched in the -v output
    perfdata: frozenset[str] = field(default_factory=frozenset)
    options: tuple[str, ...] = ()


def perf(*labels: str) -> frozenset[str]:
    return frozenset(labels)


TOKEN = perf("token_time", "token_ttl", "total_time")
SMTP = TOKEN | perf("connect_time", "greeting_time", "tls_time", "auth_time", "cert_days")
GRAPH = TOKEN | perf("connect_time", "tls_time", "send_time", "cert_days")
EXPIRY = perf("expiry_time", "secret_days")
TOKEN_FAILED = perf("token_time", "total_time")

CASES = [
    # Healthy
    # The token's and TLS's briefs would take the first line past 160 characters: -v has them.
    Case("ok-o365-smtp-xoauth2-envelope", "o365-smtp", "ok", OK,
         r"^MAILGW OK - o365-smtp 127\.0\.0\.1:\d+: "
         r"AUTH XOAUTH2 as monitor@sandbox\.test, MAIL/RCPT accepted, nothing sent, "
         r"client secret 180 days left in",
         r"token\s+OK .*token \(SMTP\.SendAsApp\) - .*aud=https://outlook\.office365\.com; "
         r"tid=[0-9a-f-]+; appid=[0-9a-f-]+; roles=SMTP\.SendAsApp(?s:.*)"
         r"tls\s+OK .*STARTTLS TLSv1\.[23]", SMTP | EXPIRY | perf("envelope_time")),
    Case("ok-graph-probe-is-an-inference", "graph", "ok", OK,
         r"^MAILGW OK - graph 127\.0\.0\.1:\d+: token \(Mail\.Send\), HTTPS TLSv1\.[23], "
         r"sendMail as "
         r"monitor@sandbox\.test probed, nothing sent, client secret 180 days left in",
         r"send\s+OK .*status=400.*inference=Graph answered a message without recipients",
         GRAPH | EXPIRY),
    Case("ok-rbac-only-token-without-roles-is-information", "graph", "rbac-only", OK,
         r"^MAILGW OK - graph", r"roles=none; .*note=no Mail\.Send role in the token: the right "
         r"may come from Exchange RBAC for Applications", GRAPH),
    Case("ok-o365-rbac-only", "o365-smtp", "rbac-only", OK, r"^MAILGW OK - o365-smtp",
         r"note=no SMTP\.SendAsApp role in the token", SMTP),
    # Token endpoint
    Case("crit-secret-expired", "graph", "secret-expired", CRITICAL,
         r"^MAILGW CRITICAL - token on .*: token refused \(the client secret has expired\): "
         r"AADSTS7000222", r"fix: create a new client secret", TOKEN_FAILED),
    Case("crit-app-disabled", "o365-smtp", "app-disabled", CRITICAL,
         r"token refused \(the application is disabled\): AADSTS7000112",
         r"fix: re-enable the app", TOKEN_FAILED),
    Case("crit-conditional-access", "graph", "conditional-access", CRITICAL,
         r"token refused \(blocked by Conditional Access\): AADSTS53003",
         r"fix: a Conditional Access policy for workload identities", TOKEN_FAILED),
    Case("crit-certificate-unknown", "graph", "certificate-unknown", CRITICAL,
         r"AADSTS700027", r"fix: upload the certificate", TOKEN_FAILED),
    Case("warn-token-throttled", "graph", "token-throttled", WARNING,
         r"^MAILGW WARNING - token on .*: the identity provider is throttling this app: "
         r"HTTP 429; retry after 30s", r"fix: too many token requests", TOKEN_FAILED),
    Case("crit-token-endpoint-unavailable", "o365-smtp", "token-unavailable", CRITICAL,
         r"identity provider error during the token request: HTTP 503",
         r"fix: Entra ID has a problem of its own", TOKEN_FAILED),
    Case("crit-token-endpoint-not-json", "graph", "token-not-json", CRITICAL,
         r"the token endpoint did not answer with JSON: HTTP 502 text/html",
         r"fix: something else answers in Microsoft's place", TOKEN_FAILED),
    Case("crit-tenant-not-found", "graph", "ok", CRITICAL,
         r"token refused \(tenant not found\): AADSTS90002", r"fix: check the Tenant ID",
         TOKEN_FAILED, ("--tenant-id", "00000000-0000-0000-0000-00000000beef")),
    Case("crit-tenant-domain-not-found", "o365-smtp", "ok", CRITICAL,
         r"AADSTS90002", r"fix: check the Tenant ID", TOKEN_FAILED,
         ("--tenant-id", "contoso.onmicrosoft.com")),
    Case("crit-application-not-found", "graph", "ok", CRITICAL,
         r"token refused \(application not found in the directory\): AADSTS700016",
         r"fix: check the Client ID", TOKEN_FAILED,
         ("--client-id", "11111111-2222-3333-4444-555555555555")),
    Case("crit-scope-without-default", "graph", "ok", CRITICAL,
         r"token refused \(the scope does not end in /\.default\): AADSTS1002012",
         r"fix: client credentials need a /\.default scope", TOKEN_FAILED,
         ("--scope", "https://graph.microsoft.com")),
    Case("crit-scope-unknown-resource", "o365-smtp", "ok", CRITICAL,
         r"token refused \(the resource of the scope is not in this tenant\): AADSTS500011",
         r"fix: check the scope's host", TOKEN_FAILED,
         ("--scope", "https://unknown.example/.default")),
    Case("warn-token-slower-than-threshold", "graph", "token-slow", WARNING,
         r"^MAILGW WARNING - token took 1\.\d\ds \(warning outside 1\)",
         r"fix: the identity provider answers slowly", GRAPH, ("--token-warning", "1")),
    # Graph
    Case("crit-graph-denied", "graph", "graph-denied", CRITICAL,
         r"send on .*: sendMail refused \(access denied: the app may not send as this mailbox\):"
         r" 403 ErrorAccessDenied", r"fix: .*Mail\.Send.*RBAC for Applications", GRAPH),
    Case("crit-graph-no-roles", "graph", "graph-no-roles", CRITICAL,
         r"sendMail refused \(token has no roles: Mail.Send unconsented, or no RBAC role\): "
         r"401 NoPermissionsInAccessToken", r"fix: .*Mail\.Send", GRAPH),
    Case("crit-graph-access-policy", "graph", "graph-access-policy", CRITICAL,
         r"sendMail refused \(access to the mailbox through Graph is disabled\): 403 "
         r"ErrorAccessDenied", r"403 ErrorAccessDenied: Access to OData is disabled(?s:.*)"
         r"fix: an Application Access Policy", GRAPH),
    Case("crit-graph-mailbox-not-enabled", "graph", "graph-mailbox-not-enabled", CRITICAL,
         r"404 MailboxNotEnabledForRESTAPI", r"fix: the mailbox is inactive", GRAPH),
    Case("crit-graph-resource-not-found", "graph", "graph-resource-not-found", CRITICAL,
         r"404 ResourceNotFound", r"fix: check From", GRAPH),
    Case("crit-graph-unknown-user", "graph", "ok", CRITICAL,
         r"sendMail refused \(the From address is not a mailbox of this tenant\): 404 "
         r"ErrorInvalidUser", r"fix: check From", GRAPH,
         ("--from", "nobody@sandbox.test")),
    Case("warn-graph-throttled", "graph", "graph-throttled", WARNING,
         r"^MAILGW WARNING - send on .*: Graph is throttling this app: 429 ApplicationThrottled"
         r".*retry after 10s", r"fix: Graph limits an app to 4 concurrent requests", GRAPH),
    Case("crit-graph-unavailable", "graph", "graph-unavailable", CRITICAL,
         r"Graph server error: 503 \w+; retry after \d+s: ", r"fix: Microsoft Graph has a problem",
         GRAPH),
    Case("crit-graph-not-json", "graph", "graph-not-json", CRITICAL,
         r"Graph did not answer with JSON: HTTP 502 text/html", r"fix: something else answers",
         GRAPH),
    Case("crit-graph-token-sent-to-graph-is-for-exchange", "graph", "ok", CRITICAL,
         r"token on .*: the token is not for Microsoft Graph: aud https://outlook\.office365\.com"
         r" \(Exchange Online\)", r"fix: leave OAuth Scope empty", TOKEN_FAILED,
         ("--scope", "https://outlook.office365.com/.default")),
    # Exchange SMTP
    Case("crit-sp-not-registered", "o365-smtp", "sp-not-registered", CRITICAL,
         r"auth on .*: authentication refused \(Exchange did not accept the app for this "
         r"mailbox\): 535 5\.7\.3 Authentication unsuccessful",
         r"fix: .*New-ServicePrincipal.*RBAC for Applications", SMTP),
    Case("crit-smtp-auth-disabled-tenant", "o365-smtp", "auth-disabled", CRITICAL,
         r"authentication refused \(SMTP AUTH is disabled for the tenant or the mailbox\): "
         r"535 5\.7\.139", r"fix: .*Set-CASMailbox", SMTP),
    Case("crit-smtp-auth-disabled-mailbox", "o365-smtp", "smtp-auth-disabled-mailbox", CRITICAL,
         r"\(SMTP AUTH is disabled for the mailbox\): 535 5\.7\.139", r"fix: .*Set-CASMailbox",
         SMTP),
    Case("crit-smtp-conditional-access", "o365-smtp", "smtp-conditional-access", CRITICAL,
         r"\(blocked by Conditional Access or security defaults\): 535 5\.7\.139",
         r"fix: a Conditional Access policy", SMTP),
    Case("crit-xoauth2-malformed", "o365-smtp", "xoauth2-malformed", CRITICAL,
         r"\(Exchange could not read the XOAUTH2 data\): 501 5\.5\.124", r"fix: the SASL string",
         SMTP),
    Case("crit-mailbox-logon-failure-at-auth", "o365-smtp", "mailbox-logon-failure-auth",
         CRITICAL,
         r"\(Exchange could not open the mailbox \(mailbox logon failure\)\): 430 4\.2\.0",
         r"fix: the app lacks FullAccess", SMTP),
    Case("crit-mailbox-logon-failure-after-data", "o365-smtp", "mailbox-logon-failure",
         CRITICAL, r"send on .*: test message refused \(Exchange could not open the mailbox "
         r"\(mailbox logon failure\)\): 430 4\.2\.0", r"fix: the app lacks FullAccess",
         SMTP | perf("send_time"), ("--send-to", "ops@sandbox.test")),
    Case("crit-send-as-denied", "o365-smtp", "send-as-denied", CRITICAL,
         r"test message refused \(the app may not send from this mailbox\): 554 5\.2\.252",
         r"fix: Exchange checks the app's right at the end of DATA", SMTP,
         ("--send-to", "ops@sandbox.test")),
    Case("crit-send-as-denied-5760", "o365-smtp", "send-as-denied-5760", CRITICAL,
         r"test message refused \(the app may not send from this mailbox\): 550 5\.7\.60",
         r"fix: Exchange checks the app's right at the end of DATA", SMTP,
         ("--send-to", "ops@sandbox.test")),
    Case("crit-tls-too-old", "o365-smtp", "tls-too-old", CRITICAL,
         r"\(Exchange refuses TLS 1\.0 and 1\.1\): 421 4\.7\.66", r"fix: this client connected "
         r"with TLS below 1\.2"),
    Case("warn-exchange-tempfail", "o365-smtp", "exchange-tempfail", WARNING,
         r"\(temporary Exchange Online server error\): 451 4\.7\.0", r"fix: a passing fault",
         SMTP),
    Case("crit-graph-token-sent-to-smtp", "o365-smtp", "ok", CRITICAL,
         r"token on .*: the token is not for Exchange Online: aud https://graph\.microsoft\.com",
         r"fix: leave OAuth Scope empty", TOKEN_FAILED, ("--scope", GRAPH_SCOPE)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_microsoft_scenario(case: Case, mailgw_sandbox, mailgw_check) -> None:
    mailgw_sandbox.play(case.scenario)
    result = mailgw_check(case.mode, *case.options, "-v")
    assert result.exit_code == case.exit_code, result.stdout
    assert re.search(case.first_line, result.first_line), result.stdout
    if case.long_output:
        assert re.search(case.long_output, result.long_output), result.stdout
    missing = case.perfdata - set(result.perfdata)
    assert not missing, f"perfdata lacks {missing}: {result.stdout}"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_wrong_secret_says_the_id_may_have_been_pasted(m365, ca_file, tmp_path) -> None:
    sandbox = m365("ok")
    wrong = tmp_path / "secret"
    wrong.write_text("Abc8Q~not-the-right-secret-value-at-all0\n")
    result = run_check(*oauth_args(sandbox, "graph", ca_file, wrong), "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"token refused \(invalid client secret\): AADSTS7000215",
                     result.first_line), result.stdout
    assert "the secret's ID was pasted instead of its Value" in result.long_output
    assert re.search(r"trace_id=[0-9a-f-]+; correlation_id=[0-9a-f-]+", result.long_output)


def test_the_token_overlaps_the_transport(mailgw_sandbox, mailgw_check) -> None:
    """A 1.5 s token endpoint and a 1.5 s SMTP greeting cost about 1.5 s, not 3 s.

    The end date is given, so no Graph token is asked for the expiry lookup (in this
    scenario it would wait another 1.5 s, after the first token): the mail path alone."""
    no_lookup = ("--secret-expires", "2099-01-01")
    healthy = mailgw_check("o365-smtp", *no_lookup)
    mailgw_sandbox.play("slow-token-and-transport")
    slow = mailgw_check("o365-smtp", *no_lookup)
    assert healthy.exit_code == slow.exit_code == OK, slow.stdout
    token, greeting = slow.value("token_time"), slow.value("greeting_time")
    assert token >= 1.4 and greeting >= 1.4, slow.stdout
    # Run one after the other, the two waits would add up; side by side they overlap.
    assert slow.value("total_time") < token + greeting - 1.0, slow.stdout
    assert slow.value("total_time") - healthy.value("total_time") < token + 0.5, slow.stdout


JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")


@pytest.mark.parametrize("mode", ["o365-smtp", "graph"])
@pytest.mark.parametrize("extra", [("-vvv",), ("--format", "json", "-vvv"),
                                   ("-vvv", "--send-to", "ops@sandbox.test")])
def test_no_secret_or_token_in_any_output(mode, extra, m365, ca_file, tmp_path) -> None:
    from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

    sandbox = m365("ok")
    args = [a for a in oauth_args(sandbox, mode, ca_file, tmp_path / "unused")
            if "unused" not in str(a) and a != "--client-secret-file"]
    result = run_check(*args, "--client-secret", SANDBOX_CLIENT_SECRET, *extra)
    assert result.exit_code == OK, result.stdout
    everything = result.stdout + result.stderr
    assert SANDBOX_CLIENT_SECRET not in everything
    assert not JWT.search(everything), everything
    assert "****" in everything or "json" in extra


def test_a_refused_token_shows_no_secret_either(m365, ca_file) -> None:
    from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

    sandbox = m365("secret-expired")
    args = [a for a in oauth_args(sandbox, "graph", ca_file, "x") if a not in
            ("--client-secret-file", "x")]
    result = run_check(*args, "--client-secret", SANDBOX_CLIENT_SECRET, "-vvv")
    assert result.exit_code == CRITICAL
    assert SANDBOX_CLIENT_SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["o365-smtp", "graph"])
def test_https_goes_through_the_proxy(mode, m365, ca_file, client_secret_file) -> None:
    from check_mailgw.sandbox.plumbing.proxy import start_proxy

    sandbox = m365("ok")
    with start_proxy() as proxy:
        result = run_check(*oauth_args(sandbox, mode, ca_file, client_secret_file),
                           "--proxy", proxy.url, "-v")
        tunnels = list(proxy.tunnels)
    assert result.exit_code == OK, result.stdout
    authority = sandbox.authority.removeprefix("https://")
    assert authority in tunnels
    if mode == "graph":
        assert sandbox.graph_url.removeprefix("https://") in tunnels
        assert "tunnel_time" in result.perfdata


def test_the_proxy_comes_from_the_environment_and_no_proxy_is_honoured(
        m365, ca_file, client_secret_file) -> None:
    import os

    from check_mailgw.sandbox.plumbing.proxy import start_proxy

    sandbox = m365("ok")
    args = oauth_args(sandbox, "graph", ca_file, client_secret_file)
    with start_proxy() as proxy:
        env = {**os.environ, "HTTPS_PROXY": proxy.url, "NO_PROXY": ""}
        through = run_check(*args, env=env)
        used = len(proxy.tunnels)
        bypass = run_check(*args, env={**env, "NO_PROXY": "127.0.0.1"})
        assert len(proxy.tunnels) == used
    assert through.exit_code == bypass.exit_code == OK, through.stdout + bypass.stdout
    assert used >= 2


def test_a_proxy_that_refuses_is_named(m365, ca_file, client_secret_file) -> None:
    from check_mailgw.sandbox.plumbing.proxy import start_proxy

    sandbox = m365("ok")
    with start_proxy(refuse=403) as proxy:
        result = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file),
                           "--proxy", proxy.url, "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"(proxy|tunnel)", result.first_line, re.I), result.stdout


@pytest.mark.parametrize(("option", "exit_code", "label"), [
    ((), WARNING, "warning"), (("--basic-auth-retirement", "info"), OK, "note")])
def test_a_password_login_to_exchange_online_counts_down_to_its_retirement(
        option, exit_code, label, m365, ca_file, password_file) -> None:
    from check_mailgw.sandbox.accounts import SANDBOX_USER

    sandbox = m365("ok")
    result = run_check("-H", sandbox.smtp_host, "-p", sandbox.smtp_port, "--tls",
                       "--from", SANDBOX_USER, "-U", SANDBOX_USER, "--password-file",
                       password_file, "--ca-file", ca_file, *option, "-v")
    assert result.exit_code == exit_code, result.stdout
    assert re.search(rf"{label}: Microsoft disables SMTP AUTH with passwords by default from the "
                     r"end of December 2026", result.long_output), result.stdout
    assert "--mode o365-smtp" in result.long_output


def test_several_resources_in_the_scope_are_refused(m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file), "--scope",
                       f"{GRAPH_SCOPE} https://outlook.office365.com/.default", "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"token refused \(the scope is not valid\): AADSTS70011", result.first_line)
    assert "fix: app-only scopes are a resource followed by /.default" in result.long_output


def test_an_untrusted_sign_in_certificate_is_a_tls_failure(m365, client_secret_file) -> None:
    from check_mailgw.sandbox.plumbing.ca import SandboxCA

    other = SandboxCA()
    sandbox = m365("exchange-slow")  # the token's answer is in before the chain breaks
    with tempfile.TemporaryDirectory() as directory:
        wrong_ca = other.write_ca(f"{directory}/other-ca.pem")
        result = run_check(*oauth_args(sandbox, "o365-smtp", wrong_ca, client_secret_file),
                           "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"token\s+CRITICAL .*TLS to 127\.0\.0\.1 failed", result.long_output)
    assert "fix: this machine does not trust the certificate it got" in result.long_output


def test_a_sign_in_host_that_refuses_connections(m365, ca_file, client_secret_file) -> None:
    import socket

    sandbox = m365("ok")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file),
                       "--authority", f"https://127.0.0.1:{closed_port}", "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(rf"token on 127\.0\.0\.1:{closed_port}: connection to 127\.0\.0\.1 "
                     r"refused", result.first_line), result.stdout
