"""The o365-smtp mode: the smtp chain with an Entra ID token and AUTH XOAUTH2.

The token request starts with the chain and runs while DNS, TCP and STARTTLS proceed;
AUTH waits for it, the expiry lookup (a Graph token, then Graph) follows it in the
background. Everything else is the smtp mode's own chain.
"""

from __future__ import annotations

from check_mailgw.chain import Step
from check_mailgw.microsoft.exchange_smtp import APP_LOGIN
from check_mailgw.microsoft.expiry import CredentialExpiry, app_steps, app_target
from check_mailgw.microsoft.token import TokenSource
from check_mailgw.microsoft.xoauth2 import OAUTH_AUTH_FIX, authenticate_xoauth2
from check_mailgw.outcome import Diagnosis, Passed, Report, State
from check_mailgw.secret import Redactor
from check_mailgw.settings import Settings
from check_mailgw.smtp.client import Reply
from check_mailgw.smtp.mode import SmtpProbe
from check_mailgw.smtp.replies import PROBLEMS, Phase

# Exchange Online answers MAIL FROM for any sender and refuses a foreign one only at the
# end of DATA (550 5.7.60, 554 5.2.252 SendAsDenied): a probe without a message cannot see it.
SEND_AS_NOT_PROVEN = (
    "this OK proves AUTH and MAIL/RCPT, not the right to send as From: Exchange checks it "
    "only at the end of DATA; run a daily service with --send-to to prove it"
)
# A token with no roles at all: neither an API permission with consent nor, as far as
# the token tells, anything else grants the app the right to send.
NO_ROLES_CAUSE = "token has no roles: SMTP.SendAsApp unconsented, or no RBAC role"
NO_ROLES_FIX = (
    "the token carries no roles: grant SMTP.SendAsApp with admin consent and register the "
    "app in Exchange with New-ServicePrincipal, or assign it the role Application "
    "SMTP.SendAsApp in Exchange RBAC for Applications; Test-ServicePrincipalAuthorization shows "
    "what Exchange grants"
)
REFUSALS: tuple[Phase, ...] = ("auth", "mail", "rcpt", "data", "message")


class ExchangeOAuthProbe(SmtpProbe):
    """The smtp chain signing in as an Entra ID app to Exchange Online."""

    login_fix = OAUTH_AUTH_FIX

    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        self.tokens = TokenSource(settings, redactor)  # msal's set-up is local work: first
        self.expiry = CredentialExpiry(settings, self.tokens)
        # Exchange Online unless the greeting says another server (Postfix, Dovecot...).
        super().__init__(settings, redactor, APP_LOGIN)

    @property
    def exchange(self) -> bool:
        return self.vendor is not None

    @property
    def target(self) -> str:
        return app_target(self.settings)

    def steps(self) -> list[Step]:
        smtp_chain = super().steps

        def chain() -> list[Step]:  # AUTH waits for the token
            return [step._replace(needs=("token",)) if step.name == "auth" else step
                    for step in smtp_chain()]

        return app_steps(self.tokens, self.expiry, self.deadline, self.settings.check, chain)

    def authenticate(self) -> Passed:
        assert self.tokens.token is not None, "auth runs after the token step passed"
        return authenticate_xoauth2(self._session(), self.settings.sender, self.tokens.token,
                                    self.redactor, self.diagnose)

    def envelope(self) -> Passed:
        passed = super().envelope()
        if self.exchange:
            passed.facts["note"] = SEND_AS_NOT_PROVEN
        return passed

    def diagnose(self, phase: Phase, reply: Reply) -> Diagnosis:
        diagnosis = super().diagnose(phase, reply)
        claims = self.tokens.claims
        if (self.exchange and phase in REFUSALS and diagnosis.state == State.CRITICAL
                and claims.values and not claims.roles):
            return diagnosis._replace(problem=f"{PROBLEMS[phase]} ({NO_ROLES_CAUSE})",
                           fix=NO_ROLES_FIX)
        return diagnosis


def run(settings: Settings, redactor: Redactor) -> Report:
    return ExchangeOAuthProbe(settings, redactor).run()
