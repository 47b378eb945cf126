"""Credential expiry against the sandbox's Microsoft 365: the secret or certificate in use.

Each scenario of the sandbox's app credentials is pinned by a run of the installed command:
exit code, first line, the days-left perfdata with its N: thresholds, and the long output.
"now" is pinned to the sandbox's reference time (the hidden --now), so days are exact.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

import pytest
from checkrun import CheckRun, run_check

from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.m365.cloud import M365Sandbox

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
MODES = ("graph", "o365-smtp")
PASSPHRASE = "sandbox key passphrase"


def check(sandbox: M365Sandbox, mode: str, ca_file: Path, secret_file: Path, *options: object,
          env: dict[str, str] | None = None) -> CheckRun:
    args = oauth_args(sandbox, mode, ca_file, secret_file)
    return run_check(*args, "--now", sandbox.now.isoformat(), *options, "-v", env=env)


def with_certificate(args: list[str], *certificate_options: object) -> list[str]:
    """The sandbox's command line with a certificate in place of the client secret file."""
    at = args.index("--client-secret-file")
    return [*args[:at], *map(str, certificate_options), *args[at + 2:]]


def check_certificate(sandbox: M365Sandbox, mode: str, ca_file: Path, *certificate_options: object,
                      extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> CheckRun:
    args = with_certificate(oauth_args(sandbox, mode, ca_file, "unused"), *certificate_options)
    return run_check(*args, "--now", sandbox.now.isoformat(), *extra, "-v", env=env)


def expiry_line(result: CheckRun) -> str:
    return next(line for line in result.long_output.splitlines() if line.startswith("expiry"))


# --- the client secret in use ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_healthy_secret_reports_days_left_and_mentions_sooner_secrets(
        mode, m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    result = check(sandbox, mode, ca_file, client_secret_file)
    assert result.exit_code == OK, result.stdout
    assert re.search(r", client secret 180 days left in \d+\.\d\ds$", result.first_line)
    assert result.perfdata["secret_days"] == "180;30:;7:"
    line = expiry_line(result)
    assert "secret=check_mailgw monitor; key_id=b7d9f1a3-5c2e-4d6b-a8f0-1e3c5a7b9d2f" in line
    ends = sandbox.now + datetime.timedelta(days=180, hours=12)
    assert f"ends={ends:%Y-%m-%d %H:%M} UTC" in line
    assert "other_secrets_ending_sooner='old gateway secret' ends" in line
    assert "(12 days)" in line
    assert sandbox.app_lookups == 1


def test_o365_smtp_asks_for_a_graph_token_beside_the_exchange_one(
        m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    result = check(sandbox, "o365-smtp", ca_file, client_secret_file, "-vv")
    assert result.exit_code == OK, result.stdout
    assert sandbox.token_requests == 2
    assert "GET https://" in result.long_output  # the lookup in the -vv dialogue
    assert "applications(appId=" in result.long_output
    assert "$select" not in result.long_output  # no query strings in the dialogue


@pytest.mark.parametrize(("scenario", "days", "exit_code", "state"), [
    ("secret-ends-in-20-days", 20, WARNING, "WARNING"),
    ("secret-ends-in-3-days", 3, CRITICAL, "CRITICAL"),
])
@pytest.mark.parametrize("mode", MODES)
def test_secret_ending_soon(scenario, days, exit_code, state, mode, m365, ca_file,
                            client_secret_file) -> None:
    result = check(m365(scenario), mode, ca_file, client_secret_file)
    assert result.exit_code == exit_code, result.stdout
    assert result.first_line == (f"MAILGW {state} - client secret expires in {days} days "
                                 "(warning below 30, critical below 7)")
    assert result.perfdata["secret_days"] == f"{days};30:;7:"
    assert "fix: create a new client secret" in result.long_output


def test_thresholds_count_days_left_not_a_range(m365, ca_file, client_secret_file) -> None:
    """--secret-warning 10 means "warn below 10 days left": 20 days left is OK."""
    result = check(m365("secret-ends-in-20-days"), "graph", ca_file, client_secret_file,
                   "--secret-warning", "10", "--secret-critical", "2")
    assert result.exit_code == OK, result.stdout
    assert result.perfdata["secret_days"] == "20;10:;2:"


def test_expired_secret_is_critical_at_the_token_whatever_the_lookup(
        m365, ca_file, client_secret_file) -> None:
    for extra in ((), ("--check", "expiry"), ("--secret-expires", "2099-01-01")):
        result = check(m365("secret-expired"), "graph", ca_file, client_secret_file, *extra)
        assert result.exit_code == CRITICAL, result.stdout
        assert "token refused (the client secret has expired): AADSTS7000222" in \
            result.first_line
        assert "secret_days" not in result.perfdata


def test_secrets_sharing_the_hint_nearest_end_counts(m365, ca_file, client_secret_file) -> None:
    result = check(m365("secret-hint-shared"), "graph", ca_file, client_secret_file)
    assert result.exit_code == WARNING, result.stdout
    assert result.perfdata["secret_days"] == "25;30:;7:"
    assert "same_hint=2 secrets share its hint; the nearest end counts" in expiry_line(result)


def test_secret_not_among_the_apps_secrets(m365, ca_file, client_secret_file) -> None:
    result = check(m365("secret-not-listed"), "graph", ca_file, client_secret_file)
    assert result.exit_code == WARNING, result.stdout
    assert re.search(r"expiry on 127\.0\.0\.1:\d+: the configured client secret is not among "
                     r"the app's secrets: none of its 1 secrets has the configured one's hint",
                     result.first_line)
    assert "may belong to another app, or was deleted" in result.long_output
    assert "secret_days" not in result.perfdata


# --- the lookup ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_forbidden_lookup_says_which_permission(mode, m365, ca_file, client_secret_file) -> None:
    result = check(m365("lookup-forbidden"), mode, ca_file, client_secret_file)
    assert result.exit_code == WARNING, result.stdout
    assert re.search(r"^MAILGW WARNING - expiry on 127\.0\.0\.1:\d+: the app may not read its "
                     r"own credentials \(no Application\.Read\.All\): 403 "
                     r"Authorization_RequestDenied", result.first_line)
    assert "403 Authorization_RequestDenied: Insufficient privileges" in result.long_output
    assert "Application.Read.All" in result.long_output
    assert "README, Credential expiry" in result.long_output  # where OwnedBy is explained
    assert "--secret-expires YYYY-MM-DD" in result.long_output
    assert "request_id=" in expiry_line(result)
    assert "secret_days" not in result.perfdata


@pytest.mark.parametrize(("state", "exit_code", "label"), [
    ("info", OK, "note"), ("critical", CRITICAL, "critical"), ("warning", WARNING, "warning")])
def test_forbidden_lookup_state_is_an_option(state, exit_code, label, m365, ca_file,
                                             client_secret_file) -> None:
    result = check(m365("lookup-forbidden"), "o365-smtp", ca_file, client_secret_file,
                   "--expiry-lookup-denied", state)
    assert result.exit_code == exit_code, result.stdout
    assert f"{label}: the app may not read its own credentials" in result.long_output
    # The mail path itself was proven all the same.
    assert "AUTH XOAUTH2 as monitor@sandbox.test" in result.long_output


def test_configured_end_date_skips_the_lookup(m365, ca_file, client_secret_file) -> None:
    sandbox = m365("lookup-forbidden")
    ends = (sandbox.now + datetime.timedelta(days=45)).strftime("%Y-%m-%d")
    result = check(sandbox, "graph", ca_file, client_secret_file, "--secret-expires", ends)
    assert result.exit_code == OK, result.stdout
    assert result.perfdata["secret_days"] in ("44;30:;7:", "45;30:;7:")
    assert "source=--secret-expires" in expiry_line(result)
    assert sandbox.app_lookups == 0


# --- the expiry service on its own ----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_check_expiry_runs_no_mail_traffic(mode, m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    result = check(sandbox, mode, ca_file, client_secret_file, "--check", "expiry")
    assert result.exit_code == OK, result.stdout
    role = "Mail.Send" if mode == "graph" else "SMTP.SendAsApp"
    assert re.fullmatch(rf"MAILGW OK - {mode} app {sandbox.client_id}: token \({role}\), "
                        r"client secret 180 days left in \d+\.\d\ds", result.first_line)
    assert set(result.perfdata) == {"token_time", "token_ttl", "expiry_time", "secret_days",
                                    "total_time"}
    assert not sandbox.graph_messages and not sandbox.smtp_messages


def test_check_expiry_warns_like_the_full_check(m365, ca_file, client_secret_file) -> None:
    result = check(m365("secret-ends-in-20-days"), "o365-smtp", ca_file, client_secret_file,
                   "--check", "expiry")
    assert result.exit_code == WARNING, result.stdout
    assert result.first_line.startswith("MAILGW WARNING - client secret expires in 20 days")


# --- certificate credentials -----------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_certificate_credential_signs_in_and_reports_its_days(mode, m365, ca_file,
                                                              tmp_path) -> None:
    sandbox = m365("ok")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    result = check_certificate(sandbox, mode, ca_file, "--client-certificate", pem,
                               extra=("-vv",))
    assert result.exit_code == OK, result.stdout
    assert re.search(r", certificate 365 days left in \d+\.\d\ds$", result.first_line)
    assert result.perfdata["cert_credential_days"] == "365;30:;7:"
    assert "secret_days" not in result.perfdata
    thumbprint = sandbox.app.certificate.sha1_thumbprint
    line = expiry_line(result)
    assert f"thumbprint={thumbprint}" in line
    assert "key_id=" in line  # matched against the app's keyCredentials
    assert f"credential=certificate {thumbprint}" in result.long_output


def test_certificate_matched_by_the_certificate_itself(m365, ca_file, tmp_path) -> None:
    """customKeyIdentifier is not the thumbprint here: the match goes by the key."""
    sandbox = m365("certificate-accepted")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    result = check_certificate(sandbox, "graph", ca_file, "--client-certificate", pem)
    assert result.exit_code == OK, result.stdout
    assert "key_id=" in expiry_line(result)
    assert "note:" not in result.long_output


def test_certificate_expiring(m365, ca_file, tmp_path) -> None:
    sandbox = m365("certificate-expiring")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    result = check_certificate(sandbox, "o365-smtp", ca_file, "--client-certificate", pem)
    assert result.exit_code == WARNING, result.stdout
    assert result.first_line == ("MAILGW WARNING - client certificate expires in 10 days "
                                 "(warning below 30, critical below 7)")
    assert result.perfdata["cert_credential_days"] == "10;30:;7:"
    assert "fix: make a new certificate, upload its public part" in result.long_output


@pytest.mark.parametrize("mode", MODES)
def test_certificate_not_uploaded_in_plain_words(mode, m365, ca_file, tmp_path) -> None:
    sandbox = m365("certificate-not-uploaded")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    result = check_certificate(sandbox, mode, ca_file, "--client-certificate", pem)
    assert result.exit_code == CRITICAL, result.stdout
    thumbprint = sandbox.app.certificate.sha1_thumbprint
    assert (f"token refused (the app does not know the client certificate {thumbprint}): "
            "AADSTS700027") in result.first_line
    assert "fix: upload the public certificate" in result.long_output


def test_certificate_with_forbidden_lookup_is_a_note(m365, ca_file, tmp_path) -> None:
    """The certificate's own notAfter answers the question; the refusal is information."""
    sandbox = m365("lookup-forbidden")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    result = check_certificate(sandbox, "graph", ca_file, "--client-certificate", pem)
    assert result.exit_code == OK, result.stdout
    assert result.perfdata["cert_credential_days"] == "365;30:;7:"
    assert "note: the app may not read its own credentials" in result.long_output


def test_certificate_forms(m365, ca_file, tmp_path) -> None:
    """A separate key file, an encrypted key with its passphrase from the environment, a
    .pfx with a passphrase file: the same certificate, the same thumbprint."""
    sandbox = m365("ok")
    certificate = sandbox.app.certificate
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    forms = [
        (("--client-certificate", certificate.write_certificate(tmp_path / "cert.pem"),
          "--client-key", certificate.write_key(tmp_path / "key.pem")), None),
        (("--client-certificate",
          sandbox.write_client_certificate(tmp_path / "enc.pem", passphrase=PASSPHRASE)),
         {**os.environ, "MAILGW_CLIENT_KEY_PASSPHRASE": PASSPHRASE}),
        (("--client-certificate", certificate.write_pfx(tmp_path / "app.pfx", PASSPHRASE),
          "--client-key-passphrase-file", passphrase_file), None),
    ]
    for options, env in forms:
        result = check_certificate(sandbox, "graph", ca_file, *options, extra=("-vvv",), env=env)
        assert result.exit_code == OK, result.stdout
        assert f"thumbprint={certificate.sha1_thumbprint}" in result.stdout
        assert PASSPHRASE not in result.stdout + result.stderr


def test_encrypted_key_without_passphrase_is_unknown(m365, ca_file, tmp_path) -> None:
    sandbox = m365("ok")
    pem = sandbox.write_client_certificate(tmp_path / "enc.pem", passphrase=PASSPHRASE)
    result = check_certificate(sandbox, "graph", ca_file, "--client-certificate", pem)
    assert result.exit_code == UNKNOWN
    message = (f"--client-certificate {pem}: the private key is encrypted: give its "
               "passphrase with --client-key-passphrase-file FILE or $MAILGW_CLIENT_KEY_PASSPHRASE")
    # Longer than a first line may be: shortened there, whole on the next line.
    assert result.first_line.startswith("MAILGW UNKNOWN - --client-certificate /")
    assert ": the private key is encrypted: give its passphrase" in result.first_line
    assert result.long_output == message


# --- no key material, at any verbosity -------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_no_private_key_or_token_in_any_output(mode, m365, ca_file, tmp_path) -> None:
    sandbox = m365("ok")
    pem = sandbox.write_client_certificate(tmp_path / "app.pem")
    key_lines = [line for line in pem.read_text().splitlines()
                 if line and not line.startswith("-----")]
    for extra in (("-vvv",), ("--format", "json"), ("--check", "expiry", "-vvv")):
        result = check_certificate(sandbox, mode, ca_file, "--client-certificate", pem,
                                   extra=extra)
        output = result.stdout + result.stderr
        assert result.exit_code == OK, output
        assert "PRIVATE KEY" not in output
        assert not any(line in output for line in key_lines[-10:])  # the key's base64 lines
        assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", output)  # no JWT
        if "json" in extra:
            document = json.loads(result.stdout)
            assert any(p.startswith("cert_credential_days=") for p in
                       document["perfdata"])


def test_check_expiry_needs_no_sender(m365, ca_file, client_secret_file) -> None:
    """The daily expiry service names the app, not a mailbox."""
    sandbox = m365("ok")
    args = oauth_args(sandbox, "graph", ca_file, client_secret_file)
    at = args.index("--from")
    result = run_check(*args[:at], *args[at + 2:], "--check", "expiry")
    assert result.exit_code == OK, result.stdout
    assert "--send-to" not in result.stdout
    refused = run_check(*args, "--check", "expiry", "--send-to", "ops@sandbox.test")
    assert refused.exit_code == UNKNOWN
    assert refused.first_line == ("MAILGW UNKNOWN - --send-to: --check expiry sends nothing "
                                  "(no mail traffic at all)")
