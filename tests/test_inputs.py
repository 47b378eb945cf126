"""Bad input: UNKNOWN, one line naming the option or file and what is wrong, no traceback."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from checkrun import run_check

from check_mailgw import __version__
from check_mailgw.cli import parse_settings
from check_mailgw.from_options import build_settings
from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER

BASE = ("-H", "127.0.0.1", "--from", "monitor@sandbox.test")


def assert_unknown(result, message: str) -> None:
    """UNKNOWN, the message on one line: the first line, or whole below a shortened one."""
    assert result.exit_code == 3, result.stdout
    lines = result.stdout.splitlines()
    assert lines and lines[0].startswith("MAILGW UNKNOWN - "), result.stdout
    assert len(lines) <= 2, result.stdout
    whole = lines[1] if len(lines) == 2 else result.first_line
    assert re.search(message, whole), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    for python_words in ("invalid literal", "could not convert", "base 10"):
        assert python_words not in result.stdout, result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--mode", "pop3", *BASE), r"argument --mode: invalid choice: 'pop3'"),
    (("-p", "70000", *BASE), r"-p/--port 70000: out of range \(1-65535\)"),
    (("-p", "smtp", *BASE), r"-p/--port 'smtp': expected a port number from 1 to 65535, "
     r"such as 587"),
    (("-H", "127.0.0.1", "--from", "not-an-address"), r"--from 'not-an-address': not a valid "
     r"e-mail address"),
    (("--send-to", "a@@b", *BASE), r"--send-to 'a@@b': not a valid e-mail address"),
    (("-H", "bad host!", "--from", "a@b.test"), r"-H/--hostname 'bad host!': not a valid host"),
    (("--from", "a@b.test",), r"-H/--hostname is missing"),
    (("-H", "127.0.0.1"), r"--from is missing"),
    (("--tls", "sometimes", *BASE), r"--tls 'sometimes': expected starttls, implicit"),
    (("-t", "0", *BASE), r"-t/--timeout '0': expected seconds, a number greater than 0 "
     r"such as 10"),
    (("-w", "fast", *BASE), r"-w/--warning 'fast': expected a Nagios range such as 5, 10:, "
     r"~:20 or @1:3"),
    (("-D", "7,14", *BASE), r"-D/--certificate-days '7,14': CRIT 14: more days than WARN 7; "
     r"both count days left on the server certificate, so critical is the smaller number"),
    (("--dns-server", "resolver.example", *BASE), r"--dns-server 'resolver.example': expected "
     r"an IP address"),
    (("--username", "u", "--tls", *BASE), r"no password for u: give --password-file FILE"),
    (("--username", "u", *BASE, "--password", "x"), r"refusing to send the password in clear: "
     r"add --tls"),
    (("--auth", "--tls", *BASE), r"--username is missing: authentication is on"),
    (("--insecure", "--ca-file", "/etc/hostname", *BASE), r"--ca-file and --insecure: give "
     r"only one of them"),
    (("-4", "-6", *BASE), r"argument -6: not allowed with argument -4"),
    (("-6", *BASE), r"-6: conflicts with -H 127.0.0.1"),
    (("--profile", "x", *BASE), r"--profile needs --config FILE"),
    (("--colour", "blue", *BASE), r"unknown option --colour: did you mean --cloud\?"),
    (("--zzz", "blue", *BASE), r"unrecognized arguments: --zzz \(check_mailgw --help lists "
     r"every option\)$"),
    (("-F", "evil\r\nRSET", *BASE), r"-F/--helo: control characters \(\\r\\n\) are not "
     r"allowed"),
    (("--ca-file", "/nonexistent/ca.pem", *BASE), r"--ca-file /nonexistent/ca.pem: cannot read"),
])
def test_bad_option(args: tuple[str, ...], message: str) -> None:
    assert_unknown(run_check(*args), message)


def test_ca_file_without_certificates(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    result = run_check(*BASE, "--tls", "--ca-file", not_pem)
    assert_unknown(result, rf"--ca-file {re.escape(str(not_pem))}: no CA certificate could be "
                           r"loaded")


def test_missing_password_file() -> None:
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", "/nonexistent/secret")
    assert_unknown(result, r"--password-file /nonexistent/secret: cannot read: No such file")


def test_unreadable_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0)
    if os.access(secret, os.R_OK):  # root reads anything: use a directory instead
        secret = tmp_path
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", secret)
    assert_unknown(result, rf"--password-file {re.escape(str(secret))}: cannot read: "
                           r"(Permission denied|Is a directory)")


def test_empty_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", secret)
    assert_unknown(result, r"--password-file .*: the file is empty")


def test_password_and_password_file_conflict(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", secret, "-P", "x")
    assert_unknown(result, r"--password and --password-file: give only one of them")


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailgw.toml"
    path.write_text(text)
    return path


def test_malformed_toml(tmp_path: Path) -> None:
    path = config(tmp_path, "[profiles.relay\nserver = 1\n")
    assert_unknown(run_check("--config", path), rf"--config {re.escape(str(path))}: not valid "
                                                r"TOML: .*line 1")


def test_unknown_profile(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                            '[profiles.submission]\nserver = "127.0.0.1"\n')
    assert_unknown(run_check("--config", path, "--profile", "nosuch"),
                   r"--profile nosuch: no such profile in .* \(profiles: relay, submission\)")


def test_profile_needed_when_the_file_has_several(tmp_path: Path) -> None:
    path = config(tmp_path, "[profiles.a]\n[profiles.b]\n")
    assert_unknown(run_check("--config", path), r"choose a profile with --profile "
                                                r"\(profiles: a, b\)")


def test_unknown_config_key(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nsmarthost = "x"\n')
    assert_unknown(run_check("--config", path), r"\[profiles\.relay\] unknown key 'smarthost'")


def test_wrong_type_in_config(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                            'port = "many"\n')
    assert_unknown(run_check("--config", path), r"-p/--port 'many': expected a port number")


def test_missing_config_file(tmp_path: Path) -> None:
    assert_unknown(run_check("--config", tmp_path / "none.toml"),
                   r"--config .*none\.toml: cannot read: No such file")


def test_help_exits_3_and_warns_about_password_on_command_line() -> None:
    result = run_check("--help")
    assert result.exit_code == 3
    assert "--password-file" in result.stdout
    assert re.search(r"visible\s+to\s+every\s+user\s+in\s+the\s+process\s+list",
                     result.stdout.replace("\n", " "))


def test_version_exits_3() -> None:
    result = run_check("-V")
    assert result.exit_code == 3
    assert result.stdout.strip() == f"check_mailgw {__version__}"


TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "3f2c1a7e-5b6d-4c8e-9f0a-1b2c3d4e5f60"
OAUTH = ("--tenant-id", TENANT, "--client-id", CLIENT, "--from", "monitor@sandbox.test")


@pytest.mark.parametrize(("args", "message"), [
    (("--mode", "graph", "--client-id", CLIENT, "--from", "a@b.test", "--client-secret", "x"),
     r"--tenant-id is missing: the directory \(tenant\) ID"),
    (("--mode", "graph", "--tenant-id", TENANT, "--from", "a@b.test", "--client-secret", "x"),
     r"--client-id is missing"),
    (("--mode", "graph", *OAUTH), r"no client secret: give --client-secret-file FILE, "
     r"\$MAILGW_CLIENT_SECRET"),
    (("--mode", "graph", "--tenant-id", "not a tenant", "--client-id", CLIENT,
      "--from", "a@b.test", "--client-secret", "x"),
     r"--tenant-id 'not a tenant': expected the tenant's GUID \(Directory ID\) or a domain"),
    (("--mode", "o365-smtp", "--tenant-id", TENANT, "--client-id", "my-app",
      "--from", "a@b.test", "--client-secret", "x"),
     r"--client-id 'my-app': the application \(client\) ID is a GUID"),
    (("--mode", "graph", *OAUTH, "--client-secret", "0f8fad5b-d9cb-469f-a165-70867728950e"),
     r"client secret: this looks like the secret's ID; the check needs its Value "
     r"\(.*Certificates & secrets"),
    (("--mode", "graph", *OAUTH, "--client-secret", "x", "--cloud", "mars"),
     r"argument --cloud: invalid choice: 'mars'"),
    (("--mode", "graph", *OAUTH, "--client-secret", "x", "--authority", "http://127.0.0.1"),
     r"--authority 'http://127.0.0.1': expected https://host\[:port\]"),
    (("--mode", "graph", *OAUTH, "--client-secret", "x", "--graph-url",
      "https://127.0.0.1/v1.0"), r"--graph-url 'https://127.0.0.1/v1.0': give only "
     r"https://host\[:port\]"),
    (("--mode", "graph", *OAUTH, "--client-secret", "x", "--proxy", "socks5://127.0.0.1:1080"),
     r"--proxy 'socks5://127.0.0.1:1080': expected http\|https://host\[:port\]"),
    (("--mode", "graph", *OAUTH, "--client-secret", "x", "-H", "127.0.0.1"),
     r"--hostname: --mode graph talks to --graph-url, not an SMTP server"),
    (("--mode", "o365-smtp", *OAUTH, "--client-secret", "x", "-U", "u"),
     r"--username/--password: --mode o365-smtp signs in with the app's client secret"),
    (("--mode", "o365-smtp", *OAUTH, "--client-secret", "x", "--token-warning", "soon"),
     r"--token-warning 'soon': expected a Nagios range"),
    (("-H", "127.0.0.1", "--from", "a@b.test", "--tenant-id", TENANT),
     r"--tenant-id: only for --mode o365-smtp or graph"),
    (("--mode", "o365-smtp", *OAUTH[:4], "--from", "nobody", "--client-secret", "x"),
     r"--from 'nobody': not a valid e-mail address"),
])
def test_bad_oauth_option(args: tuple[str, ...], message: str) -> None:
    assert_unknown(run_check(*args), message)


def test_client_secret_file_missing() -> None:
    result = run_check("--mode", "graph", *OAUTH, "--client-secret-file", "/nonexistent/s")
    assert_unknown(result, r"--client-secret-file /nonexistent/s: cannot read: No such file")


SECRET = ("--client-secret", "Abc8Q~not-a-real-secret")


@pytest.mark.parametrize(("args", "message"), [
    (("--mode", "graph", *OAUTH, *SECRET, "--secret-warning", "30:"),
     r"--secret-warning '30:': expected a whole number of days, such as 30"),
    (("--mode", "graph", *OAUTH, *SECRET, "--secret-critical", "inf"),
     r"--secret-critical 'inf': expected a whole number of days"),
    (("--mode", "graph", *OAUTH, *SECRET, "--secret-warning", "5"),
     r"--secret-critical 7: more days than --secret-warning 5; both count days left"),
    (("--mode", "graph", *OAUTH, *SECRET, "--secret-expires", "31.01.2027"),
     r"--secret-expires '31\.01\.2027': expected a date such as 2027-01-31"),
    (("--mode", "graph", *OAUTH, *SECRET, "--expiry-lookup-denied", "ignore"),
     r"argument --expiry-lookup-denied: invalid choice: 'ignore'"),
    (("--mode", "graph", *OAUTH, *SECRET, "--check", "mail"),
     r"argument --check: invalid choice: 'mail'"),
    (("-H", "127.0.0.1", "--from", "a@b.test", "--check", "expiry"),
     r"--check expiry: only for --mode o365-smtp or graph"),
    (("--mode", "graph", *OAUTH, "--client-certificate", "/nonexistent/app.pem"),
     r"--client-certificate /nonexistent/app.pem: cannot read: No such file"),
    (("--mode", "graph", *OAUTH, "--client-key", "/etc/hostname", *SECRET),
     r"--client-key: only with --client-certificate FILE"),
    (("-H", "127.0.0.1", "--from", "a@b.test", "--client-certificate", "/etc/hostname"),
     r"--client-certificate: only for --mode o365-smtp or graph"),
])
def test_bad_expiry_or_certificate_option(args: tuple[str, ...], message: str) -> None:
    assert_unknown(run_check(*args), message)


def write_certificate(directory: Path, *, key: bool = True, passphrase: bytes | None = None,
                      other_key: bool = False) -> Path:
    """A self-signed certificate (and key) as openssl would write them."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway monitor")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private_key.public_key()).serial_number(7)
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
                   .sign(private_key, hashes.SHA256()))
    data = certificate.public_bytes(serialization.Encoding.PEM)
    if key:
        signer = rsa.generate_private_key(public_exponent=65537, key_size=2048) \
            if other_key else private_key
        encryption = serialization.BestAvailableEncryption(passphrase) if passphrase \
            else serialization.NoEncryption()
        data += signer.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8, encryption)
    path = directory / "app.pem"
    path.write_bytes(data)
    return path


