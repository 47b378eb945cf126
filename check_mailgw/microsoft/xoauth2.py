"""AUTH XOAUTH2: the SMTP login with an access token, as Exchange Online takes it.

Sources: Microsoft Learn, "Authenticate an IMAP, POP or SMTP connection using OAuth" (the
SASL XOAUTH2 format); RFC 7628 3.2.3 for the error challenge.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from check_mailgw.outcome import Diagnosis, Passed, State, StepFailed
from check_mailgw.secret import MASK, Redactor
from check_mailgw.smtp.client import S235_AUTH_SUCCESS, S334_AUTH_CONTINUE, Reply, SmtpConnection
from check_mailgw.smtp.mode import b64
from check_mailgw.smtp.replies import Phase

# A server other than Exchange Online that takes OAuth2 tokens (Postfix with Dovecot, a
# relay in front of a mailbox) judges them by its own settings.
OAUTH_AUTH_FIX = (
    "the server refused the app's token: check that it accepts Entra ID tokens of this "
    "tenant and app for this mailbox (its OAuth2 issuer and audience settings, and the "
    "OAuth Scope, --scope) and its logs"
)
MAX_ERROR_STATUS = 300  # characters of a decoded error challenge shown


def authenticate_xoauth2(smtp: SmtpConnection, user: str, token: str, redactor: Redactor,
                         diagnose: Callable[[Phase, Reply], Diagnosis]) -> Passed:
    """AUTH XOAUTH2 in two steps: a token does not fit SMTP's 512-octet command line."""
    offered = smtp.auth_mechanisms()
    if "XOAUTH2" not in offered:
        words = f"AUTH {' '.join(offered)}" if offered else "no AUTH in the EHLO reply"
        raise StepFailed(Diagnosis(
            State.CRITICAL, "XOAUTH2 not offered", words,
            fix="this server does not take OAuth2 tokens: check the Server setting (-H); "
            "Exchange Online offers XOAUTH2 after STARTTLS on smtp.office365.com:587",
        ), {"offered": offered})
    blob = b64(f"user={user}\x01auth=Bearer {token}\x01\x01")
    redactor.add(blob)
    facts = {"mechanism": "XOAUTH2", "user": user}
    reply = smtp.command("AUTH XOAUTH2")
    if reply.code == S334_AUTH_CONTINUE:
        smtp.send(blob, shown=MASK)
        reply = smtp.read_reply("the reply to the XOAUTH2 token")
    if reply.code == S334_AUTH_CONTINUE:
        # An error challenge (RFC 7628 3.2.3, Google's XOAUTH2 protocol): a JSON status
        # in base64; an empty line asks for the refusal that ends the exchange.
        facts["error_status"] = error_status(reply)
        smtp.send("", shown="(empty line)")
        reply = smtp.read_reply("the reply to the answer to the error challenge")
    if reply.code != S235_AUTH_SUCCESS:
        raise StepFailed(diagnose("auth", reply), facts)
    return Passed(f"AUTH XOAUTH2 as {user}", {"mechanism": "XOAUTH2", "user": user},
                  details={"offered": offered})


def error_status(reply: Reply) -> str:
    """The decoded JSON of an XOAUTH2 error challenge, short; the raw text if not base64."""
    text = reply.text[:4 * MAX_ERROR_STATUS]
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
    except ValueError:
        decoded = text
    decoded = " ".join(decoded.split())
    return decoded if len(decoded) <= MAX_ERROR_STATUS else decoded[:MAX_ERROR_STATUS] + "..."
