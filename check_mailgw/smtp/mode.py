"""The smtp mode: the chain for a gateway that submits mail by SMTP with a password."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from check_mailgw.chain import Step
from check_mailgw.net.reach import secure
from check_mailgw.net.tls import CLIENT_CERTIFICATE_FIX, HANDSHAKE_REASONS, ssl_reason
from check_mailgw.outcome import Diagnosis, Passed, State, StepFailed
from check_mailgw.probe import Probe
from check_mailgw.secret import MASK, Redactor
from check_mailgw.settings import Settings
from check_mailgw.smtp.client import (
    MAX_LINE,
    MAX_REPLY,
    NOT_ACCEPTED,
    S220_READY,
    S235_AUTH_SUCCESS,
    S250_OK,
    S251_WILL_FORWARD,
    S334_AUTH_CONTINUE,
    S354_START_MAIL_INPUT,
    S421_SERVICE_NOT_AVAILABLE,
    ConnectionClosed,
    LineTooLong,
    NotSmtp,
    Reply,
    ReplyDidNotEnd,
    ReplyTooLong,
    SmtpConnection,
    TlsBroken,
)

if TYPE_CHECKING:
    from check_mailgw.smtp.replies import Phase

SUPPORTED_MECHANISMS = ("PLAIN", "LOGIN")  # in order of preference
SILENT_GREETING = (
    "the server accepted the connection but sent no greeting: if this port expects implicit "
    "TLS (usually 465), use --tls implicit; otherwise the server is overloaded or stuck, or a "
    "proxy in between holds the connection"
)


class Dialect(Protocol):
    """A vendor's SMTP server the chain recognises, and what it adds to SMTP's generic
    meaning of replies (microsoft/exchange_smtp.py is one)."""

    name: str

    def recognises(self, hostname: str, banner: str) -> bool: ...

    def reply_meaning(self, phase: Phase, reply: Reply) -> Diagnosis | None: ...

    def password_login_advisory(self, settings: Settings) -> Diagnosis | None: ...


class SmtpProbe(Probe):
    """The smtp chain: the SMTP session from greeting to envelope (or message).

    A mode that signs in otherwise than with a password overrides authenticate() and sets
    login_fix, what to check when the server refuses that login.
    """

    login_fix: str | None = None

    def __init__(self, settings: Settings, redactor: Redactor,
                 dialect: Dialect | None = None) -> None:
        super().__init__(settings, redactor, (settings.hostname, settings.port),
                         tls=settings.tls != "none")
        self.dialect = dialect
        self.smtp: SmtpConnection | None = None
        self.banner = ""

    @property
    def vendor(self) -> Dialect | None:
        """The dialect, once the server's name or greeting shows it is that vendor's."""
        dialect = self.dialect
        return dialect if dialect and dialect.recognises(self.settings.hostname, self.banner) \
            else None

    def steps(self) -> list[Step]:
        s = self.settings
        steps = []
        if self.reach.needs_dns:
            steps.append(Step("resolve", f"the DNS answer for {s.hostname}", self.resolve))
        steps.append(Step("connect", f"TCP connect to {s.target}", self.connect))
        session: list[Step] = []
        if s.tls == "implicit":
            session.append(Step("tls", "the TLS handshake", self.implicit_tls))
        session.append(Step("greeting", "the server's greeting", self.greeting,
                            silence_hint=SILENT_GREETING if s.tls != "implicit" else None))
        if s.tls == "starttls":
            session.append(Step("tls", "STARTTLS", self.starttls))
        if s.auth:
            session.append(Step("auth", "the reply to AUTH", self.authenticate))
        if s.send_to:
            session.append(Step("send", "the server to take the test message", self.send))
        else:
            session.append(
                Step("envelope", "the replies to MAIL FROM and RCPT TO", self.envelope)
            )
        return steps + [step._replace(run=speaks_smtp(step.run)) for step in session]

    # Steps
    def resolve(self) -> Passed:
        return self.reach.resolve(self.deadline)

    def connect(self) -> Passed:
        passed = self.reach.connect(self.deadline)
        assert self.reach.sock is not None
        self.smtp = SmtpConnection(self.reach.sock, self.deadline, self.dialogue)
        return passed

    def implicit_tls(self) -> Passed:
        return self._handshake("implicit TLS")

    def greeting(self) -> Passed:
        smtp = self._session()
        reply = smtp.read_reply("the server's greeting")
        self.banner = reply.text  # before judging it: a refusal is diagnosed in its dialect
        self._expect(reply, "greeting", S220_READY)
        self._expect(smtp.ehlo(self.settings.helo), "ehlo", S250_OK)
        facts = {"banner": str(reply)}
        if vendor := self.vendor:
            facts["server"] = vendor.name
        return Passed(facts=facts,
                      details={"extensions": sorted(smtp.capabilities) or "none (HELO)"})

    def starttls(self) -> Passed:
        smtp = self._session()
        if not smtp.offers("STARTTLS"):
            raise StepFailed(Diagnosis(
                State.CRITICAL, "STARTTLS not offered: TLS requested, refusing to go on in clear",
                f"EHLO extensions: {', '.join(sorted(smtp.capabilities)) or 'none'}",
                fix="the server (or something in the path stripping STARTTLS) offers no TLS: "
                "enable STARTTLS on the gateway, or use its implicit TLS port (465)",
            ))
        self._expect(smtp.command("STARTTLS"), "starttls", S220_READY)
        passed = self._handshake("STARTTLS")
        self._expect(smtp.ehlo(self.settings.helo), "ehlo", S250_OK)
        passed.details["extensions"] = sorted(smtp.capabilities)
        return passed

    def authenticate(self) -> Passed:
        smtp = self._session()
        s = self.settings
        offered = smtp.auth_mechanisms()
        usable = [m for m in SUPPORTED_MECHANISMS if m in offered]
        requested = s.auth_mechanism  # -A; None: whatever the server offers
        if requested and offered and requested not in offered:
            raise StepFailed(Diagnosis(
                State.CRITICAL,
                f"the server does not offer AUTH {requested} (it offers {', '.join(offered)})",
                fix=f"use -A {usable[0]}, or leave -A out to take what the server offers"
                if usable else f"enable AUTH {requested} on the gateway, or leave -A out",
            ), {"offered": offered})
        if not usable:
            words = f"AUTH {' '.join(offered)}" if offered else "no AUTH in the EHLO reply"
            if offered:
                fix = "the server offers only mechanisms this check does not speak (PLAIN, LOGIN)"
            elif s.tls == "none":
                fix = "many servers offer AUTH only after STARTTLS: add --tls"
            else:
                fix = "the server offers no password login here: enable SMTP AUTH on the gateway"
            raise StepFailed(Diagnosis(State.CRITICAL, "AUTH not offered", words, fix=fix),
                             {"offered": offered})
        mechanism = requested or usable[0]
        assert mechanism in SUPPORTED_MECHANISMS, "settings accept PLAIN or LOGIN only"
        assert s.username is not None and s.password is not None
        user, password = s.username, s.password.reveal()
        if mechanism == "PLAIN":
            blob = b64(f"\0{user}\0{password}")
            self.redactor.add(blob)
            reply = smtp.command(f"AUTH PLAIN {blob}", shown=f"AUTH PLAIN {MASK}")
        else:
            self.redactor.add(b64(password))
            reply = smtp.command(f"AUTH LOGIN {b64(user)}")
            if reply.code == S334_AUTH_CONTINUE and asks_for_username(reply):
                reply = smtp.command(b64(user))  # the server ignored the initial response
            if reply.code == S334_AUTH_CONTINUE:
                smtp.send(b64(password), shown=MASK)
                reply = smtp.read_reply("the reply to the AUTH LOGIN password")
        if reply.code != S235_AUTH_SUCCESS:
            raise StepFailed(self.diagnose("auth", reply),
                             {"mechanism": mechanism, "username": user})
        passed = Passed(f"AUTH {mechanism} as {user}",
                        {"mechanism": mechanism, "username": user}, details={"offered": offered})
        if vendor := self.vendor:
            passed.advisory = vendor.password_login_advisory(s)
        return passed

    def envelope(self) -> Passed:
        """MAIL FROM and RCPT TO answered: proves the route, delivers nothing.

        QUIT ends the transaction without a message (RFC 5321 4.1.1.10), so RSET is sent
        only in the pipelined batch, where its reply costs no wait of its own.
        """
        s = self.settings
        pipelined = self._session().offers("PIPELINING")
        commands = [f"MAIL FROM:<{s.sender}>", f"RCPT TO:<{s.sender}>"]
        replies = self._transaction([*commands, "RSET"] if pipelined else commands)
        self._check_envelope(replies)
        return Passed("MAIL/RCPT accepted, nothing sent",
                      {"mail_from": str(replies[0]), "rcpt_to": str(replies[1])},
                      details={"pipelined": pipelined})

    def send(self) -> Passed:
        s = self.settings
        assert s.send_to is not None
        replies = self._transaction([f"MAIL FROM:<{s.sender}>", f"RCPT TO:<{s.send_to}>",
                                     "DATA"])
        self._check_envelope(replies)
        if replies[2].code != S354_START_MAIL_INPUT:
            raise StepFailed(self.diagnose("data", replies[2]))
        message, message_id = monitoring_message(s.sender, s.send_to, s.helo)
        smtp = self._session()
        smtp.send_data(message, shown=f"<test message {message_id}, {len(message)} bytes>")
        reply = smtp.read_reply("the reply to the end of DATA")
        if reply.code != S250_OK:
            raise StepFailed(self.diagnose("message", reply),
                             {"message_id": message_id})
        return Passed(f"test message to {s.send_to} accepted ({reply})",
                      {"message_id": message_id, "reply": str(reply)})

    # Helpers
    def _session(self) -> SmtpConnection:
        assert self.smtp is not None, "connect runs before the SMTP steps"
        return self.smtp

    def _handshake(self, how: str) -> Passed:
        s = self.settings
        smtp = self._session()
        assert self.tls_context is not None, "TLS steps run only with a TLS mode"
        tls_sock, passed = secure(smtp.sock, self.tls_context, s.hostname, s.insecure,
                                  self.deadline, how)
        smtp.switch_to(tls_sock)
        return passed

    def diagnose(self, phase: Phase, reply: Reply) -> Diagnosis:
        from check_mailgw.smtp.replies import diagnose  # only a refusal needs the meanings

        vendor = self.vendor
        return diagnose(phase, reply, vendor.reply_meaning if vendor else None, self.login_fix)

    def _expect(self, reply: Reply, phase: Phase, code: int) -> Reply:
        """The reply if it has the expected code; else the step fails with the server's words."""
        if reply.code != code:
            raise StepFailed(self.diagnose(phase, reply))
        return reply

    def _transaction(self, commands: list[str]) -> list[Reply]:
        """Pipelined when the server allows it (RFC 2920): one round trip instead of three.

        One by one otherwise, up to the first refusal: the commands after it would only
        cost round trips to be refused in turn.
        """
        smtp = self._session()
        replies: list[Reply] = []
        if smtp.offers("PIPELINING"):
            smtp.send(*commands)
            for command in commands:
                replies.append(smtp.read_reply(f"the reply to {command.split(':')[0]}"))
                if replies[-1].code == S421_SERVICE_NOT_AVAILABLE:
                    break  # the server closes the session: no more replies come
            return replies
        for command in commands:
            replies.append(smtp.command(command))
            if replies[-1].code in NOT_ACCEPTED:
                break
        return replies

    def _check_envelope(self, replies: list[Reply]) -> None:
        """The first refusal, MAIL's before RCPT's; replies end at a refusal when not pipelined."""
        if replies[0].code != S250_OK:
            raise StepFailed(self.diagnose("mail", replies[0]))
        if replies[1].code not in (S250_OK, S251_WILL_FORWARD):
            raise StepFailed(self.diagnose("rcpt", replies[1]))

    def close(self) -> None:
        if self.smtp:
            self.smtp.quit()
        else:
            super().close()


