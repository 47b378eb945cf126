"""Exchange Online's SMTP client submission, as a dialect the smtp chain recognises.

What it adds to SMTP: its replies' meanings from the catalogue, and for a password login
the retirement of basic authentication. The smtp mode's entry in the mode table is this
module's run(): the smtp chain with PASSWORD_LOGIN; o365-smtp takes APP_LOGIN. Only a server
recognised as Exchange Online loads the catalogue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from check_mailgw.outcome import Diagnosis

if TYPE_CHECKING:
    from check_mailgw.outcome import Report
    from check_mailgw.secret import Redactor
    from check_mailgw.settings import Settings
    from check_mailgw.smtp.client import Reply
    from check_mailgw.smtp.replies import Phase

# The domains of Exchange Online's client submission hosts in every cloud (microsoft/clouds.py;
# a test holds each cloud's smtp_host to them) and of smtp-mail.outlook.com.
EXCHANGE_DOMAINS = (".outlook.com", ".office365.com", ".office365.us", ".outlook.cn")
# Exchange Online greets with its front end's name; "Microsoft ESMTP MAIL Service" alone is
# any Exchange, an on-premises one too, where no retirement of passwords applies. Looked for
# as plain text, not a regular expression: every smtp run reads a greeting, and compiling one
# costs more than the search.
EXCHANGE_BANNER_NAMES = ("outlook.office365.com", "outlook.office365.us", ".outlook.com",
                         ".outlook.cn")


def is_exchange_online(hostname: str, banner: str = "") -> bool:
    """The host name, or the greeting of the server behind it, says Exchange Online."""
    name = hostname.lower().rstrip(".")
    return name.endswith(EXCHANGE_DOMAINS) or names_exchange_online(banner)


def names_exchange_online(banner: str) -> bool:
    """One of Exchange Online's host names in the greeting, ending where a word ends."""
    text = banner.lower()
    for name in EXCHANGE_BANNER_NAMES:
        start = text.find(name)
        while start >= 0:
            end = start + len(name)
            if end == len(text) or not (text[end].isalnum() or text[end] == "_"):
                return True
            start = text.find(name, start + 1)
    return False


class ExchangeOnline:
    """Server dialect: Exchange Online, signed in to with a password or an app's token."""

    name = "Exchange Online"
    __slots__ = ("app_login",)

    def __init__(self, app_login: bool = False) -> None:
        self.app_login = app_login  # o365-smtp: AUTH XOAUTH2, whose refusals mean other things

    def recognises(self, hostname: str, banner: str) -> bool:
        """By name or greeting; an app login assumes it until a greeting names another."""
        return (self.app_login and not banner) or is_exchange_online(hostname, banner)

    def reply_meaning(self, phase: Phase, reply: Reply) -> Diagnosis | None:
        from check_mailgw.microsoft.catalogue import exchange_reply
        from check_mailgw.smtp.replies import PROBLEMS

        known = exchange_reply(reply.enhanced, reply.text, oauth=self.app_login)
        if known is None:
            return None
        return Diagnosis(known.state, f"{PROBLEMS[phase]} ({known.meaning})", str(reply),
                         fix=known.fix)

    def password_login_advisory(self, settings: Settings) -> Diagnosis:
        from check_mailgw.microsoft.catalogue import BASIC_AUTH_RETIRED_FIX, basic_auth_retirement

        countdown = basic_auth_retirement(settings.current_time().date())
        return Diagnosis(settings.basic_auth_retirement, countdown, fix=BASIC_AUTH_RETIRED_FIX)


PASSWORD_LOGIN = ExchangeOnline()
APP_LOGIN = ExchangeOnline(app_login=True)


def run(settings: Settings, redactor: Redactor) -> Report:
    """The smtp mode: SMTP with a password, which may reach Exchange Online."""
    from check_mailgw.smtp.mode import SmtpProbe

    return SmtpProbe(settings, redactor, PASSWORD_LOGIN).run()
