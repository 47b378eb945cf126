"""check_smtp's option letters: those that mean the same work, the others say what to do.

A monitoring-plugins check_smtp command line, with check_mailgw in its place, checks the
same thing (README: "Coming from check_smtp").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from checkrun import run_check

from check_mailgw.cli import parse_settings
from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.secret import Secret

HOST = ("-H", "127.0.0.1")


def settings(*args: str):
    return parse_settings([*HOST, "-f", "monitor@example.com", *args])


@pytest.mark.parametrize("letter", ["-f", "--from"])
def test_f_is_the_sender(letter: str) -> None:
    assert parse_settings([*HOST, letter, "monitor@example.com"]).sender == "monitor@example.com"


def test_f_takes_the_address_in_angle_brackets_as_check_smtp_does() -> None:
    assert parse_settings([*HOST, "-f", "<monitor@example.com>"]).sender == "monitor@example.com"


@pytest.mark.parametrize(("args", "tls", "port"), [
    (("-S",), "starttls", 25),  # check_smtp's -S keeps port 25
    (("--starttls",), "starttls", 25),
    (("-S", "-p", "587"), "starttls", 587),
    (("-s",), "implicit", 465),
    (("--ssl",), "implicit", 465),
    (("-s", "-p", "2465"), "implicit", 2465),
    (("--tls", "starttls"), "starttls", 587),  # check_mailgw's own: submission
    ((), "none", 25),
])
def test_s_and_S_pick_tls_and_port_as_check_smtp(args: tuple[str, ...], tls: str,
                                                 port: int) -> None:
    s = settings(*args)
    assert (s.tls, s.port) == (tls, port)


def test_S_leaves_a_profile_port_alone(tmp_path: Path) -> None:
    path = tmp_path / "gateways.toml"
    path.write_text('[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\nport = 2525\n')
    s = parse_settings(["--config", str(path), "-S"])
    assert (s.tls, s.port) == ("starttls", 2525)


@pytest.mark.parametrize(("args", "mechanism"), [
    (("-A", "LOGIN"), "LOGIN"),
    (("-A", "login"), "LOGIN"),
    (("--auth-mechanism", "plain"), "PLAIN"),
    (("--authtype", "LOGIN"), "LOGIN"),
    ((), None),
])
def test_A_is_the_auth_mechanism(args: tuple[str, ...], mechanism: str | None) -> None:
    s = settings("-S", "-U", "u", "-P", "p", *args)
    assert s.auth_mechanism == mechanism


def test_auth_mechanism_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "gateways.toml"
    path.write_text('[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\ntls = true\n'
                    'username = "u"\npassword = "p"\nauth_mechanism = "login"\n')
    path.chmod(0o600)
    assert parse_settings(["--config", str(path)]).auth_mechanism == "LOGIN"


@pytest.mark.parametrize(("user", "password"), [("-U", "-P"), ("--authuser", "--authpass")])
def test_U_and_P_are_the_login(user: str, password: str) -> None:
    s = settings("-S", user, "monitor", password, "s3cret")
    assert (s.auth, s.username, s.password) == (True, "monitor", Secret("s3cret"))


@pytest.mark.parametrize("letter", ["-F", "--fqdn"])
def test_F_is_the_ehlo_name(letter: str) -> None:
    assert settings(letter, "monitor.example.com").helo == "monitor.example.com"


@pytest.mark.parametrize(("args", "days"), [
    (("-D", "30,14"), (30, 14)),
    (("-D", "30"), (30, 0)),  # check_smtp: no critical days unless given
    (("--certificate", "21,7"), (21, 7)),
])
def test_D_is_certificate_days(args: tuple[str, ...], days: tuple[int, int]) -> None:
    assert settings("-S", *args).certificate_days == days


@pytest.mark.parametrize(("letter", "family"), [
    ("-4", 4), ("-6", 6), ("--use-ipv4", 4), ("--use-ipv6", 6),
])
def test_4_and_6_pick_the_address_family(letter: str, family: int) -> None:
    assert parse_settings(["-H", "mail.example.com", "-f", "a@b.test", letter]).address_family \
        == family


@pytest.mark.parametrize("args", [
    ("-w", "5", "-c", "10", "-t", "20"),
    ("-wt", "5", "-ct", "10", "-to", "20"),  # check_smtp's old spellings, still accepted there
])
def test_w_c_t_are_time_thresholds_and_limit(args: tuple[str, ...]) -> None:
    s = settings(*args)
    assert (s.warning, s.critical, s.timeout) == ("5", "10", 20)


@pytest.mark.parametrize(("args", "note"), [
    (("-q",), r"-q/--ignore-quit-failure: check_mailgw never waits for the reply to QUIT"),
    (("--ignore-quit-failure",), r"never waits for the reply to QUIT, so a failing QUIT never "
     r"counts; the option can go"),
    (("--sni",), r"--sni: check_mailgw always names the server in the TLS handshake \(SNI\); "
     r"the option can go"),
])
def test_options_asking_for_what_check_mailgw_always_does_leave_a_note(
        args: tuple[str, ...], note: str) -> None:
    notes = settings("-S", *args).notes
    assert len(notes) == 1 and re.search(note, notes[0]), notes


NO_MEANING = r"a check_smtp option with no meaning here: "


@pytest.mark.parametrize(("args", "message"), [
    (("-e", "220 mail"), r"-e/--expect: " + NO_MEANING + r"the greeting is judged by its reply "
     r"code \(220\)"),
    (("--expect", "ESMTP"), r"-e/--expect: " + NO_MEANING),
    (("-C", "HELP"), r"-C/--command: " + NO_MEANING + r"check_mailgw runs the whole chain "
     r"itself .*--send-to ADDRESS proves delivery"),
    (("-R", "214"), r"-R/--response: " + NO_MEANING + r"check_mailgw runs the whole chain"),
    (("-L",), r"-L/--lmtp: " + NO_MEANING + r"check_mailgw checks a mail gateway over SMTP"),
    (("-r",), r"-r: " + NO_MEANING + r"no PROXY protocol header"),
    (("--ignore-certificate-expiration",), r"--ignore-certificate-expiration: " + NO_MEANING +
     r"an expired server certificate fails TLS verification here; -D 0"),
    (("--output-format", "one-line"), r"--output-format: " + NO_MEANING + r"use --format "
     r"nagios or --format json"),
    (("--extra-opts",), r"--extra-opts: " + NO_MEANING + r"use --config FILE --profile NAME"),
    (("--extra-opts=smtp@/etc/nagios/plugins.ini",), r"--extra-opts: " + NO_MEANING),
])
def test_check_smtp_options_with_no_meaning_here(args: tuple[str, ...], message: str) -> None:
    result = run_check(*HOST, "-f", "a@b.test", *args)
    assert result.exit_code == 3, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("MAILGW UNKNOWN - ") and len(lines) <= 2, result.stdout
    assert re.search(message, lines[-1]), result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("-S", "-s"), r"argument -s/--ssl: not allowed with argument -S/--starttls"),
    (("--tls", "-S"), r"argument -S/--starttls: not allowed with argument --tls"),
    (("-A", "CRAM-MD5", "-S", "-U", "u", "-P", "p"),
     r"-A/--auth-mechanism 'CRAM-MD5': expected PLAIN or LOGIN"),
    (("-A", "LOGIN", "-S"), r"-A/--auth-mechanism: needs -U/--username and a password"),
    (("-A", "LOGIN", "-U", "u", "-P", "p"), r"refusing to send the password in clear: add "
     r"--tls"),
    (("-D", "30,14,7"), r"-D/--certificate-days '30,14,7': expected WARN\[,CRIT\] days"),
])
def test_check_smtp_letters_checked_like_ours(args: tuple[str, ...], message: str) -> None:
    result = run_check(*HOST, "-f", "a@b.test", *args)
    assert result.exit_code == 3, result.stdout
    assert re.search(message, result.stdout.splitlines()[-1]), result.stdout


def test_A_is_for_the_password_login_only() -> None:
    result = run_check("--mode", "o365-smtp", "--tenant-id", "contoso.onmicrosoft.com",
                       "--client-id", "3f2c1a7e-5b6d-4c8e-9f0a-1b2c3d4e5f60",
                       "--client-secret", "Abc8Q~not-a-real-secret", "-f", "a@b.test",
                       "-A", "LOGIN")
    assert result.exit_code == 3
    assert re.search(r"-A/--auth-mechanism: --mode o365-smtp signs in with the app's token",
                     result.stdout), result.stdout


def test_a_translated_check_smtp_line_runs(smtp_server, ca_file: Path) -> None:
    """check_smtp -H h -p p -S -A LOGIN -U u -P pw -D 30,14 -w 5 -c 10 -t 10, plus -f."""
    server = smtp_server("starttls")
    result = run_check("-H", server.host, "-p", server.port, "-S", "-A", "LOGIN",
                       "-U", SANDBOX_USER, "-P", SANDBOX_PASSWORD, "-f", SANDBOX_USER,
                       "-D", "30,14", "-w", "5", "-c", "10", "-t", "10", "-q",
                       "--ca-file", ca_file, "-v")
    assert result.exit_code == 0, result.stdout
    assert result.first_line.startswith(f"MAILGW OK - smtp {server.host}:{server.port}: "
                                        "STARTTLS"), result.stdout
    assert f"AUTH LOGIN as {SANDBOX_USER}" in result.first_line, result.stdout
    assert SANDBOX_PASSWORD not in result.stdout
    assert re.search(r"^note: -q/--ignore-quit-failure: ", result.long_output, re.M)


@pytest.mark.parametrize(("args", "message"), [
    (("--start",), r"^unknown option --start: did you mean --starttls\?$"),
    (("--use-ipv",), r"^unrecognized arguments: --use-ipv "),
    (("--cert", "30"), r"^unknown option --cert: did you mean --certificate-days\?$"),
])
def test_check_smtp_spellings_are_taken_whole(args: tuple[str, ...], message: str) -> None:
    """No option is abbreviated, check_smtp's spellings included; letters still group."""
    result = run_check(*HOST, "-f", "a@b.test", *args)
    assert result.exit_code == 3, result.stdout
    assert re.search(message, result.stdout.splitlines()[-1].removeprefix("MAILGW UNKNOWN - ")), \
        result.stdout


def test_check_smtp_letters_group_without_abbreviations() -> None:
    s = settings("-S", "-vvv", "--certificate", "21,7", "--use-ipv4")
    assert (s.verbosity, s.address_family, s.certificate_days) == (3, 4, (21, 7))