def test_certificate_files_that_cannot_sign(tmp_path: Path) -> None:
    """Each way a certificate file can be unusable: the file named, what is wrong."""
    graph = ("--mode", "graph", *OAUTH)
    garbage = tmp_path / "garbage.pfx"
    garbage.write_bytes(b"\x30\x82 not really PKCS#12")
    assert_unknown(run_check(*graph, "--client-certificate", garbage),
                   rf"--client-certificate {garbage}: not a PEM or PKCS#12 \(\.pfx\) file")
    bare = write_certificate(tmp_path, key=False)
    assert_unknown(run_check(*graph, "--client-certificate", bare),
                   rf"--client-certificate {bare}: no private key in the file")
    mismatched = write_certificate(tmp_path, other_key=True)
    assert_unknown(run_check(*graph, "--client-certificate", mismatched),
                   rf"--client-certificate {mismatched}: the private key does not belong to the "
                   r"certificate \(CN=gateway monitor\)")
    encrypted = write_certificate(tmp_path, passphrase=b"right")
    wrong = tmp_path / "passphrase"
    wrong.write_text("wrong\n")
    assert_unknown(run_check(*graph, "--client-certificate", encrypted,
                             "--client-key-passphrase-file", wrong),
                   rf"--client-certificate {encrypted}: wrong passphrase")
    both = write_certificate(tmp_path)
    assert_unknown(run_check(*graph, "--client-certificate", both, *SECRET),
                   r"--client-secret and --client-certificate: the app signs in with one "
                   r"credential")
    assert_unknown(run_check(*graph, "--client-certificate", both, "--secret-expires",
                             "2027-01-31"),
                   r"--secret-expires: a certificate's end is read from the certificate itself")



