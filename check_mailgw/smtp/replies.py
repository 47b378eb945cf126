"""What an SMTP reply means for the gateway, and what to do about it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from check_mailgw.outcome import Diagnosis, State
from check_mailgw.smtp.client import (
    S421_SERVICE_NOT_AVAILABLE,
    S530_AUTH_REQUIRED,
    S534_MECHANISM_TOO_WEAK,
    S538_ENCRYPTION_REQUIRED,
    TRANSIENT,
    Reply,
)

Phase = Literal["greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "message"]
# What a vendor's server means by a reply beyond its code (a dialect's reply_meaning): a
# diagnosis, or None for the code's generic meaning.
ReplyMeanings = Callable[[Phase, Reply], Diagnosis | None]

TLS_REQUIRED = (S530_AUTH_REQUIRED, S538_ENCRYPTION_REQUIRED)

PROBLEMS: dict[Phase, str] = {
    "greeting": "server refused the session",
    "ehlo": "server refused EHLO",
    "starttls": "server refused STARTTLS",
    "auth": "authentication refused",
    "mail": "sender refused at MAIL FROM",
    "rcpt": "recipient refused at RCPT TO",
    "data": "server refused DATA",
    "message": "test message refused",
}

FIXES: dict[Phase, str] = {
    "greeting": "this server does not accept SMTP from this client: check the Server and "
    "Port settings, and the gateway's access list for this client's address",
    "ehlo": "the server refused the HELO name: set a resolvable name with -F/--helo",
    "starttls": "the server offers STARTTLS but refuses it: check its TLS configuration "
    "(certificate and key installed?)",
    "auth": "check the Username and Password; the account may be locked, its password "
    "changed, or SMTP AUTH not allowed for it",
    "mail": "the account may not send as the From address: use an address it owns, or "
    "grant it the right to send as this one",
    "rcpt": "check the recipient address; a relay refusal means the server does not "
    "accept this client or account for relaying",
    "data": "the server refused to take a message: check its logs",
    "message": "the server refused the message at the end of DATA (content, size, or "
    "send-as policy): its reply above names the reason",
}


def diagnose(phase: Phase, reply: Reply, vendor: ReplyMeanings | None = None,
             login_fix: str | None = None) -> Diagnosis:
    """The vendor's known answers first, then the generic meaning of the code.

    login_fix replaces the password login's fix for a refused AUTH of another kind.
    """
    if vendor and (known := vendor(phase, reply)):
        return known
    if reply.code == S421_SERVICE_NOT_AVAILABLE:
        return Diagnosis(
            State.WARNING, "service not available, the server closes the session", str(reply),
            fix="the gateway is overloaded, in maintenance, or limiting this client's "
            "connections; if it lasts, check its load and connection limits",
        )
    if reply.code in TRANSIENT:
        return Diagnosis(
            State.WARNING, f"temporary failure: {PROBLEMS[phase]}", str(reply),
            fix="the server asks to retry later (busy, throttling, or a passing fault); if "
            "it lasts, check the gateway's queue and rate limits",
        )
    if phase in ("auth", "mail") and reply.code in TLS_REQUIRED and tls_asked(reply):
        return Diagnosis(State.CRITICAL, f"{PROBLEMS[phase]}: TLS required", str(reply),
                         fix="the server wants STARTTLS before AUTH: add --tls")
    if phase == "mail" and reply.code == S530_AUTH_REQUIRED:
        return Diagnosis(State.CRITICAL, "sender refused: authentication required", str(reply),
                         fix="the gateway needs a login: set --username and --password-file")
    if phase == "auth" and reply.code == S534_MECHANISM_TOO_WEAK:
        return Diagnosis(State.CRITICAL, f"{PROBLEMS[phase]}: mechanism too weak", str(reply),
                         fix="the server wants a stronger mechanism or TLS first: add --tls")
    fix = login_fix if login_fix and phase == "auth" else FIXES[phase]
    return Diagnosis(State.CRITICAL, PROBLEMS[phase], str(reply), fix=fix)


def tls_asked(reply: Reply) -> bool:
    text = reply.text.upper()
    return reply.code == S538_ENCRYPTION_REQUIRED or "TLS" in text or "ENCRYPTION" in text
