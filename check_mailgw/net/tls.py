"""The tls step: handshake, certificate chain and host name verified, expiry and version."""

from __future__ import annotations

import math
import re
import socket
import ssl
import time
import weakref
from typing import Any

from check_mailgw.deadline import Deadline
from check_mailgw.errors import SettingsError
from check_mailgw.outcome import Diagnosis, Passed, State, StepFailed

SECONDS_PER_DAY = 86400

# OpenSSL verify codes (x509_vfy.h) that users need told apart.
CERT_EXPIRED = 10
CERT_NOT_YET_VALID = 9
HOSTNAME_MISMATCH = 62
IP_MISMATCH = 64


# The --ca-file each context trusts, for the words of a failed verification: a context
# cannot tell which file it loaded.
_CA_FILES: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()


def client_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as error:
        raise SettingsError(
            f"--ca-file {ca_file}: no CA certificate could be loaded ({ssl_reason(error)})"
        ) from None
    if ca_file:
        _CA_FILES[context] = ca_file
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def handshake(sock: socket.socket, context: ssl.SSLContext, server_name: str,
              deadline: Deadline, how: str) -> ssl.SSLSocket:
    """Wraps the connected socket; the handshake is bounded by the run's deadline."""
    sock.settimeout(deadline.budget(f"the TLS handshake ({how})"))
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=server_name)
    except ssl.SSLCertVerificationError as error:
        raise StepFailed(diagnose_verification(error, server_name,
                                               _CA_FILES.get(context))) from None
    except ssl.SSLError as error:
        raise StepFailed(diagnose_handshake(error, how)) from None
    except (ConnectionError, OSError) as error:
        if isinstance(error, TimeoutError):
            raise
        raise StepFailed(Diagnosis(
            State.CRITICAL, f"TLS handshake failed ({how})",
            f"the server closed the connection: {error.strerror or error}",
            fix="the server dropped the handshake: it may not speak TLS on this port, or "
            "refuses this client's TLS versions",
        )) from None
    return tls_sock


# OpenSSL's text ends in where in CPython it was raised: "... (_ssl.c:992)". Patterns, not
# compiled ones: only a failing run needs them (re compiles and keeps them on first use).
_SSL_TEXT = r"\[[A-Z0-9]+(?:: (?P<reason>[A-Z0-9_]+))?\] (?P<text>.*?)\s*\(_ssl\.c:\d+\)"
_SSL_TAIL = r"\s*\(_ssl\.c:\d+\)"


def ssl_reason(error: BaseException | str) -> str:
    """An SSL error in whole words, without CPython's "(_ssl.c:NNN)" tail.

    Takes the error itself or any text around it (requests and urllib3 wrap it in theirs):
    "certificate verify failed: unable to get local issuer certificate
    (CERTIFICATE_VERIFY_FAILED)".
    """
    text = error if isinstance(error, str) else (
        getattr(error, "strerror", None) or str(error) or type(error).__name__)
    found = re.search(_SSL_TEXT, text)
    if not found:
        return re.sub(_SSL_TAIL, "", text).strip()
    words, reason = found["text"].strip(), found["reason"]
    if not reason or words.lower().replace(" ", "_") == reason.lower():
        return words  # "wrong version number" says all that WRONG_VERSION_NUMBER does
    return f"{words} ({reason})"


def untrusted_fix(ca_file: str | None) -> str:
    """What to do about a certificate no trusted CA signs; with --ca-file, that file is named."""
    if ca_file:
        return (f"the CA file {ca_file} (--ca-file) does not sign the server's certificate: "
                "put the CA that issued it in that file (with any intermediate CA), or have "
                "the server send its intermediate certificates")
    return ("the chain does not lead to a trusted CA: give the CA with --ca-file, or have "
            "the server send its intermediate certificates")


def diagnose_verification(error: ssl.SSLCertVerificationError, server_name: str,
                          ca_file: str | None = None) -> Diagnosis:
    code, message = error.verify_code, error.verify_message
    words = f"{message} (OpenSSL verify code {code})"
    if code == CERT_EXPIRED:
        return Diagnosis(State.CRITICAL, "server certificate expired", words,
                         fix="renew the server's certificate and install it on the gateway")
    if code == CERT_NOT_YET_VALID:
        return Diagnosis(State.CRITICAL, "server certificate not yet valid", words,
                         fix="check the clocks of this machine and the server")
    if code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        return Diagnosis(
            State.CRITICAL, f"server certificate is not valid for {server_name}", words,
            fix="connect with the name the certificate was issued for (-H), or have the "
            "certificate reissued with this name among its subject alternative names",
        )
    return Diagnosis(State.CRITICAL, "server certificate not trusted", words,
                     fix=untrusted_fix(ca_file))