# Control characters: refused wherever a value can reach the status line or the wire.

SMTP_LOGIN = ("--tls", "-P", "x")


@pytest.mark.parametrize(("args", "message"), [
    (("-H", "127.0.0.1", "-f", "a@b.test", "-U", "u\r\nMAILGW OK - fine", *SMTP_LOGIN),
     r"-U/--username: control characters \(\\r\\n\) are not allowed"),
    (("-H", "127.0.0.1", "-f", "a@b.test\r\nRCPT TO:<x@y.test>"),
     r"-f/--from: control characters \(\\r\\n\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test", "--send-to", "x@y.test\n"),
     r"--send-to: control characters \(\\n\)"),
    (("-H", "127.0.0.1\t", "-f", "a@b.test"), r"-H/--hostname: control characters \(\\t\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test", "-F", "gw\x1b[31m.example"),
     r"-F/--helo: control characters \(\\x1b\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test", "--dns-server", "127.0.0.1\x7f"),
     r"--dns-server: control characters \(\\x7f\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test", "-w", "5\n"), r"-w/--warning: control characters"),
    (("-H", "127.0.0.1", "-f", "a@b.test", "-t", "10\r"), r"-t/--timeout: control characters"),
    (("-H", "127.0.0.1", "-f", "a\u202e@b.test"), r"-f/--from: control characters \(\\u202e\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test\u2028"), r"-f/--from: control characters \(\\u2028\)"),
    (("-H", "127.0.0.1", "-f", "a@b.test\x85"), r"-f/--from: control characters \(\\x85\)"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com\n", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x"), r"--tenant-id: control characters \(\\n\)"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x\x1f",
      "-f", "a@b.test", "--client-secret", "x"), r"--client-id: control characters \(\\x1f\)"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x", "--scope", "https://graph.microsoft.com/"
      ".default\tUser.Read"), r"--scope: control characters \(\\t\)"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x", "--proxy", "http://127.0.0.1:3128\r\n"),
     r"--proxy: control characters"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x", "--authority", "https://127.0.0.1\n"),
     r"--authority: control characters"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x", "--graph-url", "https://127.0.0.1\v"),
     r"--graph-url: control characters \(\\x0b\)"),
    (("--mode", "graph", "--tenant-id", "contoso.onmicrosoft.com", "--client-id", "x",
      "-f", "a@b.test", "--client-secret", "x", "--azure-region", "westeurope\r\n"),
     r"--azure-region: control characters"),
])
def test_control_characters_refused(args: tuple[str, ...], message: str) -> None:
    """(An argument vector cannot carry NUL: the config file test shows that one.)"""
    assert_unknown(run_check(*args), message)


