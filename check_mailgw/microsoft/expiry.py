"""The expiry step: days left on the client secret or certificate the app really signs in with.

Graph lists an app's credentials (`applications(appId=...)`, which needs Application.Read.All).
The secret in use is the one whose hint (its first three characters) the configured secret
starts with; a certificate is matched by the certificate itself, its thumbprint as a
fallback. Without the lookup, a configured end date (--secret-expires) or the certificate's
own notAfter tells the days left.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

import requests

from check_mailgw.chain import Dialogue, Step
from check_mailgw.deadline import Deadline
from check_mailgw.microsoft.clouds import CLOUDS
from check_mailgw.microsoft.graph import IMPOSTOR_FIX, GraphAnswer
from check_mailgw.microsoft.token import TokenSource, transport_failure
from check_mailgw.net.http_status import (
    HTTP_200_OK,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_429_TOO_MANY_REQUESTS,
)
from check_mailgw.net.https import (
    GRAPH_ANSWER_LIMIT,
    DeadlineHttpClient,
    UntrustedAnswer,
    https_session,
    proxy_for,
)
from check_mailgw.outcome import Diagnosis, Passed, State, StepFailed
from check_mailgw.secret import MASK

if TYPE_CHECKING:
    from check_mailgw.microsoft.certificate import ClientCertificate
    from check_mailgw.settings import Settings

SECONDS_PER_DAY = 86400
ENDS_FORMAT = "%Y-%m-%d %H:%M UTC"

READ_PERMISSION = (
    "grant the app Application.Read.All (Microsoft Graph, application permission) with admin "
    "consent: README, Credential expiry"
)
SECRET_DATE = "give --secret-expires YYYY-MM-DD, the end date Certificates & secrets shows, " \
    "to skip the lookup"


class AppCredential(NamedTuple):
    """Domain model: one client secret or certificate of the app, as Graph lists it."""

    key_id: str
    name: str
    ends: datetime.datetime | None
    hint: str = ""  # a secret's first three characters
    key_identifier: bytes = b""  # a certificate's customKeyIdentifier, usually its SHA-1
    key: bytes = b""  # a certificate's DER, when Graph includes it

    @classmethod
    def of(cls, item: Any) -> AppCredential | None:
        if not isinstance(item, dict):
            return None
        return cls(key_id=str(item.get("keyId") or "-"), name=str(item.get("displayName") or "-"),
                   ends=graph_time(item.get("endDateTime")), hint=str(item.get("hint") or ""),
                   key_identifier=unbase64(item.get("customKeyIdentifier")),
                   key=unbase64(item.get("key")))

    def describe(self, now: datetime.datetime) -> str:
        if self.ends is None:
            return f"'{self.name}' (no end date)"
        return f"'{self.name}' ends {self.ends:%Y-%m-%d} ({days_left(self.ends, now)} days)"

    def matches(self, certificate: ClientCertificate) -> bool:
        """The robust match first (the certificate itself), then the usual thumbprints."""
        if self.key:
            return self.key == certificate.der
        identifier = self.key_identifier
        if identifier in (certificate.sha1, certificate.sha256):
            return True
        text = identifier.decode("ascii", "replace").strip().upper()
        return text in (certificate.thumbprint, certificate.sha256.hex().upper())


def graph_time(value: Any) -> datetime.datetime | None:
    """Graph's "2027-05-23T10:00:00Z" (sometimes with fractions of a second)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def unbase64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return b""


def days_left(ends: datetime.datetime, now: datetime.datetime) -> int:
    """Whole days left, rounded down: negative once it has ended."""
    return math.floor((ends - now).total_seconds() / SECONDS_PER_DAY)


def ends_fact(ends: datetime.datetime) -> str:
    return ends.astimezone(datetime.UTC).strftime(ENDS_FORMAT)


class Listing(NamedTuple):
    """What Graph said about the app's credentials: the lists, or why there are none."""

    secrets: list[AppCredential]
    certificates: list[AppCredential]
    refusal: Diagnosis | None = None
    forbidden: bool = False
    ids: dict[str, str] | None = None  # Graph's request-id, for support


