"""The sandbox's SMTP dialect on top of aiosmtpd: EHLO, STARTTLS, AUTH and envelope rules."""

import asyncio
import binascii
import contextlib
import datetime
import hmac
import logging
import secrets
import ssl
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from typing import AnyStr, ClassVar, Literal

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException

from check_mailgw.sandbox.scenarios import Scenario
from check_mailgw.sandbox.smtp import canned_replies
from check_mailgw.sandbox.smtp.tls_refusal import HandshakeRefusal
from check_mailgw.sandbox.smtp.transcript import Transcript

Security = Literal["starttls", "implicit", "plain"]

log = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 36_700_160
# An Entra token is 1.5 to 4 KB, base64 makes it a third longer: AUTH lines
# and the answers to 334 carry it.
XOAUTH2_LINE_LIMIT = 16_384
AUTH_ABORTED = "501 5.7.0 Auth aborted"
# Postfix's words for a refusal by Dovecot's SASL, after an error challenge.
DOVECOT_AUTH_FAILED = "535 5.7.8 Error: authentication failed:"
# RFC 7628 3.2.3: the client answers an error challenge with an empty response.
ERROR_CHALLENGE_NOT_ENDED = "501 5.5.2 The error challenge wants an empty response"


@dataclass(frozen=True)
class Received:
    """One message the sandbox accepted, with its envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    authenticated_as: str | None


def sender_allowed(address: str, user: str) -> bool:
    """The sandbox's send-as rule: the user's own address or one in the user's domain."""
    address = address.lower()
    user = user.lower()
    if address == user:
        return True
    _, at, domain = user.rpartition("@")
    return bool(at) and address.endswith("@" + domain)