# OpenSSL reasons for a failed handshake, in words an operator can act on.
HANDSHAKE_REASONS = {
    "WRONG_VERSION_NUMBER": "the server did not answer with TLS",
    "HTTP_REQUEST": "the server did not answer with TLS",
    "UNEXPECTED_EOF_WHILE_READING": "the server closed the connection during the handshake",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version in common",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "no cipher or parameters in common",
    "NO_SHARED_CIPHER": "no cipher in common",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server wants a client certificate",
}
CLIENT_CERTIFICATE_FIX = (
    "the server asks for a client certificate (mutual TLS), which this check does not send: "
    "allow this client without one on the gateway"
)
PLAINTEXT_REASONS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST")


def diagnose_handshake(error: ssl.SSLError, how: str) -> Diagnosis:
    reason = error.reason or type(error).__name__
    words = f"{HANDSHAKE_REASONS[reason]} ({reason})" if reason in HANDSHAKE_REASONS \
        else ssl_reason(error)
    fix = ("the server and this client could not agree on TLS: check the gateway's TLS "
           "settings (TLS 1.2 or later, a current cipher suite) and its logs")
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        fix = CLIENT_CERTIFICATE_FIX
    if reason in PLAINTEXT_REASONS:
        fix = ("on this port the server speaks plain SMTP, not TLS: use --tls starttls, or the "
               "implicit TLS port (465)")
    return Diagnosis(State.CRITICAL, f"TLS handshake failed ({how})", words, fix=fix)


def describe(tls_sock: ssl.SSLSocket, insecure: bool, now: float | None = None) -> Passed:
    """Facts about the session: TLS version, cipher, certificate names and days left."""
    now = time.time() if now is None else now
    version, cipher = tls_sock.version() or "TLS", (tls_sock.cipher() or ("?",))[0]
    facts: dict[str, Any] = {"tls_version": version}
    details: dict[str, Any] = {"cipher": cipher}
    not_after = certificate_not_after(tls_sock, insecure, facts, details)
    metrics: dict[str, float] = {}
    if not_after is not None:
        days = math.floor((not_after - now) / SECONDS_PER_DAY)
        facts["cert_not_after"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
        facts["cert_days"] = days
        metrics["cert_days"] = days
    if insecure:
        facts["verification"] = "off (--insecure)"
    return Passed(version, facts, metrics, details)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def certificate_time(text: str) -> float:
    """"Nov 24 06:41:41 2027 GMT" as getpeercert() writes it, in seconds since the epoch.

    ssl.cert_time_to_seconds does the same through time.strptime, whose import (locale,
    calendar, a regex per format) costs more than the whole TLS step's own work.
    """
    try:
        month, day, clock, year, zone = text.split()
        hour, minute, second = (int(part) for part in clock.split(":"))
        days = days_since_epoch(int(year), MONTHS.index(month) + 1, int(day))
    except ValueError:
        return ssl.cert_time_to_seconds(text)  # anything unusual: the standard library's way
    if zone != "GMT":
        return ssl.cert_time_to_seconds(text)
    return float(days * 86400 + hour * 3600 + minute * 60 + second)


def days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (the civil-days
    algorithm: years start in March, so the leap day comes last)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def certificate_not_after(tls_sock: ssl.SSLSocket, insecure: bool, facts: dict[str, Any],
                          details: dict[str, Any]) -> float | None:
    if not insecure:
        cert = tls_sock.getpeercert() or {}
        facts["cert_subject"] = name_of(cert.get("subject", ()))
        details["cert_issuer"] = name_of(cert.get("issuer", ()))
        details["cert_names"] = [value for _, value in cert.get("subjectAltName", ())]
        after = cert.get("notAfter")
        return certificate_time(after) if after else None
    der = tls_sock.getpeercert(binary_form=True)
    if not der:
        return None
    # Without verification Python gives only the DER form; read it with cryptography.
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    facts["cert_subject"] = cert.subject.rfc4514_string()
    details["cert_issuer"] = cert.issuer.rfc4514_string()
    return cert.not_valid_after_utc.timestamp()


def name_of(rdns: Any) -> str:
    """'CN=mail.example.com, O=Example' from the tuple form getpeercert() gives."""
    parts = [f"{key}={value}" for rdn in rdns for key, value in rdn]
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C"}
    for long, abbreviation in short.items():
        parts = [p.replace(f"{long}=", f"{abbreviation}=") for p in parts]
    return ", ".join(parts)