class CredentialExpiry:
    """The expiry step of one run; it borrows the run's TokenSource for a Graph token."""

    def __init__(self, settings: Settings, tokens: TokenSource) -> None:
        assert settings.oauth is not None
        self.settings = settings
        self.oauth = settings.oauth
        self.tokens = tokens
        self.dialogue = Dialogue()
        graph = urlsplit(self.oauth.graph_url)
        self.host = graph.hostname or ""
        self.target = graph.netloc
        self.proxy = proxy_for(self.oauth.graph_url, self.oauth.proxy)

    def step(self, deadline: Deadline, background: bool) -> Step:
        if background and self.settings.mode != "graph" and self.looks_up:
            # The Graph token is asked for now, beside the chain's own: not after it.
            self.tokens.prefetch(self.graph_scopes(), deadline, self.dialogue)
        return Step("expiry", f"the {self.oauth.credential}'s end date",
                    lambda: self.run(deadline), background=background, needs=("token",),
                    dialogue=self.dialogue, target=self.target)

    @property
    def looks_up(self) -> bool:
        """Whether the step asks Graph: always for a certificate, for a secret without
        --secret-expires."""
        return bool(self.oauth.certificate) or not self.oauth.secret_expires

    def run(self, deadline: Deadline) -> Passed:
        now = self.settings.current_time()
        if self.oauth.certificate:
            return self.certificate_days(self.oauth.certificate, deadline, now)
        if self.oauth.secret_expires:
            ends = self.oauth.secret_expires
            facts = {"ends": ends_fact(ends), "source": "--secret-expires"}
            if ends < now:  # this step runs once the token is in: the secret still works
                return Passed("client secret works past --secret-expires", facts,
                              advisory=Diagnosis(
                                  State.WARNING, f"--secret-expires {ends:%Y-%m-%d} is past, yet "
                                  "the secret signs in: the date given is probably out of date",
                                  fix="update --secret-expires to the end date that Certificates "
                                  "& secrets shows for this secret"))
            return secret_passed(days_left(ends, now), facts)
        return self.secret_days(deadline, now)

    # --- the client secret -------------------------------------------------------------------

    def secret_days(self, deadline: Deadline, now: datetime.datetime) -> Passed:
        listing = self.lookup(deadline)
        if listing.refusal:
            state = self.oauth.lookup_denied if listing.forbidden else \
                max(State.WARNING, listing.refusal.state)
            return Passed(facts=dict(listing.ids or {}),
                          advisory=with_state(listing.refusal, state))
        secret = self.oauth.client_secret.reveal() if self.oauth.client_secret else ""
        mine = sorted((c for c in listing.secrets if c.hint and secret.startswith(c.hint)),
                      key=lambda c: c.ends or datetime.datetime.max.replace(tzinfo=datetime.UTC))
        if not mine:
            return Passed(facts={"secrets": len(listing.secrets)}, advisory=Diagnosis(
                State.WARNING, "the configured client secret is not among the app's secrets",
                f"none of its {len(listing.secrets)} secrets has the configured one's hint",
                fix="the configured secret may belong to another app, or was deleted: compare "
                "the Client ID and the app's Certificates & secrets; or " + SECRET_DATE))
        in_use = mine[0]
        facts: dict[str, Any] = {"secret": in_use.name, "key_id": in_use.key_id}
        if in_use.ends is None:
            facts["ends"] = "never"
            return Passed("client secret without end date", facts)
        facts["ends"] = ends_fact(in_use.ends)
        if len(mine) > 1:
            facts["same_hint"] = f"{len(mine)} secrets share its hint; the nearest end counts"
        sooner = [c for c in listing.secrets
                  if c not in mine and c.ends is not None and c.ends < in_use.ends]
        if sooner:
            facts["other_secrets_ending_sooner"] = ", ".join(c.describe(now) for c in sooner)
        return secret_passed(days_left(in_use.ends, now), facts)

    # --- the certificate ---------------------------------------------------------------------

    def certificate_days(self, certificate: ClientCertificate, deadline: Deadline,
                         now: datetime.datetime) -> Passed:
        """The certificate's own end counts; the app's record of it is looked up when allowed."""
        ends = certificate.not_after
        facts: dict[str, Any] = {"thumbprint": certificate.thumbprint,
                                 "not_after": ends_fact(ends)}
        listing = self.lookup(deadline)
        advisory = None
        if listing.refusal:
            # The local notAfter already answers the question: a refused lookup is a note.
            advisory = listing.refusal if listing.refusal.state == State.CRITICAL else \
                with_state(listing.refusal, State.OK)
            facts.update(listing.ids or {})
        elif registered := next((c for c in listing.certificates if c.matches(certificate)),
                                None):
            facts.update(key_id=registered.key_id, registered_as=registered.name)
            if registered.ends and registered.ends < ends:
                ends = registered.ends
                facts["registration_ends"] = ends_fact(ends)
        else:
            advisory = Diagnosis(
                State.OK, f"the certificate is not among the app's "
                f"{len(listing.certificates)} certificates in Graph",
                fix="the sign-in worked, so Entra ID knows it; compare the thumbprint with "
                "Certificates & secrets")
        days = days_left(ends, now)
        return Passed(f"certificate {days_words(days)}", facts,
                      {"cert_credential_days": days}, advisory=advisory)

    # --- the lookup --------------------------------------------------------------------------

    def graph_scopes(self) -> tuple[str, ...]:
        """graph mode: the token step's own scopes (msal's cache answers); else Graph's."""
        if self.settings.mode == "graph":
            return self.oauth.scopes
        return (CLOUDS[self.oauth.cloud].default_scope("graph"),)

    def lookup(self, deadline: Deadline) -> Listing:
        try:
            token = self.tokens.prefetched(self.graph_scopes(), deadline, self.dialogue)
        except StepFailed as failed:  # the mail path has its token; only the lookup is lost
            return Listing([], [], Diagnosis(
                State.WARNING, "no Graph token for the expiry lookup",
                failed.diagnosis.headline(), fix=f"{failed.diagnosis.fix}; or {SECRET_DATE}"))
        path = f"/v1.0/applications(appId='{quote(self.oauth.client_id)}')"
        url = f"{self.oauth.graph_url}{path}?$select=passwordCredentials,keyCredentials"
        session = self.tokens.session if self.proxy == self.tokens.proxy else \
            https_session(self.tokens.tls_context, self.proxy)
        http = DeadlineHttpClient(session, deadline, origin=self.oauth.graph_url,
                                  host_words="Graph", limit=GRAPH_ANSWER_LIMIT)
        self.dialogue.add(f"C: GET {path} (Authorization: Bearer {MASK})")
        try:
            response = http.get(url, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json",
                "client-request-id": str(uuid.uuid4()), "return-client-request-id": "true"})
        except UntrustedAnswer as refused:
            return Listing([], [], Diagnosis(State.CRITICAL, refused.problem, refused.reply,
                                             fix=IMPOSTOR_FIX))
        except requests.RequestException as error:
            failed = transport_failure(error, self.host, self.proxy)
            return Listing([], [], Diagnosis(
                State.WARNING, "the app's credentials could not be read", failed.headline(),
                fix=f"{failed.fix}; or {SECRET_DATE}"))
        finally:
            for line in http.exchanges:
                self.dialogue.add(line)
        answer = GraphAnswer(response.status_code, response.headers.get("Content-Type", ""),
                             response.content, {k.lower(): v for k, v in response.headers.items()})
        self.dialogue.add(f"S: {answer.words()}")
        return listing_of(answer)