def recipient_exists(address: str) -> bool:
    """Every recipient exists, except in the reserved .invalid domain (RFC 2606)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return not (domain == "invalid" or domain.endswith(".invalid"))


def parse_message(envelope: Envelope) -> EmailMessage:
    """The message of a finished DATA."""
    message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
    assert isinstance(message, EmailMessage)
    return message


def exchange_timestamp() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Mailbox:
    """aiosmtpd handler: the envelope rules and the store of accepted messages."""

    # The words of the replies a subclass may change (Exchange says them its own way).
    RECIPIENT_OK: ClassVar[str] = canned_replies.RECIPIENT_OK
    RECIPIENT_UNKNOWN: ClassVar[str] = canned_replies.RECIPIENT_UNKNOWN
    RESET: ClassVar[str] = canned_replies.OK
    NOOP: ClassVar[str] = canned_replies.OK
    BYE: ClassVar[str] = canned_replies.BYE

    scenario: Scenario
    accounts: dict[str, str]
    messages: list[Received] = field(default_factory=list)
    # Every connection's dialogue, oldest first.
    dialogues: list[Transcript] = field(default_factory=list)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.scenario.mail_reply:
            return self.scenario.mail_reply
        user = session.auth_data if session.authenticated else None
        if user is not None and not sender_allowed(address, user):
            return canned_replies.SENDER_NOT_OWNED.format(address=address, user=user)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return canned_replies.SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not recipient_exists(address):
            return self.RECIPIENT_UNKNOWN.format(address=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return self.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.record(session, envelope, parse_message(envelope))
        return canned_replies.QUEUED.format(queue_id=secrets.token_hex(5).upper())

    def record(self, session: Session, envelope: Envelope, message: EmailMessage) -> None:
        """Keep an accepted message for the tests to read."""
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                authenticated_as=session.auth_data if session.authenticated else None,
            )
        )

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.RESET

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str | None
    ) -> str:
        return self.NOOP

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.BYE

    async def handle_exception(self, error: Exception) -> str:
        # A failed STARTTLS handshake or a vanished client is the client's
        # business; anything else is a sandbox bug worth a traceback.
        if not isinstance(error, TLSSetupException | ConnectionError):
            log.error("sandbox SMTP session failed", exc_info=error)
        return canned_replies.INTERNAL_ERROR


class SandboxSMTP(SMTP):
    """One SMTP session in the sandbox's dialect, shaped by the security mode and scenario."""

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"
    # What a dialect of the sandbox (Exchange's) words or offers differently.
    default_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    message_size_limit = MAX_MESSAGE_SIZE
    auth_required_reply = canned_replies.AUTH_REQUIRED
    encryption_required_reply = canned_replies.ENCRYPTION_REQUIRED
    # How transcripts name the listener; None: by its security.
    listener_name: ClassVar[str | None] = None

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        security: Security,
        starttls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # Set before the base class looks the instance over.
        self._security = security
        self._scenario = mailbox.scenario
        self.transcript = Transcript(self.listener_name or security)
        mailbox.dialogues.append(self.transcript)
        self._accounts = mailbox.accounts
        self._offered_mechanisms = self._scenario.auth_mechanisms or self.default_mechanisms
        if "XOAUTH2" in self._offered_mechanisms:
            # Read by the base class when it makes the stream reader: a token line fits.
            self.line_length_limit = XOAUTH2_LINE_LIMIT
        hostname, greeting_text = self._identity()
        super().__init__(
            mailbox,
            hostname=hostname,
            ident=greeting_text.format(date=formatdate(localtime=True)),
            tls_context=starttls_context,
            data_size_limit=self.message_size_limit,
            loop=loop,
        )

    def _identity(self) -> tuple[str, str]:
        """The host name the server calls itself, and the rest of its greeting."""
        return self._scenario.hostname, self._scenario.greeting_text

    def _tls_active(self) -> bool:
        return self._security == "implicit" or self._tls_protocol is not None

    def _starttls_offered(self) -> bool:
        if self._tls_active() or self.tls_context is None:
            return False
        if self._scenario.auth_needs_starttls:
            return True
        return self._security == "starttls" and self._scenario.offers_starttls

    def _auth_advertised(self) -> bool:
        if not self._scenario.offers_auth:
            return False
        return (
            self._tls_active()
            or self._security == "plain"
            or not self._scenario.offers_starttls
            or self._scenario.auth_needs_starttls
        )

    def _must_authenticate(self) -> bool:
        # Plain SMTP (port 25) relays without AUTH; submission ports insist.
        return self._security != "plain" and self._scenario.offers_auth

    def data_received(self, data: bytes) -> None:
        self.transcript.client_sent(data)
        super().data_received(data)

    async def _handle_client(self) -> None:
        # The client may go away while a reply is on its way.
        with contextlib.suppress(ConnectionError):
            await super()._handle_client()

    async def check_auth_needed(self, caller_method: str) -> bool:
        assert self.session is not None
        if self._must_authenticate() and not self.session.authenticated:
            await self.push(self.auth_required_reply.format(timestamp=exchange_timestamp()))
            return True
        return False

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push(canned_replies.EHLO_SYNTAX)
            return
        self._set_rset_state()
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self._ehlo_hello(hostname), *self._extensions()]
        # One write for the whole reply, as real servers do.
        reply = [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]
        await self.push("\r\n".join(reply))

    def _ehlo_hello(self, client_name: str) -> str:
        """The first line of the EHLO reply."""
        return self.hostname

    def _extensions(self) -> list[str]:
        extensions = [
            f"SIZE {self.data_size_limit}",
            "PIPELINING",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
        ]
        if self._starttls_offered():
            extensions.append("STARTTLS")
        if self._auth_advertised():
            extensions.append("AUTH " + " ".join(self._offered_mechanisms))
        return extensions

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if self._tls_active():
            await self.push(canned_replies.BAD_SEQUENCE)
            return
        if not self._starttls_offered():
            await self.push(canned_replies.NOT_IMPLEMENTED)
            return
        if self._scenario.tls == "handshake-failure" and not arg:
            await self.push(canned_replies.STARTTLS_READY)
            await self._refuse_handshake()
            return
        await super().smtp_STARTTLS(arg)

    async def _refuse_handshake(self) -> None:
        assert self.tls_context is not None
        refusal = HandshakeRefusal(self.tls_context)
        self.transcript.binary_follows()
        while not refusal.finished:
            data = await self._reader.read(16384)
            if not data:
                break
            self._writer.write(refusal.feed(data))
        self._drop_connection()

    async def smtp_AUTH(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self._scenario.offers_auth:
            await self.push(canned_replies.NOT_IMPLEMENTED)
            return
        if self._scenario.drop_on_auth:
            self._drop_connection()
            return
        if not self.session.extended_smtp:
            await self.push(canned_replies.BAD_SEQUENCE)
            return
        if self.session.authenticated:
            await self.push(canned_replies.ALREADY_AUTHENTICATED)
            return
        if self._scenario.auth_needs_starttls and not self._tls_active():
            await self.push(canned_replies.STARTTLS_FIRST)
            return
        if not self._auth_advertised():
            await self.push(self.encryption_required_reply.format(timestamp=exchange_timestamp()))
            return
        mechanism, _, initial_response = (arg or "").strip().partition(" ")
        if not mechanism:
            await self.push(canned_replies.AUTH_SYNTAX)
            return
        if mechanism.upper() not in self._offered_mechanisms:
            await self.push(canned_replies.MECHANISM_UNKNOWN)
            return
        await self._run_auth_exchange(mechanism.upper(), initial_response.strip())

    async def _run_auth_exchange(self, mechanism: str, initial_response: str) -> None:
        """Run the exchange of an offered mechanism and answer it."""
        if mechanism == "XOAUTH2" and self._scenario.xoauth2_error_status:
            await self._refuse_token(initial_response, self._scenario.xoauth2_error_status)
            return
        credentials = await self._read_credentials(mechanism, initial_response)
        if credentials is None:
            return
        if self._scenario.auth_delay:
            await asyncio.sleep(self._scenario.auth_delay)
        if self._scenario.auth_reply:
            reply = self._scenario.auth_reply.format(timestamp=exchange_timestamp(),
                                                     user=credentials[0])
            await self.push(reply)
            return
        username, password = credentials
        if self._password_matches(username, password):
            await self._accept_login(username)
        else:
            await self.push(canned_replies.AUTH_INVALID)

    async def _refuse_token(self, initial_response: str, status: str) -> None:
        """Dovecot's way: an error challenge (RFC 7628 3.2.3), then 535 once it is ended."""
        if await self._xoauth2_blob(initial_response) is None:
            return
        await self.push("334 " + b64encode(status.encode()).decode("ascii"))
        answer = await self._reader.readline()
        if not answer:
            return
        await self.push(DOVECOT_AUTH_FAILED if not answer.strip() else ERROR_CHALLENGE_NOT_ENDED)

    async def _xoauth2_blob(self, initial_response: str) -> bytes | None:
        """The decoded XOAUTH2 blob (b"" if undecodable); None once the client gave up."""
        if initial_response:
            raw = initial_response.encode("ascii", errors="replace")
        else:
            # XOAUTH2 starts with an empty challenge.
            await self.push("334 ")
            line = await self._reader.readline()
            if not line:
                return None
            raw = line.strip()
            if raw == b"*":
                await self.push(AUTH_ABORTED)
                return None
        try:
            return b64decode(raw, validate=True)
        except binascii.Error:
            return b""

    async def push(self, status: AnyStr) -> None:
        self.transcript.server_sent(status.encode() if isinstance(status, str) else status)
        await super().push(status)
        # RFC 5321 3.8: a 421 closes the session; commands pipelined after it go unanswered.
        reply = status if isinstance(status, str) else status.decode("ascii", "replace")
        if reply.startswith("421"):
            self._drop_connection()

    async def _accept_login(self, user: str) -> None:
        assert self.session is not None
        self.session.authenticated = True
        self.session.auth_data = user
        await self.push(canned_replies.AUTH_SUCCESSFUL)

    def _password_matches(self, username: str, password: str) -> bool:
        expected = self._accounts.get(username)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), password.encode(errors="surrogateescape"))

    def _drop_connection(self) -> None:
        assert self.transport is not None and self._handler_coroutine is not None
        # close() still sends what is buffered.
        self.transport.close()
        # Read nothing more, not even pipelined commands already buffered.
        self._handler_coroutine.cancel()

    async def _read_credentials(
        self, mechanism: str, initial_response: str
    ) -> tuple[str, str] | None:
        """Username and password from a PLAIN or LOGIN exchange; None once a reply was sent."""
        if mechanism == "PLAIN":
            blob = await self._sasl_response(initial_response, "")
            if blob is None:
                return None
            parts = blob.split(b"\0")
            if len(parts) != 3:
                await self.push(canned_replies.AUTH_MALFORMED)
                return None
            return _text(parts[1]), _text(parts[2])
        if mechanism == "LOGIN":
            username = await self._sasl_response(initial_response, self.AuthLoginUsernameChallenge)
            if username is None:
                return None
            password = await self._sasl_response("", self.AuthLoginPasswordChallenge)
            if password is None:
                return None
            return _text(username), _text(password)
        await self.push(canned_replies.MECHANISM_UNKNOWN)
        return None

    async def _sasl_response(self, initial_response: str, challenge: str) -> bytes | None:
        """The client's decoded response: the initial one if sent, else the answer to a 334."""
        if not initial_response:
            # challenge_auth replies itself to "*" and to bad base64.
            answer = await self.challenge_auth(challenge)
            return None if answer is MISSING else answer
        if initial_response == "=":
            return b""
        try:
            return b64decode(initial_response, validate=True)
        except binascii.Error:
            await self.push(canned_replies.AUTH_MALFORMED)
            return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")
