"""The graph mode: Exchange Online through Microsoft Graph sendMail, with an app-only token.

The token request starts with the chain; DNS, TCP (and a proxy tunnel) and TLS to Graph
run beside it; the sendMail probe waits for both. The expiry lookup follows the token in
the background, on a connection of its own.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from check_mailgw.chain import Step
from check_mailgw.microsoft.expiry import CredentialExpiry, app_steps, app_target
from check_mailgw.microsoft.graph import (
    NO_ROLES_CAUSE,
    REFUSED,
    GraphAnswerRefused,
    GraphConnection,
    diagnose,
    message,
    probe_accepted,
    send_mail_path,
)
from check_mailgw.microsoft.token import TokenSource
from check_mailgw.net.http_status import HTTP_202_ACCEPTED
from check_mailgw.net.https import proxy_for
from check_mailgw.net.reach import secure
from check_mailgw.net.tunnel import open_tunnel, proxy_endpoint
from check_mailgw.outcome import Passed, Report, StepFailed
from check_mailgw.probe import Probe
from check_mailgw.secret import MASK, Redactor
from check_mailgw.settings import Settings
from check_mailgw.validators import HTTPS_PORT

PROBE_INFERENCE = (
    "Graph answered a message without recipients with 400 ErrorInvalidRecipients: it got as "
    "far as the recipients, which suggests the token, the mailbox and any access policy "
    "passed (an inference: Graph has no documented dry run; --send-to proves it)"
)


class GraphProbe(Probe):
    """The graph chain: to Graph directly or through a proxy, then sendMail."""

    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        assert settings.oauth is not None
        self.tokens = TokenSource(settings, redactor)  # msal's set-up is local work: first
        self.expiry = CredentialExpiry(settings, self.tokens)
        url = urlsplit(settings.oauth.graph_url)
        self.host, self.port = url.hostname or "", url.port or HTTPS_PORT
        self.proxy = proxy_for(settings.oauth.graph_url, settings.oauth.proxy)
        super().__init__(settings, redactor,
                         proxy_endpoint(self.proxy) if self.proxy else (self.host, self.port))
        self.graph: GraphConnection | None = None

    @property
    def target(self) -> str:
        return app_target(self.settings)

    def steps(self) -> list[Step]:
        return app_steps(self.tokens, self.expiry, self.deadline, self.settings.check,
                         self.transport_and_send)

    def transport_and_send(self) -> list[Step]:
        hop = f"{self.reach.host}:{self.reach.port}"
        steps = []
        if self.reach.needs_dns:
            steps.append(Step("resolve", f"the DNS answer for {self.reach.host}",
                              lambda: self.reach.resolve(self.deadline)))
        steps.append(Step("connect", f"TCP connect to {hop}",
                          lambda: self.reach.connect(self.deadline)))
        if self.proxy:
            steps.append(Step("tunnel", f"the proxy's answer to CONNECT {self.host}",
                              self.tunnel))
        steps.append(Step("tls", "the TLS handshake with Graph", self.secure))
        steps.append(Step("send", "Graph's answer to sendMail", self.send, needs=("token",)))
        return steps

    def tunnel(self) -> Passed:
        assert self.reach.sock is not None and self.proxy is not None
        status = open_tunnel(self.reach.sock, self.host, self.port, self.deadline, self.proxy)
        return Passed(facts={"proxy_reply": status})

    def secure(self) -> Passed:
        assert self.reach.sock is not None
        s = self.settings
        tls_sock, passed = secure(self.reach.sock, self.tls_context, self.host, s.insecure,
                                  self.deadline, "HTTPS")
        self.graph = GraphConnection(tls_sock, self.host, self.port, self.deadline)
        return passed

    def send(self) -> Passed:
        """sendMail: without --send-to, the empty-recipients probe; with it, a real message."""
        assert self.graph is not None and self.tokens.token is not None
        s = self.settings
        recipients = [s.send_to] if s.send_to else []
        subject = f"check_mailgw test {time.strftime('%Y-%m-%d %H:%M:%S')}"
        text = ("This is a test message from check_mailgw, a monitoring check of the mail "
                "gateway. No action is needed; it may be deleted.")
        path = send_mail_path(s.sender)
        self.dialogue.add(f"C: POST {path} (Authorization: Bearer {MASK}, "
                          f"{len(recipients)} recipient(s))")
        try:
            answer = self.graph.post_json(path, message(s.sender, recipients, subject, text),
                                          self.tokens.token)
        except GraphAnswerRefused as refused:
            raise StepFailed(refused.diagnosis) from None
        self.dialogue.add(f"S: {answer.words()}")
        facts: dict[str, object] = {"status": answer.status, **answer.ids()}
        if s.send_to and answer.status == HTTP_202_ACCEPTED:
            return Passed(f"sendMail to {s.send_to} accepted (202)", facts)
        if not s.send_to and probe_accepted(answer):
            facts["inference"] = PROBE_INFERENCE
            return Passed(f"sendMail as {s.sender} probed, nothing sent", facts)
        if not s.send_to and answer.status == HTTP_202_ACCEPTED:
            return Passed(f"sendMail as {s.sender} accepted", facts)
        diagnosis = diagnose(answer)
        claims = self.tokens.claims
        if answer.status in REFUSED and claims.values and not claims.roles:
            # The likely cause takes the first line; the fix already tells both ways.
            diagnosis = diagnosis._replace(problem=f"sendMail refused ({NO_ROLES_CAUSE})")
        raise StepFailed(diagnosis, facts)

    def close(self) -> None:
        if self.graph:
            self.graph.close()
        else:
            super().close()


def run(settings: Settings, redactor: Redactor) -> Report:
    return GraphProbe(settings, redactor).run()