def test_bytes_that_are_not_utf8_refused() -> None:
    result = run_check("-H", "127.0.0.1", "-f", os.fsdecode(b"a@b.test\xff"))
    assert_unknown(result, r"-f/--from: bytes that are not UTF-8 text \(\\udcff\)")


def test_control_characters_in_the_config_file_name_the_key(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                            'username = "u\\r\\nMAILGW OK"\n')
    assert_unknown(run_check("--config", path, "--tls", "-P", "x"),
                   r"--config .*: \[profiles\.relay\] username: control characters "
                   r"\(\\r\\n\) are not allowed")
    path = config(tmp_path, '[defaults]\nhelo = "gw\\u0000"\n[profiles.relay]\n'
                            'server = "127.0.0.1"\nfrom = "a@b.test"\n')
    assert_unknown(run_check("--config", path), r"\[defaults\] helo: control characters "
                                                r"\(\\x00\)")


def test_profile_name_with_control_characters(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n')
    assert_unknown(run_check("--config", path, "--profile", "relay\nMAILGW OK"),
                   r"--profile: control characters \(\\n\)")


def test_file_names_may_hold_anything_but_stay_on_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "pass\nMAILGW OK - fine"
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", odd)
    assert_unknown(result, r"--password-file .*/pass\\nMAILGW OK - fine: cannot read: No such "
                           r"file")


def test_stray_argument_with_a_line_break_stays_on_one_line() -> None:
    assert_unknown(run_check(*BASE, "x\nMAILGW OK"), r"unrecognized arguments: x\\nMAILGW OK")


def test_password_with_nul_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cr\x00t-value\n")
    secret.chmod(0o600)
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", secret)
    assert_unknown(result, r"the password holds a NUL character, which SMTP AUTH cannot carry")
    assert "s3cr" not in result.stdout and "t-value" not in result.stdout


# Numbers: what a valid value looks like, never Python's own words.

SECONDS = r"expected seconds, a number greater than 0 such as 10"
NAGIOS_RANGE = r"expected a Nagios range such as 5, 10:, ~:20 or @1:3"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "1e1", "-5", "ten", "10s",
                                   "1_0", "\u0661\u0660", "0x10", ""])
