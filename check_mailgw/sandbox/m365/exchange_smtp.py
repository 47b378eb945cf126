"""Exchange Online's SMTP submission dialect: AUTH XOAUTH2 with the tenant's tokens.

The session speaks like smtp.office365.com (Microsoft Learn, "Authenticate an IMAP,
POP or SMTP connection using OAuth", and replies reported in public threads):
STARTTLS first, then AUTH LOGIN or XOAUTH2; any sender passes MAIL FROM, and
send-as rights are checked only at the end of DATA.
"""

import asyncio
import secrets
import ssl
from dataclasses import dataclass
from email.utils import getaddresses
from typing import AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from check_mailgw.sandbox.accounts import default_accounts
from check_mailgw.sandbox.m365.access_tokens import EXCHANGE_AUDIENCES, AccessTokens, TokenRejected
from check_mailgw.sandbox.m365.tenant import SANDBOX_MAILBOXES
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.scenarios import get_scenario
from check_mailgw.sandbox.smtp import canned_replies
from check_mailgw.sandbox.smtp.dialect import (
    XOAUTH2_LINE_LIMIT,
    Mailbox,
    SandboxSMTP,
    Security,
    exchange_timestamp,
    parse_message,
)
from check_mailgw.sandbox.smtp.listeners import SmtpServer


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """User and bearer token from "user=<u>^Aauth=Bearer <t>^A^A"; None if malformed."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text.split("\x01")
    if len(fields) < 4 or fields[-2:] != ["", ""]:
        return None
    values: dict[str, str] = {}
    for field in fields[:-2]:
        name, equals, value = field.partition("=")
        if not equals:
            return None
        values[name.lower()] = value
    user = values.get("user", "")
    scheme, _, token = values.get("auth", "").partition(" ")
    if not user or scheme.lower() != "bearer" or not token.strip():
        return None
    return user, token.strip()


def exchange_reply(template: str, **values: str) -> str:
    """An Exchange reply with its trailer's timestamp, and whatever else it names, filled in."""
    return template.format(timestamp=exchange_timestamp(), **values)


@dataclass
class ExchangeMailbox(Mailbox):
    """aiosmtpd handler with Exchange's envelope rules: send-as is judged at the end of DATA."""

    RECIPIENT_OK = canned_replies.EXCHANGE_RECIPIENT_OK
    RECIPIENT_UNKNOWN = canned_replies.EXCHANGE_RECIPIENT_NOT_FOUND
    RESET = canned_replies.EXCHANGE_RESETTING
    NOOP = canned_replies.EXCHANGE_OK
    BYE = canned_replies.EXCHANGE_BYE

    tokens: AccessTokens | None = None

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self.scenario.exchange_mail_reply or self.scenario.mail_reply
        if reply:
            return exchange_reply(reply, user=session.auth_data or "")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return canned_replies.EXCHANGE_SENDER_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = parse_message(envelope)
        user = session.auth_data if session.authenticated else None
        senders = [envelope.mail_from or ""]
        senders += [address for _, address in getaddresses(message.get_all("From", []))]
        senders = [sender for sender in senders if sender]
        foreign = [sender for sender in senders if user and sender.lower() != user.lower()]
        sender = foreign[0] if foreign else (senders[0] if senders else "")
        if self.scenario.end_of_data_reply:
            return exchange_reply(self.scenario.end_of_data_reply, user=user or "", sender=sender)
        if foreign:
            denied = canned_replies.EXCHANGE_SEND_AS_DENIED
            return exchange_reply(denied, user=user or "", sender=sender)
        self.record(session, envelope, message)
        message_id = f"{secrets.token_hex(16)}@{canned_replies.EXCHANGE_BACKEND.lower()}"
        return canned_replies.EXCHANGE_QUEUED.format(message_id=message_id)


