"""The o365-smtp mode: the smtp chain with an Entra ID token and AUTH XOAUTH2.

The token request starts with the chain and runs while DNS, TCP and STARTTLS proceed;
AUTH waits for it. Everything else is the smtp mode's own chain.
"""

from __future__ import annotations

from dataclasses import replace

from check_mailgw.chain import Step
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
        super().__init__(settings, redactor)

    @property
    def exchange(self) -> bool:
        return True

    def steps(self) -> list[Step]:
        token = Step("token", "the access token from Entra ID",
                     lambda: self.tokens.acquire(self.deadline), background=True,
                     dialogue=self.tokens.dialogue, target=self.tokens.target)
        return [token, *(replace(step, needs=("token",)) if step.name == "auth" else step
                         for step in super().steps())]

    def authenticate(self) -> Passed:
        assert self.tokens.token is not None, "auth runs after the token step passed"
        return self.authenticate_xoauth2(self.settings.sender, self.tokens.token)


def run(settings: Settings, redactor: Redactor) -> Report:
    return run_probe(ExchangeOAuthProbe(settings, redactor))