def test_timeout_must_be_plain_seconds(value: str) -> None:
    assert_unknown(run_check(*BASE, f"--timeout={value}"),
                   rf"-t/--timeout '{re.escape(value)}': {SECONDS}")


def test_timeout_of_more_than_an_hour_is_a_mistake() -> None:
    assert_unknown(run_check(*BASE, "-t", "10000"),
                   r"-t/--timeout '10000': at most 3600 seconds; -t counts seconds, not "
                   r"milliseconds")


def test_timeout_limits_that_are_fine() -> None:
    assert settings_of(timeout="3600").timeout == 3600
    assert settings_of(timeout="0.5").timeout == 0.5
    assert settings_of(timeout=30).timeout == 30  # a TOML integer


@pytest.mark.parametrize("option", ["warning", "critical"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "1.0e400", "1.5e3", "~:inf",
                                   "@nan", "inf:", "~:", "@", ":", "1_0", "\u0661\u0660",
                                   "9999999999999", "5:10:15", "fast"])
def test_time_thresholds_must_be_nagios_ranges(option: str, value: str) -> None:
    assert_unknown(run_check(*BASE, f"--{option}={value}"),
                   rf"-{option[0]}/--{option} '{re.escape(value)}': {NAGIOS_RANGE}")


def test_range_whose_start_is_above_its_end() -> None:
    assert_unknown(run_check(*BASE, "-w", "10:5"),
                   rf"-w/--warning '10:5': {NAGIOS_RANGE} \(here the start, 10, is above the "
                   r"end, 5\)")
    assert_unknown(run_check(*BASE, "-c=-5"), r"-c/--critical '-5': .*\(here the start, 0, is "
                                              r"above the end, -5\)")


