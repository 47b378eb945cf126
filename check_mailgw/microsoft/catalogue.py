"""The Microsoft error catalogue: what Exchange Online's answers mean and how to fix them.

Sources: Microsoft Learn (SMTP AUTH in Exchange Online, client submission, NDR
reference, Microsoft Entra authentication and authorization error codes, Microsoft Graph
error responses) and replies reported in public threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from check_mailgw.outcome import State

if TYPE_CHECKING:
    import datetime

@dataclass(frozen=True)
class CatalogueEntry:
    """Domain model: a known Microsoft answer: its meaning, the state it calls for, the fix."""

    meaning: str
    state: State
    fix: str


BASIC_AUTH_RETIRED_FIX = (
    "Microsoft is retiring basic authentication (username and password) for SMTP AUTH "
    "client submission in Exchange Online; move this gateway to OAuth2: an Entra ID app "
    "with SMTP.SendAsApp (--mode o365-smtp, SMTP with XOAUTH2) or Mail.Send (--mode graph, "
    "Microsoft Graph sendMail)"
)

# Ways an app may be granted the right to send: Entra ID API permissions, or Exchange's
# RBAC for Applications (which puts no role in the token).
GRAPH_GRANT_WAYS = (
    "grant Mail.Send (Microsoft Graph, application permission) with admin consent, or assign "
    "the role with Exchange RBAC for Applications; changes take 30 minutes to 2 hours: README, "
    "Troubleshooting, '403 ErrorAccessDenied: Access is denied'"
)
NEW_SECRET = (
    "create a new client secret (Entra ID, App registrations, the app, Certificates & secrets), "
    "copy its Value, and put it in the check and in the gateway's settings"
)

# Exchange Team blog, 2026-01-27 (MC786329): SMTP AUTH with a password is off by default
# from the end of December 2026; an admin can turn it back on until the final removal, whose
# date is to be announced for the second half of 2027.
BASIC_AUTH_OFF_BY_DEFAULT = "2026-12-31"


def basic_auth_retirement(today: datetime.date | None = None) -> str:
    """What to tell the owner of a password login to Exchange Online that still works."""
    import datetime  # only against Exchange Online

    today = today or datetime.date.today()
    off_by_default = datetime.date.fromisoformat(BASIC_AUTH_OFF_BY_DEFAULT)
    if today <= off_by_default:
        days = (off_by_default - today).days
        return (f"Microsoft disables SMTP AUTH with passwords by default from the end of "
                f"December 2026 (in {days} days); this gateway will stop unless moved to OAuth2")
    return ("SMTP AUTH with passwords is off by default since the end of December 2026 and "
            "works here only because an admin turned it back on; Microsoft removes it for good "
            "at a date announced for the second half of 2027")


# Exchange Online SMTP replies, by enhanced status code.
EXCHANGE_SMTP_REPLIES: dict[str, CatalogueEntry] = {
    "5.7.139": CatalogueEntry(
        "SMTP AUTH is disabled for the tenant or the mailbox",
        State.CRITICAL,
        "an Exchange admin enables SMTP AUTH for the sending mailbox: Set-CASMailbox "
        "-Identity <mailbox> -SmtpClientAuthenticationDisabled $false (the mailbox setting "
        "overrides the tenant's Set-TransportConfig); see https://aka.ms/smtp_auth_disabled",
    ),
    "5.7.30": CatalogueEntry(
        "basic authentication is not supported for client submission",
        State.CRITICAL,
        BASIC_AUTH_RETIRED_FIX,
    ),
    "5.7.3": CatalogueEntry(
        "Exchange refused the login",
        State.CRITICAL,
        "check the username and password, and that the account is not blocked by security "
        "defaults or Conditional Access",
    ),
    "5.7.60": CatalogueEntry(
        "the account may not send as this sender",
        State.CRITICAL,
        "grant the account Send As on the From address (Add-RecipientPermission), or use "
        "the account's own address as From",
    ),
    "5.2.252": CatalogueEntry(
        "the account may not send as this sender",
        State.CRITICAL,
        "grant the account Send As on the From address (Add-RecipientPermission), or use "
        "the account's own address as From",
    ),
    # STOREDRV's mailbox logon failure comes as 430 4.2.0, a 4xx that no retry mends.
    "4.2.0": CatalogueEntry(
        "Exchange could not open the mailbox (mailbox logon failure)",
        State.CRITICAL,
        "Exchange cannot open the sending mailbox: check that it exists, is licensed and not "
        "disabled (a new mailbox can take an hour to be ready); the reply names the mailbox",
    ),
    "5.5.124": CatalogueEntry(
        "Exchange could not read the XOAUTH2 data",
        State.CRITICAL,
        "the SASL string is malformed: it must be base64 of "
        "'user=<mailbox>^Aauth=Bearer <token>^A^A'",
    ),
}


# With OAuth2 (XOAUTH2), the same codes have other causes (Microsoft Learn: Authenticate an
# IMAP, POP or SMTP connection using OAuth; Exchange's SMTP RBAC onboarding).
EXCHANGE_OAUTH_REPLIES: dict[str, CatalogueEntry] = {
    "5.7.3": CatalogueEntry(
        "Exchange did not accept the app for this mailbox",
        State.CRITICAL,
        "register the app in Exchange with New-ServicePrincipal, giving the enterprise "
        "application's object ID, not the app registration's; grant it FullAccess on the From "
        "mailbox, or a role in Exchange RBAC for Applications; From must be that mailbox",
    ),
    "4.2.0": CatalogueEntry(
        "Exchange could not open the mailbox (mailbox logon failure)",
        State.CRITICAL,
        "the app lacks FullAccess on the From mailbox, or it was granted less than about an "
        "hour ago: Add-MailboxPermission -Identity <mailbox> -User <service principal id> "
        "-AccessRights FullAccess, then wait; with RBAC for Applications check the role "
        "assignment's scope (Test-ServicePrincipalAuthorization)",
    ),
    # The check signs in as the From mailbox (user= is --from), so this is never another
    # mailbox's Send As: the app's right on its own mailbox is missing.
    "5.7.60": CatalogueEntry(
        "the app may not send from this mailbox",
        State.CRITICAL,
        "Exchange checks the app's right at the end of DATA: give it FullAccess on the From "
        "mailbox, or a role assignment with Exchange RBAC for Applications that covers it: "
        "README, Troubleshooting, '535 5.7.3 Authentication unsuccessful (o365-smtp)'",
    ),
}
EXCHANGE_OAUTH_REPLIES["5.2.252"] = EXCHANGE_OAUTH_REPLIES["5.7.60"]

# Replies whose text says more than their code (5.7.139 comes in several versions).
_REFINEMENTS: tuple[tuple[str, str, CatalogueEntry], ...] = (
    ("5.7.139", "disabled for the Mailbox", CatalogueEntry(
        "SMTP AUTH is disabled for the mailbox", State.CRITICAL,
        "an Exchange admin enables it for the sending mailbox: Set-CASMailbox -Identity "
        "<mailbox> -SmtpClientAuthenticationDisabled $false; see "
        "https://aka.ms/smtp_auth_disabled",
    )),
    ("5.7.139", "did not meet the criteria", CatalogueEntry(
        "blocked by Conditional Access or security defaults", State.CRITICAL,
        "a Conditional Access policy (or security defaults) blocks this sign-in: check the "
        "sign-in logs for the policy and exclude this sender or location",
    )),
    ("5.7.139", "organization configuration doesn't allow", CatalogueEntry(
        "the organisation's configuration does not allow this sign-in", State.CRITICAL,
        "an Exchange admin allows SMTP AUTH for the tenant (Set-TransportConfig "
        "-SmtpClientAuthenticationDisabled $false) or for the mailbox (Set-CASMailbox)",
    )),
    ("4.7.66", "TLS", CatalogueEntry(
        "Exchange refuses TLS 1.0 and 1.1", State.CRITICAL,
        "this client connected with TLS below 1.2: update OpenSSL / Python on this machine, or "
        "check a TLS-inspecting device in the path",
    )),
    ("4.7.0", "PRX", CatalogueEntry(
        "temporary Exchange Online server error", State.WARNING,
        "a passing fault on Microsoft's side: if it lasts, check Microsoft 365 service health",
    )),
)


def exchange_reply(enhanced: str | None, text: str = "", *,
                   oauth: bool = False) -> CatalogueEntry | None:
    """What an Exchange Online reply means: the text's refinement, then the code's entry."""
    for code, words, entry in _REFINEMENTS:
        if enhanced == code and words.lower() in text.lower():
            return entry
    if oauth and enhanced in EXCHANGE_OAUTH_REPLIES:
        return EXCHANGE_OAUTH_REPLIES[enhanced or ""]
    return EXCHANGE_SMTP_REPLIES.get(enhanced or "")


# Entra ID token endpoint errors (client credentials), by AADSTS code. Sources: Microsoft
# Learn, "Microsoft Entra authentication and authorization error codes"; msal's source for
# the ValueError at tenant discovery (authority.py).
TOKEN_ERRORS: dict[int, CatalogueEntry] = {
    7000215: CatalogueEntry(
        "invalid client secret", State.CRITICAL,
        "the secret is wrong; often the secret's ID was pasted instead of its Value: copy the "
        "Value (Certificates & secrets, shown only when the secret is created), or " + NEW_SECRET,
    ),
    7000222: CatalogueEntry("the client secret has expired", State.CRITICAL, NEW_SECRET),
    700016: CatalogueEntry(
        "application not found in the directory", State.CRITICAL,
        "check the Client ID (the application (client) ID on the app's Overview page), and that "
        "the app is registered in this tenant (Tenant ID) or consented to in it",
    ),
    90002: CatalogueEntry(
        "tenant not found", State.CRITICAL,
        "check the Tenant ID (Entra ID, Overview, Tenant ID) and the cloud (--cloud): a "
        "tenant of a national cloud does not exist in the global one",
    ),
    900023: CatalogueEntry(
        "the tenant is neither a GUID nor a valid domain", State.CRITICAL,
        "give the Tenant ID as the GUID on the Entra ID Overview page",
    ),
    70011: CatalogueEntry(
        "the scope is not valid", State.CRITICAL,
        "app-only scopes are a resource followed by /.default: leave OAuth Scope empty for the "
        "mode's default, or use https://outlook.office365.com/.default (SMTP) or "
        "https://graph.microsoft.com/.default (Graph)",
    ),
    1002012: CatalogueEntry(
        "the scope does not end in /.default", State.CRITICAL,
        "client credentials need a /.default scope: leave OAuth Scope empty for the mode's "
        "default, or add /.default to the resource",
    ),
    500011: CatalogueEntry(
        "the resource of the scope is not in this tenant", State.CRITICAL,
        "check the scope's host (a typo, or another cloud's host), and that the tenant has "
        "Exchange Online or Microsoft Graph",
    ),
    700027: CatalogueEntry(
        "the client assertion was not accepted (certificate not found or signature invalid)",
        State.CRITICAL,
        "upload the certificate's public part to the app (Certificates & secrets, Certificates), "
        "and check that the check uses the matching private key",
    ),
    7000112: CatalogueEntry(
        "the application is disabled", State.CRITICAL,
        "re-enable the app: Entra ID, Enterprise applications, the app, Properties, "
        "'Enabled for users to sign-in?' Yes",
    ),
    53003: CatalogueEntry(
        "blocked by Conditional Access", State.CRITICAL,
        "a Conditional Access policy for workload identities blocks this app from this "
        "location: review the policies named in the sign-in logs (service principal sign-ins), "
        "e.g. allow this monitoring server's public address",
    ),
    7000218: CatalogueEntry(
        "no client secret or client assertion was sent", State.CRITICAL,
        "give the client secret (--client-secret-file) or a certificate credential",
    ),
}


def token_error(code: int | None) -> CatalogueEntry | None:
    return TOKEN_ERRORS.get(code or 0)


_AADSTS = re.compile(r"AADSTS(\d+)")


def aadsts_code(text: str) -> int | None:
    """The AADSTS code in an error text, as an int."""
    match = _AADSTS.search(text)
    return int(match.group(1)) if match else None


def first_sentence(description: str) -> str:
    """Microsoft's message without the trace lines, whichever form they come in."""
    text = description.replace("\r\n", " ").replace("\n", " ")
    text = text.split(" Trace ID:", 1)[0].split("Trace ID:", 1)[0].strip()
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence if len(sentence) <= 300 else sentence[:297] + "..."


