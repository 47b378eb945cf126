"""The Microsoft error catalogue: what Exchange Online's answers mean and how to fix them.

Sources: Microsoft Learn (SMTP AUTH in Exchange Online, client submission, NDR
reference) and field reports; see REFERENCE.md in the project's design notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from check_mailgw.outcome import State

# Hosts of Exchange Online client submission, in every cloud.
EXCHANGE_SMTP_HOSTS = {
    "smtp.office365.com",
    "smtp-mail.outlook.com",
    "smtp.office365.us",
    "outlook-dod.office365.us",
    "smtp.partner.outlook.cn",
}
_EXCHANGE_DOMAINS = (".outlook.com", ".office365.com", ".office365.us", ".outlook.cn")
_EXCHANGE_BANNER = re.compile(r"(outlook\.office365\.(com|us)|\.outlook\.(com|cn))\b"
                              r"|Microsoft ESMTP MAIL Service", re.IGNORECASE)


def is_exchange_online(hostname: str, banner: str = "") -> bool:
    """The host name, or the greeting of the server behind it, says Exchange Online."""
    name = hostname.lower().rstrip(".")
    return (name in EXCHANGE_SMTP_HOSTS or name.endswith(_EXCHANGE_DOMAINS)
            or bool(_EXCHANGE_BANNER.search(banner)))


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
        "with a password: check the username and password and that the account is not "
        "blocked by security defaults or Conditional Access; with OAuth2: register the app's "
        "service principal in Exchange (New-ServicePrincipal) and grant it FullAccess on the "
        "mailbox (Add-MailboxPermission), and use the mailbox as user=",
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
    "5.5.124": CatalogueEntry(
        "Exchange could not read the XOAUTH2 data",
        State.CRITICAL,
        "the SASL string is malformed: it must be base64 of "
        "'user=<mailbox>^Aauth=Bearer <token>^A^A'",
    ),
}


def exchange_reply(enhanced: str | None) -> CatalogueEntry | None:
    return EXCHANGE_SMTP_REPLIES.get(enhanced or "")