@pytest.mark.parametrize("value", ["5", "10:", "~:20", "@1:3", "0.5:2.5", "@~:0.25", "+5"])
def test_nagios_ranges_that_are_fine(value: str) -> None:
    assert settings_of(warning=value).warning == value


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_token_thresholds_must_be_nagios_ranges(value: str) -> None:
    result = run_check("--mode", "graph", *OAUTH, *SECRET, "--token-critical", value)
    assert_unknown(result, rf"--token-critical '{value}': {NAGIOS_RANGE}")


@pytest.mark.parametrize(("value", "message"), [
    ("nan", r"expected a port number from 1 to 65535, such as 587"),
    ("25.0", r"expected a port number"),
    ("0x19", r"expected a port number"),
    ("1_0", r"expected a port number"),
    ("\u0662\u0665", r"expected a port number"),
    ("0", r"out of range \(1-65535\)"),
])
def test_port_must_be_a_port_number(value: str, message: str) -> None:
    assert_unknown(run_check(*BASE, "-p", value), rf"-p/--port .*{message}")


@pytest.mark.parametrize("value", ["nan", "inf,7", "14,7,1", "-1", "14;7", "\u0661\u0664",
                                   "1e3", "14,"])
def test_certificate_days_must_be_whole_days(value: str) -> None:
    assert_unknown(run_check(*BASE, f"--certificate-days={value}"),
                   rf"-D/--certificate-days '{re.escape(value)}': expected WARN\[,CRIT\] days "
                   r"such as 14,7")


def test_certificate_days_of_more_than_a_century() -> None:
    assert_unknown(run_check(*BASE, "-D", "99999,7"), r"at most 36500 \(a hundred years\)")


@pytest.mark.parametrize("value", ["nan", "1e3", "\u00b2", "30.5", "-1", "1234567"])
def test_secret_days_must_be_whole_days(value: str) -> None:
    """'\u00b2' passes str.isdigit() but not int(): it used to end in Python's own words."""
    result = run_check("--mode", "graph", *OAUTH, *SECRET, f"--secret-warning={value}")
    assert_unknown(result, rf"--secret-warning '{re.escape(value)}': expected a whole number "
                           r"of days, such as 30")