def app_steps(tokens: TokenSource, expiry: CredentialExpiry, deadline: Deadline, check: str,
              chain: Callable[[], list[Step]]) -> list[Step]:
    """An app mode's steps: the token beside its chain and, with --check full, the expiry
    after the token (--check chain leaves it to a daily service); --check expiry: the token,
    then the expiry, and no mail traffic at all."""
    if check == "expiry":
        return [tokens.step(deadline, background=False), expiry.step(deadline, background=False)]
    steps = [tokens.step(deadline, background=True), *chain()]
    if check == "full":
        steps.append(expiry.step(deadline, background=True))
    return steps


def app_target(settings: Settings) -> str:
    """What the first line names: the gateway, or for --check expiry the app itself."""
    assert settings.oauth is not None
    return f"app {settings.oauth.client_id}" if settings.check == "expiry" else settings.target


def listing_of(answer: GraphAnswer) -> Listing:
    if answer.status == HTTP_200_OK:
        try:
            document = json.loads(answer.body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return Listing(credentials(document.get("passwordCredentials")),
                           credentials(document.get("keyCredentials")))
        return Listing([], [], Diagnosis(
            State.WARNING, "the app's credentials could not be read",
            f"HTTP 200 {answer.content_type.split(';')[0] or 'no content type'}",
            fix="something else answers in Graph's place: a proxy's page, or a wrong "
            "--graph-url"))
    words, ids = answer.words(), answer.ids()
    if answer.status == HTTP_403_FORBIDDEN:
        return Listing([], [], Diagnosis(
            State.WARNING, "the app may not read its own credentials (no Application.Read.All)",
            words, fix=f"{READ_PERMISSION}; or {SECRET_DATE}"), forbidden=True, ids=ids)
    if answer.status == HTTP_404_NOT_FOUND:
        fix = "the app registration lives in another tenant (a multi-tenant app): " + SECRET_DATE
    elif answer.status == HTTP_429_TOO_MANY_REQUESTS:
        fix = "Graph limits reading app registrations per tenant: run the expiry check less " \
            "often (daily is enough)"
    else:
        fix = "Graph could not answer now; if it lasts, " + SECRET_DATE
    return Listing([], [], Diagnosis(State.WARNING, "the app's credentials could not be read",
                                     words, fix=fix), ids=ids)


def credentials(items: Any) -> list[AppCredential]:
    found = (AppCredential.of(item) for item in items) if isinstance(items, list) else ()
    return [credential for credential in found if credential is not None]


def with_state(diagnosis: Diagnosis, state: State) -> Diagnosis:
    return Diagnosis(state, diagnosis.problem, diagnosis.reply, diagnosis.fix)


def days_words(days: int) -> str:
    return f"expired {-days} days ago" if days < 0 else f"{days} days left"


def secret_passed(days: int, facts: dict[str, Any]) -> Passed:
    return Passed(f"client secret {days_words(days)}", facts, {"secret_days": days})
