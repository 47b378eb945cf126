"""What a new user gets wrong, told plainly: a misspelt option, thresholds the wrong way
round, a CA file that cannot be read, a secret file from Notepad or with more than one
line; and the 5-minute service that leaves the credential's end to the daily one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from checkrun import run_check

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.check_commands import expiry_args, oauth_args
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
BASE = ("-H", "127.0.0.1", "--from", "monitor@sandbox.test")
BOM = "\ufeff"


def assert_unknown(result, message: str) -> None:
    """UNKNOWN with the message on one line (whole on the second when the first is cut)."""
    assert result.exit_code == UNKNOWN, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("MAILGW UNKNOWN - ") and len(lines) <= 2, result.stdout
    assert re.search(message, lines[-1].removeprefix("MAILGW UNKNOWN - ")), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def secret_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def login(server, ca_file: Path, password_file: Path, *extra: object) -> tuple[object, ...]:
    return ("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
            "-U", SANDBOX_USER, "--password-file", password_file, "--ca-file", ca_file, *extra)


# 1. Options are spelt out: a misspelt or shortened one is named, with what was meant.

@pytest.mark.parametrize(("args", "message"), [
    (("--form", "monitor@sandbox.test"), r"^unknown option --form: did you mean --from\?$"),
    (("--ca", "/etc/ssl/ca.pem"), r"^unknown option --ca: did you mean --ca-file\?$"),
    (("--password-f", "/etc/pw"), r"^unknown option --password-f: did you mean "
     r"--password-file\?$"),
    (("--format=jsn",), r"argument --format: invalid choice: 'jsn'"),
    (("--fromat", "json"), r"^unknown option --fromat: did you mean --format\?$"),
    (("--tsl",), r"^unknown option --tsl: did you mean --tls\?$"),
    (("--zzz-top", "1"), r"^unrecognized arguments: --zzz-top \(check_mailgw --help lists "
     r"every option\)$"),
])
def test_a_misspelt_or_shortened_option_is_named(args: tuple[str, ...], message: str) -> None:
    assert_unknown(run_check(*BASE, *args), message)


def test_the_value_after_a_misspelt_password_option_is_not_shown() -> None:
    result = run_check(*BASE, "--tls", "-U", "u", "--pasword", "Hunter2-very-secret")
    assert_unknown(result, r"^unknown option --pasword: did you mean --password\?$")
    assert "Hunter2" not in result.stdout


def test_options_spelt_out_and_check_smtp_letters_still_work(smtp_server, ca_file: Path,
                                                             password_file: Path) -> None:
    server = smtp_server("starttls")
    result = run_check("-H", server.host, "-p", server.port, "-S", "-f", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--password-file", password_file,
                       "--ca-file", ca_file, "-wt", "5", "-ct", "9", "-vv",
                       "--format=nagios")
    assert result.exit_code == OK, result.stdout
    assert result.first_line.startswith(f"MAILGW OK - smtp {server.host}:{server.port}")


# 2. WARNING comes before CRITICAL: times warn at the smaller number, days left go
# critical at the smaller number.

@pytest.mark.parametrize(("args", "message"), [
    (("-w", "10", "-c", "5"), r"^-w/--warning '10': more seconds than -c/--critical '5'; "
     r"both count the total time, so warning is the smaller number$"),
    (("-w", "10:", "-c", "20"), r"^-w/--warning '10:': more seconds than -c/--critical '20'"),
    (("-w", "2:", "-c", "5:"), r"^-w/--warning '2:' starts below -c/--critical '5:': the "
     r"warning range must lie inside the critical one"),
    (("--token-warning", "3", "--token-critical", "2"), r"^--token-warning '3': more seconds "
     r"than --token-critical '2'; both count the token's acquisition time, so warning is the "
     r"smaller number$"),
    (("--secret-warning", "7", "--secret-critical", "14"), r"^--secret-critical 14: more days "
     r"than --secret-warning 7; both count days left, so critical is the smaller number$"),
    (("-D", "7,14"), r"^-D/--certificate-days '7,14': CRIT 14: more days than WARN 7; both "
     r"count days left on the server certificate, so critical is the smaller number$"),
])
def test_thresholds_the_wrong_way_round_say_which_way(args: tuple[str, ...],
                                                      message: str) -> None:
    assert_unknown(run_check(*BASE, *args), message)


def test_token_thresholds_the_wrong_way_round_in_an_app_mode(m365, ca_file: Path,
                                                             client_secret_file: Path) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file),
                       "--token-warning", "2", "--token-critical", "1")
    assert_unknown(result, r"^--token-warning '2': more seconds than --token-critical '1'")
    assert sandbox.token_requests == 0


def test_thresholds_from_the_config_file_are_ordered_too(tmp_path: Path) -> None:
    config = tmp_path / "mailgw.toml"
    config.write_text('[profiles.p]\nserver = "127.0.0.1"\nfrom = "a@b.test"\nwarning = 9\n'
                      'critical = 4\n')
    assert_unknown(run_check("--config", config),
                   r"^-w/--warning '9': more seconds than -c/--critical '4'")


@pytest.mark.parametrize("args", [
    ("-w", "5", "-c", "5"),  # equal: CRITICAL at once
    ("-w", "@1:3", "-c", "2"),  # @ alerts inside its range: no order to keep
    ("-D", "14,14"),
    ("--secret-warning", "7", "--secret-critical", "7"),
    ("-w", "5"),
])
def test_thresholds_in_order_are_accepted(args: tuple[str, ...], smtp_server, ca_file: Path,
                                          password_file: Path) -> None:
    server = smtp_server("starttls")
    result = run_check(*login(server, ca_file, password_file, "-w", "5", "-c", "9", *args))
    assert result.exit_code in (OK, WARNING), result.stdout
    assert "smaller number" not in result.stdout


# 3. A CA file that cannot be read says why, as a password file does.

def test_ca_file_missing_says_so() -> None:
    assert_unknown(run_check(*BASE, "--tls", "--ca-file", "/nonexistent/ca.pem"),
                   r"^--ca-file /nonexistent/ca.pem: cannot read: No such file or directory$")


def test_ca_file_that_is_a_directory_says_so(tmp_path: Path) -> None:
    assert_unknown(run_check(*BASE, "--tls", "--ca-file", tmp_path),
                   rf"^--ca-file {re.escape(str(tmp_path))}: cannot read: Is a directory$")


def test_ca_file_without_permission_says_so(tmp_path: Path, ca_file: Path) -> None:
    closed = tmp_path / "ca.pem"
    closed.write_bytes(ca_file.read_bytes())
    closed.chmod(0)
    if os.access(closed, os.R_OK):
        pytest.skip("running as root: every file is readable")
    assert_unknown(run_check(*BASE, "--tls", "--ca-file", closed),
                   rf"^--ca-file {re.escape(str(closed))}: cannot read: Permission denied$")


def test_ca_file_from_the_config_file_names_the_option(tmp_path: Path) -> None:
    config = tmp_path / "mailgw.toml"
    config.write_text('[profiles.p]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                      'ca_file = "/nonexistent/internal-ca.pem"\n')
    assert_unknown(run_check("--config", config), r"^--ca-file /nonexistent/internal-ca.pem: "
                                                  r"cannot read: No such file or directory$")


def test_ca_file_that_is_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    result = run_check(*BASE, "--tls", "--ca-file", fifo, timeout=30)
    assert_unknown(result, r"--ca-file .*: a pipe, device or socket, not a file$")


# 4 and 5. A secret file: its first line, without Notepad's byte order mark; more lines
# get a note.

@pytest.mark.parametrize(("data", "note"), [
    ((BOM + SANDBOX_PASSWORD + "\r\n").encode(), None),  # Notepad: BOM and CR LF
    ((BOM + SANDBOX_PASSWORD).encode(), None),
    ((SANDBOX_PASSWORD + "\n\n\n").encode(), None),
    ((SANDBOX_PASSWORD + "\nold-password\n").encode(), r"the non-empty line after it is "
     r"ignored"),
    ((SANDBOX_PASSWORD + "\r\n# rotated 2026-11\r\nold\r\n").encode(), r"the non-empty 2 "
     r"lines after it are ignored"),
])
def test_password_file_first_line_is_the_password(data: bytes, note: str | None, tmp_path: Path,
                                                  smtp_server, ca_file: Path) -> None:
    server = smtp_server("starttls")
    password = secret_file(tmp_path, "password", data)
    result = run_check(*login(server, ca_file, password, "-v"))
    assert result.exit_code == OK, result.stdout  # the sandbox took exactly the first line
    assert f"AUTH PLAIN as {SANDBOX_USER}" in result.first_line
    notes = re.findall(r"^note: .*only the first line.*$", result.long_output, re.M)
    if note is None:
        assert not notes, result.stdout
    else:
        assert len(notes) == 1 and re.search(note, notes[0]), result.stdout
        assert notes[0].startswith(f"note: --password-file {password}: only the first line "
                                   "is read")
    assert SANDBOX_PASSWORD not in result.stdout


def test_password_file_with_an_empty_first_line_says_where_the_password_goes(
        tmp_path: Path) -> None:
    password = secret_file(tmp_path, "password", b"\n" + SANDBOX_PASSWORD.encode() + b"\n")
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", password)
    assert_unknown(result, rf"^--password-file {re.escape(str(password))}: the first line is "
                           r"empty; the secret goes alone on the first line$")
    assert SANDBOX_PASSWORD not in result.stdout


@pytest.mark.parametrize("mode", ["o365-smtp", "graph"])
def test_client_secret_file_from_notepad_signs_in(mode: str, tmp_path: Path, m365,
                                                  ca_file: Path) -> None:
    sandbox = m365("ok")
    secret = secret_file(tmp_path, "client-secret",
                         (BOM + SANDBOX_CLIENT_SECRET + "\r\n").encode())
    result = run_check(*oauth_args(sandbox, mode, ca_file, secret), "-v")
    assert result.exit_code == OK, result.stdout
    assert result.first_line.startswith(f"MAILGW OK - {mode} "), result.stdout
    assert "secret's ID" not in result.stdout


def test_client_secret_file_with_more_lines_uses_the_first_and_says_so(
        tmp_path: Path, m365, ca_file: Path) -> None:
    sandbox = m365("ok")
    secret = secret_file(tmp_path, "client-secret",
                         f"{SANDBOX_CLIENT_SECRET}\nexpires 2027-06-30\n".encode())
    result = run_check(*oauth_args(sandbox, "graph", ca_file, secret), "-v")
    assert result.exit_code == OK, result.stdout
    assert re.search(rf"^note: --client-secret-file {re.escape(str(secret))}: only the first "
                     r"line is read; the non-empty line after it is ignored$",
                     result.long_output, re.M), result.stdout


def test_key_passphrase_file_from_notepad_opens_the_key(tmp_path: Path, m365,
                                                        ca_file: Path) -> None:
    sandbox = m365("ok")
    certificate = sandbox.write_client_certificate(tmp_path / "app.pem",
                                                   passphrase="Kp-s3cret-phrase")
    passphrase = secret_file(tmp_path, "passphrase", (BOM + "Kp-s3cret-phrase\r\n").encode())
    result = run_check(*expiry_args(sandbox, "graph", ca_file, certificate),
                       "--client-key-passphrase-file", passphrase)
    assert result.exit_code == OK, result.stdout
    assert "Kp-s3cret-phrase" not in result.stdout


def test_config_file_from_notepad_is_read(tmp_path: Path) -> None:
    config = tmp_path / "mailgw.toml"
    config.write_bytes((BOM + '[profiles.p]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                        'warning = 9\ncritical = 4\n').encode())
    # Read as TOML: the thresholds' order is the first complaint, not the byte order mark.
    assert_unknown(run_check("--config", config), r"^-w/--warning '9'")


# 6. --check chain: the 5-minute service beside the daily expiry service says nothing
# about the credential's end, so an ending secret alerts once.

@pytest.mark.parametrize("mode", ["o365-smtp", "graph"])
def test_check_chain_leaves_the_expiry_to_the_daily_service(mode: str, m365, ca_file: Path,
                                                            client_secret_file: Path) -> None:
    ending = m365("secret-ends-in-20-days")
    args = oauth_args(ending, mode, ca_file, client_secret_file)
    full = run_check(*args, "-v")
    assert full.exit_code == WARNING, full.stdout
    assert "client secret expires in 20 days" in full.first_line
    lookups = ending.app_lookups

    chain = run_check(*args, "--check", "chain", "-v")
    assert chain.exit_code == OK, chain.stdout
    assert chain.first_line.startswith(f"MAILGW OK - {mode} "), chain.stdout
    assert "days left" not in chain.first_line
    assert not re.search(r"^expiry\b", chain.long_output, re.M), chain.stdout
    assert "secret_days" not in chain.perfdata
    assert ending.app_lookups == lookups  # Graph was not asked for the app's credentials

    daily = run_check(*args, "--check", "expiry")
    assert daily.exit_code == WARNING, daily.stdout
    assert "client secret expires in 20 days" in daily.first_line


def test_check_chain_still_fails_on_an_expired_secret(m365, ca_file: Path,
                                                      client_secret_file: Path) -> None:
    expired = m365("secret-expired")
    result = run_check(*oauth_args(expired, "graph", ca_file, client_secret_file),
                       "--check", "chain")
    assert result.exit_code == CRITICAL, result.stdout
    assert "AADSTS7000222" in result.first_line


def test_check_chain_in_smtp_mode_is_the_usual_chain(smtp_server, ca_file: Path,
                                                     password_file: Path) -> None:
    server = smtp_server("starttls")
    usual = run_check(*login(server, ca_file, password_file, "-v"))
    chain = run_check(*login(server, ca_file, password_file, "-v", "--check", "chain"))
    assert (usual.exit_code, chain.exit_code) == (OK, OK), chain.stdout
    steps = [re.findall(r"^(\w+)\s+OK", run.long_output, re.M) for run in (usual, chain)]
    assert steps[0] == steps[1] and "envelope" in steps[1]


@pytest.mark.parametrize(("args", "message"), [
    (("--check", "chian"), r"argument --check: invalid choice: 'chian' \(choose from "
     r"'?full'?, '?chain'?, '?expiry'?\)"),
    (("--check", "expiry"), r"^--check expiry: only for --mode o365-smtp or graph"),
])
def test_check_values(args: tuple[str, ...], message: str) -> None:
    assert_unknown(run_check(*BASE, *args), message)


# 7. -vvv shows the settings that matter for the mode.

def settings_line(result) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("settings: "))


def test_graph_settings_leave_out_the_smtp_ones(m365, ca_file: Path,
                                                client_secret_file: Path) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file), "-vvv")
    assert result.exit_code == OK, result.stdout
    shown = settings_line(result)
    assert "mode=graph" in shown and "oauth=" in shown and "timeout=" in shown
    for smtp_only in ("tls=", "auth=", "username=", "password=", "helo=", "auth_mechanism=",
                      "allow_cleartext_auth=", "basic_auth_retirement="):
        assert f" {smtp_only}" not in shown and not shown.startswith(smtp_only), shown


def test_o365_smtp_settings_leave_out_the_password_login(m365, ca_file: Path,
                                                         client_secret_file: Path) -> None:
    sandbox = m365("ok")
    result = run_check(*oauth_args(sandbox, "o365-smtp", ca_file, client_secret_file), "-vvv")
    assert result.exit_code == OK, result.stdout
    shown = settings_line(result)
    assert "tls=starttls" in shown and "auth=True" in shown and "helo=" in shown
    for login_only in ("username=", "password=", "auth_mechanism=", "basic_auth_retirement="):
        assert f" {login_only}" not in shown, shown


def test_smtp_settings_leave_out_the_app(smtp_server, ca_file: Path,
                                         password_file: Path) -> None:
    server = smtp_server("starttls")
    result = run_check(*login(server, ca_file, password_file, "-vvv"))
    shown = settings_line(result)
    assert "password=Secret('****')" in shown and f"username={SANDBOX_USER}" in shown
    assert "oauth=" not in shown and "notes=" not in shown and " now=" not in shown