def test_secret_days_beyond_a_century() -> None:
    result = run_check("--mode", "graph", *OAUTH, *SECRET, "--secret-warning", "40000")
    assert_unknown(result, r"--secret-warning '40000': at most 36500 days")


def test_oauth_thresholds_in_smtp_mode_are_checked_too() -> None:
    """A [defaults] table may set them for every profile: wrong is wrong in any mode."""
    assert_unknown(run_check(*BASE, "--token-warning", "inf"), rf"--token-warning 'inf': "
                                                               rf"{NAGIOS_RANGE}")
    assert_unknown(run_check(*BASE, "--secret-critical", "nan"), r"--secret-critical 'nan': "
                                                                 r"expected a whole number")


def test_numbers_from_the_config_file(tmp_path: Path) -> None:
    head = '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
    for line, message in (("timeout = nan", rf"-t/--timeout nan: {SECONDS}"),
                          ("timeout = inf", rf"-t/--timeout inf: {SECONDS}"),
                          ("warning = inf", rf"-w/--warning inf: {NAGIOS_RANGE}"),
                          ("port = true", r"-p/--port True: expected a port number"),
                          ("port = 25.5", r"-p/--port 25.5: expected a port number"),
                          ("certificate_days = -1", r"-D/--certificate-days -1: expected")):
        path = config(tmp_path, f"{head}{line}\n")
        assert_unknown(run_check("--config", path), message)


# Bounded reads: a size cap, and a FIFO or device never hangs the run.

