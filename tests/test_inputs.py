"""Bad input: UNKNOWN, one line naming the option or file and what is wrong, no traceback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from checkrun import run_check

from check_mailgw import __version__

BASE = ("-H", "127.0.0.1", "--from", "monitor@sandbox.test")


def assert_unknown(result, message: str) -> None:
    assert result.exit_code == 3, result.stdout
    assert re.search(message, result.first_line), result.first_line
    assert result.first_line.startswith("MAILGW UNKNOWN - ")
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(("args", "message"), [
    (("--mode", "pop3", *BASE), r"argument --mode: invalid choice: 'pop3'"),
    (("-p", "70000", *BASE), r"-p/--port 70000: out of range \(1-65535\)"),
    (("-p", "smtp", *BASE), r"-p/--port 'smtp': not a number"),
    (("-H", "127.0.0.1", "--from", "not-an-address"), r"--from 'not-an-address': not a valid "
     r"e-mail address"),
    (("--send-to", "a@@b", *BASE), r"--send-to 'a@@b': not a valid e-mail address"),
    (("-H", "bad host!", "--from", "a@b.test"), r"-H/--hostname 'bad host!': not a valid host"),
    (("--from", "a@b.test",), r"-H/--hostname is missing"),
    (("-H", "127.0.0.1"), r"--from is missing"),
    (("--tls", "sometimes", *BASE), r"--tls 'sometimes': expected starttls, implicit"),
    (("-t", "0", *BASE), r"-t/--timeout '0': must be greater than 0"),
    (("-w", "fast", *BASE), r"-w/--warning 'fast': not a valid threshold range"),
    (("-D", "7,14", *BASE), r"-D/--certificate-days '7,14': critical days \(14\) exceed "
     r"warning days \(7\)"),
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
    (("--colour", "blue", *BASE), r"unrecognized arguments: --colour blue"),
    (("-F", "evil\r\nRSET", *BASE), r"-F/--helo 'evil\\r\\nRSET': expected a host name"),
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
    assert_unknown(run_check("--config", path), r"-p/--port 'many': not a number")


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
     r"--token-warning 'soon': not a valid threshold range"),
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