class ExchangeSMTP(SandboxSMTP):
    """One session with the Exchange SMTP listener."""

    default_mechanisms = ("LOGIN", "XOAUTH2")
    message_size_limit = canned_replies.EXCHANGE_MESSAGE_SIZE
    auth_required_reply = canned_replies.EXCHANGE_NOT_AUTHENTICATED
    encryption_required_reply = canned_replies.EXCHANGE_AUTH_NOT_OFFERED
    # Read by the base class when it makes the stream reader: lines this long
    # must fit whole (an XOAUTH2 blob), also inside DATA.
    line_length_limit = XOAUTH2_LINE_LIMIT
    listener_name = "exchange"

    def __init__(
        self,
        mailbox: ExchangeMailbox,
        *,
        security: Security,
        starttls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        assert mailbox.tokens is not None
        self._tokens = mailbox.tokens
        super().__init__(
            mailbox, security=security, starttls_context=starttls_context, loop=loop
        )
        # Per instance: aiosmtpd's table is shared by every session of every server.
        self.command_size_limits = _CommandSizes(self.command_size_limit)
        self.command_size_limits["AUTH"] = XOAUTH2_LINE_LIMIT

    def _identity(self) -> tuple[str, str]:
        return canned_replies.EXCHANGE_HOSTNAME, canned_replies.EXCHANGE_GREETING_TEXT

    async def _handle_client(self) -> None:
        if self._scenario.exchange_greeting_delay:
            await asyncio.sleep(self._scenario.exchange_greeting_delay)
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd words its STARTTLS go-ahead itself; Exchange words it so.
        if isinstance(status, str) and status == "220 Ready to start TLS":
            await super().push(canned_replies.EXCHANGE_STARTTLS_READY)
            return
        await super().push(status)

    def _ehlo_hello(self, client_name: str) -> str:
        assert self.session is not None
        peer = self.session.peer[0] if isinstance(self.session.peer, tuple) else "unknown"
        return canned_replies.EXCHANGE_EHLO_HELLO.format(hostname=self.hostname, peer=peer)

    def _extensions(self) -> list[str]:
        # In Exchange's order; only what the sandbox implements.
        extensions = [f"SIZE {self.data_size_limit}", "PIPELINING", "ENHANCEDSTATUSCODES"]
        if self._starttls_offered():
            extensions.append("STARTTLS")
        if self._auth_advertised():
            extensions.append("AUTH " + " ".join(self._offered_mechanisms))
        extensions.append("8BITMIME")
        return extensions

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if self._tls_protocol is not None and self._scenario.tls_ehlo_reply:
            await self.push(self._scenario.tls_ehlo_reply)
            self._drop_connection()
            return
        await super().smtp_EHLO(hostname)

    async def _run_auth_exchange(self, mechanism: str, initial_response: str) -> None:
        if mechanism != "XOAUTH2":
            await super()._run_auth_exchange(mechanism, initial_response)
            return
        blob = await self._xoauth2_blob(initial_response)
        if blob is None:
            return
        if self._scenario.auth_delay:
            await asyncio.sleep(self._scenario.auth_delay)
        parsed = parse_xoauth2(blob)
        if self._scenario.xoauth2_reply:
            user = parsed[0] if parsed else ""
            await self.push(exchange_reply(self._scenario.xoauth2_reply, user=user))
            return
        if parsed is None:
            await self.push(canned_replies.EXCHANGE_XOAUTH2_MALFORMED)
            return
        user, token = parsed
        try:
            self._tokens.verify(token, EXCHANGE_AUDIENCES)
        except TokenRejected:
            await self.push(exchange_reply(canned_replies.EXCHANGE_AUTH_UNSUCCESSFUL))
            return
        if user.lower() not in SANDBOX_MAILBOXES:
            await self.push(exchange_reply(canned_replies.EXCHANGE_AUTH_UNSUCCESSFUL))
            return
        await self._accept_login(user.lower())


class _CommandSizes(dict[str, int]):
    """Command line limits: one per command, the default for the rest."""

    def __init__(self, default: int) -> None:
        super().__init__()
        self._default = default

    def __missing__(self, command: str) -> int:
        return self._default


def start_exchange_smtp(
    *,
    tokens: AccessTokens,
    scenario: str = "ok",
    ca: SandboxCA,
    host: str = "127.0.0.1",
    port: int = 0,
    accounts: dict[str, str] | None = None,
) -> SmtpServer:
    """Start an Exchange-like submission listener (STARTTLS, AUTH XOAUTH2 with tokens)."""
    chosen = get_scenario(scenario)
    mailbox = ExchangeMailbox(chosen, dict(accounts or default_accounts()), tokens=tokens)
    return SmtpServer(mailbox, ExchangeSMTP, security="starttls", ca=ca, host=host, port=port)