def test_config_file_larger_than_1_mib(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text("# padding\n" * (110 * 1024))
    assert_unknown(run_check("--config", path),
                   rf"--config {re.escape(str(path))}: larger than 1024 KiB: a config file of "
                   r"gateway profiles is a few kilobytes")


def test_secret_file_larger_than_64_kib(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x" * (64 * 1024 + 1))
    secret.chmod(0o600)
    result = run_check(*BASE, "--tls", "-U", "u", "--password-file", secret)
    assert_unknown(result, r"--password-file .*: larger than 64 KiB: a secret file holds one "
                           r"line")


@pytest.mark.parametrize("option", ["--password-file", "--config"])
def test_a_device_is_refused(option: str) -> None:
    extra = ("--tls", "-U", "u") if option == "--password-file" else ()
    assert_unknown(run_check(*BASE, *extra, option, "/dev/zero"),
                   rf"{option} /dev/zero: a device or socket, not a file")


def test_client_certificate_from_a_device_is_refused() -> None:
    assert_unknown(run_check("--mode", "graph", *OAUTH, "--client-certificate", "/dev/zero"),
                   r"--client-certificate /dev/zero: a device or socket, not a file")


@pytest.mark.parametrize(("option", "others"), [
    ("--password-file", (*BASE, "--tls", "-U", "u")),
    ("--config", ()),
    ("--client-secret-file", ("--mode", "graph", *OAUTH)),
    ("--client-key-passphrase-file", ("--mode", "graph", *OAUTH, "--client-certificate",
                                      "/etc/hostname")),
])
def test_fifo_without_a_writer_ends_within_t(tmp_path: Path, option: str,
                                             others: tuple[str, ...]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run_check(*others, option, fifo, "-t", "1", timeout=30)
    assert_unknown(result, rf"{option} {re.escape(str(fifo))}: a pipe whose writer did not "
                           r"finish within 1s \(-t\)")


def test_password_from_a_pipe_is_read(tmp_path: Path, smtp_server, ca_file: Path) -> None:
    """--password-file <(command) is a pipe: read until its writer is done."""
    server = smtp_server("starttls")
    fifo = tmp_path / "password"
    os.mkfifo(fifo)

    def write_password() -> None:
        with open(fifo, "w") as pipe:  # blocks until the check opens the other end
            pipe.write(SANDBOX_PASSWORD + "\n")

    writer = threading.Thread(target=write_password, daemon=True)
    writer.start()
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--ca-file", ca_file,
                       "-f", SANDBOX_USER, "-U", SANDBOX_USER, "--password-file", fifo)
    writer.join(timeout=5)
    assert result.exit_code == 0, result.stdout
    assert "AUTH PLAIN as monitor@sandbox.test" in result.first_line


# Secret files readable by group or others: a note, no state change.

ADVICE = r"chmod 600 it, owned by the monitoring user"


def test_world_readable_password_file_gets_a_note_at_v(tmp_path: Path, smtp_server,
                                                       ca_file: Path) -> None:
    server = smtp_server("starttls")
    secret = tmp_path / "password"
    secret.write_text(SANDBOX_PASSWORD + "\n")
    secret.chmod(0o644)
    args = ("-H", server.host, "-p", server.port, "--tls", "--ca-file", ca_file,
            "-f", SANDBOX_USER, "-U", SANDBOX_USER, "--password-file", secret)
    result = run_check(*args, "-v")
    assert result.exit_code == 0, result.stdout
    assert re.search(rf"^note: --password-file {re.escape(str(secret))} is readable by others "
                     rf"\(mode 0644\): {ADVICE}$", result.long_output, re.M), result.stdout
    quiet = run_check(*args)
    assert quiet.exit_code == 0 and "note:" not in quiet.stdout, quiet.stdout


@pytest.mark.parametrize(("mode", "words"), [
    (0o644, r"readable by others \(mode 0644\)"),
    (0o604, r"readable by others \(mode 0604\)"),
    (0o640, r"readable by its group \(mode 0640\)"),
    (0o600, None),
    (0o400, None),
])
def test_password_file_permissions(tmp_path: Path, mode: int, words: str | None) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    notes = settings_of(username="u", tls="auto", password_file=str(secret)).notes
    if words is None:
        assert notes == ()
    else:
        assert len(notes) == 1 and re.fullmatch(rf"--password-file .* is {words}: {ADVICE}",
                                                notes[0]), notes


def test_client_secret_and_certificate_files_get_notes(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("Abc8Q~not-a-real-secret\n")
    secret.chmod(0o644)
    graph = {"mode": "graph", "tenant_id": TENANT, "client_id": CLIENT, "sender": "a@b.test"}
    notes = build_settings({**graph, "client_secret_file": str(secret)}, env={}).notes
    assert [n.split(" is ")[0] for n in notes] == [f"--client-secret-file {secret}"]
    certificate = write_certificate(tmp_path)
    certificate.chmod(0o640)
    notes = build_settings({**graph, "client_certificate": str(certificate)}, env={}).notes
    assert notes == (f"--client-certificate {certificate} is readable by its group (mode 0640): "
                     "chmod 600 it, owned by the monitoring user",)


def test_config_file_holding_a_password_gets_a_note(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n'
                            'tls = true\nusername = "u"\npassword = "s3cret"\n')
    path.chmod(0o644)
    notes = parse_settings(["--config", str(path)]).notes
    assert notes == (f"--config {path}, which holds a secret, is readable by others (mode 0644): "
                     "chmod 600 it, owned by the monitoring user",)
    path.chmod(0o600)
    assert parse_settings(["--config", str(path)]).notes == ()


def test_config_file_without_a_secret_gets_no_note(tmp_path: Path) -> None:
    path = config(tmp_path, '[profiles.relay]\nserver = "127.0.0.1"\nfrom = "a@b.test"\n')
    path.chmod(0o644)
    assert parse_settings(["--config", str(path)]).notes == ()


def settings_of(**given: object):
    return build_settings({"hostname": "127.0.0.1", "sender": "a@b.test", **given}, env={})


def test_file_name_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "a\nb"
    directory.mkdir()
    (directory / "ca.pem").write_text("not a certificate\n")
    result = run_check(*BASE, "--tls", "--ca-file", directory / "ca.pem")
    assert_unknown(result, r"--ca-file .*a\\nb/ca\.pem: no CA certificate could be loaded")