# Microsoft Graph sendMail errors, by error code; the message refines some (Microsoft Learn:
# user: sendMail, Microsoft Graph error responses and resource types).
GRAPH_ERRORS: dict[str, CatalogueEntry] = {
    "InvalidAuthenticationToken": CatalogueEntry(
        "Graph did not accept the access token", State.CRITICAL,
        "the token is expired or for another service: leave OAuth Scope empty (the default "
        "is https://graph.microsoft.com/.default), and check this machine's clock",
    ),
    "NoPermissionsInAccessToken": CatalogueEntry(
        "the token carries no permission Graph understands", State.CRITICAL,
        "the app may not send mail yet: " + GRAPH_GRANT_WAYS,
    ),
    "ErrorAccessDenied": CatalogueEntry(
        "access denied: the app may not send as this mailbox", State.CRITICAL,
        "the app has no Mail.Send for this mailbox: " + GRAPH_GRANT_WAYS,
    ),
    "ErrorInvalidUser": CatalogueEntry(
        "the From address is not a mailbox of this tenant", State.CRITICAL,
        "check From: it must be an existing mailbox (user or shared) in this tenant",
    ),
    "ResourceNotFound": CatalogueEntry(
        "the From address has no usable mailbox", State.CRITICAL,
        "check From: the user exists but has no Exchange Online mailbox (licence?)",
    ),
    "MailboxNotEnabledForRESTAPI": CatalogueEntry(
        "the mailbox cannot be used through Graph", State.CRITICAL,
        "the mailbox is inactive, soft-deleted or hosted on-premises: use a cloud mailbox as "
        "From",
    ),
    "TooManyRequests": CatalogueEntry(
        "Graph is throttling this app", State.WARNING,
        "Graph limits an app to 10,000 requests per 10 minutes and 4 at once per mailbox: check "
        "what else sends as this mailbox, or check less often",
    ),
    "ApplicationThrottled": CatalogueEntry(
        "Graph is throttling this app", State.WARNING,
        "Graph limits an app to 4 concurrent requests per mailbox: check what else sends as "
        "this mailbox at the same time",
    ),
}
ACCESS_POLICY_FIX = (
    "an Application Access Policy leaves this mailbox out of the app's scope, or EWS/REST is "
    "blocked for the mailbox or organisation: check Get-ApplicationAccessPolicy / "
    "Test-ApplicationAccessPolicy, and Get-CASMailbox <mailbox> (EwsEnabled)"
)


def graph_error(code: str, message: str) -> CatalogueEntry | None:
    entry = GRAPH_ERRORS.get(code)
    if code == "ErrorAccessDenied" and "OData is disabled" in message:
        return CatalogueEntry("access to the mailbox through Graph is disabled",
                              State.CRITICAL, ACCESS_POLICY_FIX)
    if code == "InvalidAuthenticationToken" and "expired" in message.lower():
        return CatalogueEntry("the access token has expired", State.CRITICAL,
                              "check this machine's clock (the token is fresh from this run)")
    return entry
