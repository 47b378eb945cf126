"""The o365-smtp mode: the smtp chain with an Entra ID token and AUTH XOAUTH2.

The token request starts with the chain and runs while DNS, TCP and STARTTLS proceed;
AUTH waits for it, the expiry lookup (a Graph token, then Graph) follows it in the
background. Everything else is the smtp mode's own chain.
"""

from __future__ import annotations

from dataclasses import replace

from check_mailgw.chain import Step
from check_mailgw.microsoft.expiry import CredentialExpiry, app_target, expiry_steps
from check_mailgw.microsoft.token import TokenSource
from check_mailgw.outcome import Passed, Report
from check_mailgw.secret import Redactor
from check_mailgw.settings import Settings
from check_mailgw.smtp.mode import SmtpProbe, run_probe


class ExchangeOAuthProbe(SmtpProbe):
    """The smtp chain signing in as an Entra ID app to Exchange Online."""

    oauth_login = True

    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        self.tokens = TokenSource(settings, redactor)  # msal's set-up is local work: first
        self.expiry = CredentialExpiry(settings, self.tokens)
        super().__init__(settings, redactor)

    @property
    def exchange(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return app_target(self.settings)

    def steps(self) -> list[Step]:
        if self.settings.check == "expiry":
            return expiry_steps(self.tokens, self.expiry, self.deadline)
        return [self.tokens.step(self.deadline, background=True),
                *(replace(step, needs=("token",)) if step.name == "auth" else step
                  for step in super().steps()),
                self.expiry.step(self.deadline, background=True)]

    def authenticate(self) -> Passed:
        assert self.tokens.token is not None, "auth runs after the token step passed"
        return self.authenticate_xoauth2(self.settings.sender, self.tokens.token)


def run(settings: Settings, redactor: Redactor) -> Report:
    return run_probe(ExchangeOAuthProbe(settings, redactor))