def oversized(problem: str, start: str, what: str) -> StepFailed:
    """A reply past what any SMTP server sends: broken, whoever sent it."""
    return StepFailed(Diagnosis(
        State.CRITICAL, problem, start,
        fix=f"no SMTP server sends {what} that long: the server, or a proxy or filter in front "
        "of it, is broken; check its logs and what answers on this port"))


def speaks_smtp(run: Callable[[], Passed]) -> Callable[[], Passed]:
    """Turns a peer that hangs up or talks nonsense into a diagnosis of the step it hit."""

    def guarded() -> Passed:
        try:
            return run()
        except ConnectionClosed as closed:
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the server closed the connection",
                f"no reply while waiting for {closed.waiting_for}",
                fix="the server dropped the session: check its logs (crash, connection limit, "
                "or a policy that disconnects this client)",
            )) from None
        except ReplyDidNotEnd as endless:
            raise oversized(f"{endless.waiting_for} did not end after {endless.lines} lines",
                            endless.start, "a reply") from None
        except LineTooLong as long:
            raise oversized(f"{long.waiting_for} has a line longer than {MAX_LINE} bytes",
                            long.start, "lines") from None
        except ReplyTooLong as long:
            raise oversized(f"{long.waiting_for} is longer than {MAX_REPLY} bytes", long.start,
                            "replies") from None
        except TlsBroken as broken:
            raise StepFailed(tls_broken(broken.error, f"while waiting for {broken.waiting_for}"))\
                from None
        except NotSmtp as garbage:
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the server does not speak SMTP", garbage.line,
                fix="another service listens on this port: check the Port setting (-p)",
            )) from None
        except (ConnectionResetError, BrokenPipeError) as error:
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the server closed the connection", error.strerror or str(error),
                fix="the server dropped the session: check its logs",
            )) from None
        except TimeoutError:
            raise  # the chain words a timeout, with -t
        except ssl.SSLError as error:
            raise StepFailed(tls_broken(error, "during the session")) from None
        except OSError as error:
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the connection failed", ssl_reason(error),
                fix="the network path to the server broke during the session: check the "
                "route, firewalls and the server's logs",
            )) from None

    return guarded


def tls_broken(error: ssl.SSLError, when: str) -> Diagnosis:
    """TLS that failed after the handshake: TLS 1.3 sends a refused client certificate so."""
    words = HANDSHAKE_REASONS.get(error.reason or "") or ssl_reason(error)
    fix = CLIENT_CERTIFICATE_FIX if error.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED" else (
        "the TLS session broke after the handshake: a TLS-inspecting device in the path, or a "
        "fault of the server; check its logs")
    return Diagnosis(State.CRITICAL, f"TLS failed {when}", words, fix=fix)


def asks_for_username(reply: Reply) -> bool:
    try:
        return base64.b64decode(reply.text).lower().startswith(b"user")
    except ValueError:
        return False


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def monitoring_message(sender: str, recipient: str, helo: str) -> tuple[bytes, str]:
    """A message that says what it is, with a unique subject and Message-ID."""
    # Only a run that sends needs these: a check without --send-to skips their import.
    import uuid
    from email.message import EmailMessage
    from email.utils import format_datetime, localtime

    token = uuid.uuid4().hex[:12]
    domain = sender.rsplit("@", 1)[-1]
    message_id = f"<check_mailgw.{token}@{domain}>"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"check_mailgw test {token}"
    message["Date"] = format_datetime(localtime())
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "This is a test message from check_mailgw, a monitoring check of the mail gateway.\n"
        f"It was sent from {helo} at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.\n"
        "No action is needed; it may be deleted.\n"
    )
    wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    # Dot-stuffing (RFC 5321 4.5.2), then the end-of-data marker.
    wire = b"\r\n".join(b"." + line if line.startswith(b".") else line
                        for line in wire.split(b"\r\n"))
    return wire.rstrip(b"\r\n") + b"\r\n.\r\n", message_id

