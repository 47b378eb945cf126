"""The token step: an app-only access token from Entra ID through msal, and what a refusal means.

msal does the protocol; this module bounds it by the run's deadline, keeps it to the hosts
the settings name (no instance discovery elsewhere, no region unless asked, no token kept
across runs: only the tenant discovery answer, see discovery_cache), and turns every way it
can fail into a diagnosis from the Microsoft catalogue.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msal
import requests

from check_mailgw.chain import Dialogue, Step
from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.microsoft.claims import SERVICES, Claims, service_of
from check_mailgw.microsoft.clouds import MICROSOFT_AUTHORITY_HOSTS
from check_mailgw.microsoft.discovery_cache import (
    DiscoveryCache,
    DiscoveryThroughCache,
    cache_directory,
    discovery_url,
    trust_of,
)
from check_mailgw.net.http_status import (
    HTTP_200_OK,
    HTTP_429_TOO_MANY_REQUESTS,
    SUCCESSFUL,
)
from check_mailgw.net.https import (
    DeadlineHttpClient,
    UntrustedAnswer,
    https_session,
    origin_of,
    printable_url,
    proxy_for,
    retry_after,
)
from check_mailgw.net.tls import client_context
from check_mailgw.outcome import Diagnosis, Passed, State, StepFailed
from check_mailgw.secret import Redactor

if TYPE_CHECKING:
    from check_mailgw.microsoft.certificate import ClientCertificate
    from check_mailgw.settings import OAuthSettings, Settings

CERTIFICATE_UNKNOWN = 700027  # AADSTS700027: the assertion's key is not the app's
ERROR_LOOKUP = "https://login.microsoftonline.com/error?code={code}"
SIGN_IN_HOST = "the sign-in host"
IMPOSTOR_FIX = ("something else answers in Microsoft's place (a proxy, a captive portal, a "
                "wrong --authority): check --authority, --cloud and the proxy")
# Entra ID's access tokens are JWS compact serialisations of a few KiB (RFC 7515 section 7.1).
TOKEN_LIMIT = 16 * 1024
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MSAL_LOG_LINES = 20
MSAL_LOG_LINE = 300


class MsalLog(logging.Handler):
    """msal's own log records, for the -vv dialogue only: Python would print its warnings on
    stderr, which Icinga 2 appends to the plugin's output (with a server's page in them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < MSAL_LOG_LINES:
            self.lines.append(f"msal {record.levelname.lower()}: "
                              f"{record.getMessage()[:MSAL_LOG_LINE]}")


def capture_msal_log() -> MsalLog:
    """Takes msal's log records away from stderr, for the rest of this process."""
    logger = logging.getLogger("msal")
    for handler in logger.handlers:
        if isinstance(handler, MsalLog):
            return handler
    handler = MsalLog()
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def token_fault(token: Any) -> str | None:
    """What is wrong with an access token as a header value, if anything: it goes into an
    Authorization header and an XOAUTH2 line, so it must be a short line of base64url parts."""
    if not isinstance(token, str) or not token:
        return "not a text"
    if len(token) > TOKEN_LIMIT:
        return f"{len(token) // 1024} KiB long, over {TOKEN_LIMIT // 1024} KiB"
    if not token.isascii():
        return "not ASCII"
    if any(character < " " or character == "\x7f" for character in token):
        return "control characters in it"
    if not _JWS.fullmatch(token):
        return "not three base64url parts"
    return None


class Lane:
    """One msal application and its http client: msal's objects are not shared by threads, so
    a token asked for beside another (o365-smtp's Graph token) gets a lane of its own."""

    def __init__(self, http: DeadlineHttpClient, cache: DiscoveryCache | None) -> None:
        self.http = http
        # What msal calls: the same client, with the discovery answer kept between runs.
        self.client: DeadlineHttpClient | DiscoveryThroughCache = \
            DiscoveryThroughCache(http, cache) if cache else http
        self.app: msal.ConfidentialClientApplication | None = None
        self.lock = threading.Lock()

    @property
    def discovered_from_cache(self) -> bool:
        return isinstance(self.client, DiscoveryThroughCache) and self.client.from_cache


class TokenSource:
    """Acquires the token of one run; the token step fills it, later steps read it."""

    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        assert settings.oauth is not None
        self.settings = settings
        self.oauth: OAuthSettings = settings.oauth
        self.redactor = redactor
        self.dialogue = Dialogue()
        authority = urlsplit(self.oauth.authority)
        self.host = authority.hostname or ""
        self.target = authority.netloc  # the sign-in host, as the first line names it
        self.proxy = proxy_for(self.oauth.authority, self.oauth.proxy)
        if self.proxy:
            redactor.add_url_credentials(self.proxy)
        self.tls_context = client_context(settings.ca_file, settings.insecure)
        self.session = https_session(self.tls_context, self.proxy)
        self.token: str | None = None
        self.claims = Claims({})
        self._lanes: dict[str, Lane] = {}
        self._prefetched: dict[tuple[str, ...],
                               tuple[threading.Thread, list[str | BaseException]]] = {}
        self._msal_log = capture_msal_log()
        self.discovery = self._discovery_cache()

    def _discovery_cache(self) -> DiscoveryCache | None:
        """Where this run's discovery answer is kept; none when --discovery-cache is "", nor
        under --insecure, whose answers come over unverified TLS."""
        if self.settings.insecure or self.oauth.discovery_cache == "":
            return None
        try:
            trust = trust_of(self.settings.ca_file)
        except OSError:
            return None  # the TLS context has read it; a file gone since then is not worth a note
        return DiscoveryCache(cache_directory(os.environ, self.oauth.discovery_cache),
                              discovery_url(self.oauth.authority, self.oauth.tenant_id), trust)

    def cache_facts(self) -> dict[str, str]:
        """Why the discovery cache was passed by, for -v; nothing when it worked or was not
        asked."""
        if self.oauth.discovery_cache == "":
            return {"discovery_cache": 'off (--discovery-cache "")'}
        notes = self.discovery.notes if self.discovery else []
        return {"discovery_cache": "; ".join(notes)} if notes else {}

    def step(self, deadline: Deadline, background: bool) -> Step:
        return Step("token", "the access token from Entra ID", lambda: self.acquire(deadline),
                    background=background, dialogue=self.dialogue, target=self.target)

    def acquire(self, deadline: Deadline) -> Passed:
        """The step: a token, its claims checked against the settings."""
        try:
            self.token = self.token_for(self.oauth.scopes, deadline, self.dialogue)
            self.claims = Claims.of(self.token)
            passed = self._judge()
        except StepFailed as failed:
            failed.facts.update(self.cache_facts())
            raise
        passed.facts.update(self.cache_facts())
        return passed

    def token_for(self, scopes: tuple[str, ...], deadline: Deadline, dialogue: Dialogue,
                  lane: str = "chain") -> str:
        """A token for these scopes from the lane's app object (its cache answers a repeat)."""
        chosen = self._lane(lane, deadline)
        try:
            return self._token_of(chosen, scopes, dialogue)
        except (StepFailed, DeadlineExceeded):
            if chosen.discovered_from_cache and self.discovery:
                self.discovery.forget()  # the kept answer may be stale: the next run asks
            raise

    def _token_of(self, chosen: Lane, scopes: tuple[str, ...], dialogue: Dialogue) -> str:
        with chosen.lock:
            http = chosen.http
            try:
                result = self._request(chosen, scopes)
            finally:
                for line in (*http.exchanges, *self._msal_log.lines):
                    dialogue.add(line)
                http.exchanges.clear()
                self._msal_log.lines.clear()
        token = result.get("access_token")
        if isinstance(token, str) and len(token) >= 3:
            self.redactor.add(token)  # before anything could print it, malformed or not
        if token is None:
            if not result.get("error"):
                raise StepFailed(Diagnosis(
                    State.CRITICAL, "the token endpoint's answer holds no access_token",
                    status_words(http.last_response), fix=IMPOSTOR_FIX))
            raise StepFailed(self.refusal(result, http.last_response), trace_facts(result))
        if fault := token_fault(token):
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the identity provider returned a malformed access token", fault,
                fix=f"{IMPOSTOR_FIX}; the token was not used"))
        return token

    def prefetch(self, scopes: tuple[str, ...], deadline: Deadline, dialogue: Dialogue) -> None:
        """Starts asking for a token on a lane of its own, beside the chain's token request."""
        outcome: list[str | BaseException] = []

        def fetch() -> None:
            try:
                outcome.append(self.token_for(scopes, deadline, dialogue, lane="prefetch"))
            except Exception as error:  # the step that takes the token tells of it
                outcome.append(error)
        thread = threading.Thread(target=fetch, name="token-prefetch", daemon=True)
        self._prefetched[scopes] = (thread, outcome)
        thread.start()

    def prefetched(self, scopes: tuple[str, ...], deadline: Deadline, dialogue: Dialogue) -> str:
        """The token prefetch() asked for, once it is in; else a request of the chain's lane."""
        if scopes not in self._prefetched:
            return self.token_for(scopes, deadline, dialogue)
        thread, outcome = self._prefetched[scopes]
        thread.join(deadline.remaining())
        if not outcome:
            raise DeadlineExceeded(f"the Graph token from {self.target}")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def _lane(self, name: str, deadline: Deadline) -> Lane:
        if name not in self._lanes:
            session = self.session if name == "chain" else \
                https_session(self.tls_context, self.proxy)
            self._lanes[name] = Lane(DeadlineHttpClient(
                session, deadline, origin=self.oauth.authority, host_words=SIGN_IN_HOST,
                inspect=self.inspect), self.discovery)
        return self._lanes[name]

    def inspect(self, url: str, response: requests.Response) -> None:
        """The identity provider's answers, before msal reads them: a discovery document must
        name a token endpoint at the sign-in host, and JSON must be an object."""
        try:
            document = json.loads(response.content)
        except ValueError:
            return  # not JSON at all: msal says so, and refusal words follow
        discovery = urlsplit(url).path.endswith("/openid-configuration")
        what = "the discovery document" if discovery else "the token endpoint's answer"
        if not isinstance(document, dict):
            raise UntrustedAnswer(f"{what} is JSON but not an object",
                                  f"HTTP {response.status_code}: a {type(document).__name__}")
        if not discovery or response.status_code != HTTP_200_OK:
            return
        endpoint = document.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise UntrustedAnswer("the discovery document names no token_endpoint")
        if origin_of(endpoint) != origin_of(self.oauth.authority):
            raise UntrustedAnswer(
                f"the discovery document names a token endpoint at {printable_url(endpoint)}, "
                f"not at {SIGN_IN_HOST}: refused; the secret was not sent")

    def refusal(self, result: dict[str, Any], response: requests.Response | None) -> Diagnosis:
        certificate = self.oauth.certificate
        if certificate and error_code(result) == CERTIFICATE_UNKNOWN:
            return certificate_refused(certificate, result, self.settings)
        return refusal(result, response)

    def _request(self, lane: Lane, scopes: tuple[str, ...]) -> dict[str, Any]:
        http = lane.http
        app = lane.app or self._application(lane)
        try:
            result = app.acquire_token_for_client(scopes=list(scopes))
        except UntrustedAnswer as refused:
            raise StepFailed(untrusted(refused)) from None
        except msal.exceptions.MsalServiceError:
            raise StepFailed(server_error(http.last_response, "the token request"),
                             trace_facts(json_body(http.last_response))) from None
        except ValueError:
            raise StepFailed(not_json(http.last_response, "the token endpoint")) from None
        except requests.RequestException as error:
            raise StepFailed(transport_failure(error, self.host, self.proxy)) from None
        except (KeyError, TypeError, AttributeError) as error:  # JSON of an unexpected shape
            raise StepFailed(malformed(http.last_response, "the token endpoint's answer",
                                       error)) from None
        return result if isinstance(result, dict) else {}

    def _application(self, lane: Lane) -> msal.ConfidentialClientApplication:
        """msal's app object; its constructor asks the authority for the tenant's endpoints."""
        http = lane.http
        authority = f"{self.oauth.authority}/{self.oauth.tenant_id}"
        try:
            try:
                lane.app = self._new_application(lane, authority)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                if not lane.discovered_from_cache:
                    raise
                assert isinstance(lane.client, DiscoveryThroughCache)
                lane.client.refused_by_msal(error)  # a kept answer never fails the check
                lane.app = self._new_application(lane, authority)
        except UntrustedAnswer as refused:
            raise StepFailed(untrusted(refused)) from None
        except ValueError as error:  # tenant discovery answered 4xx, or not JSON
            raise StepFailed(discovery_failure(http.last_response, error, authority)) from None
        except msal.exceptions.MsalServiceError:
            raise StepFailed(server_error(http.last_response, "tenant discovery"),
                             trace_facts(json_body(http.last_response))) from None
        except requests.RequestException as error:
            raise StepFailed(transport_failure(error, self.host, self.proxy)) from None
        except (KeyError, TypeError, AttributeError) as error:
            raise StepFailed(malformed(http.last_response, "the discovery document",
                                       error)) from None
        return lane.app

    def _new_application(self, lane: Lane, authority: str) -> msal.ConfidentialClientApplication:
        oauth = self.oauth
        credential: str | dict[str, str]
        if oauth.certificate:
            credential = oauth.certificate.msal_credential()
        else:
            assert oauth.client_secret is not None, "settings give a secret or a certificate"
            credential = oauth.client_secret.reveal()
        return msal.ConfidentialClientApplication(
            oauth.client_id,
            client_credential=credential,
            authority=authority,
            http_client=lane.client,
            # Instance discovery asks login.microsoftonline.com: only for its own hosts.
            instance_discovery=self.host in MICROSOFT_AUTHORITY_HOSTS,
            # None would read MSAL_FORCE_REGION from the environment.
            azure_region=oauth.azure_region or False,
        )

    def _judge(self) -> Passed:
        """Tenant and audience must be the configured ones; roles are information only."""
        mode, claims = self.settings.mode, self.claims
        service, audiences, role = SERVICES[mode]
        facts: dict[str, Any] = claims.shown()
        oauth = self.oauth
        if fault := claims.fault():
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the identity provider returned a malformed access token", fault,
                fix=IMPOSTOR_FIX), facts)
        if oauth.tenant_is_guid and claims.tenant and claims.tenant != oauth.tenant_id:
            raise StepFailed(Diagnosis(
                State.CRITICAL, "the token is for another tenant",
                f"tid {claims.tenant}, configured {oauth.tenant_id}",
                fix="the authority or the app belongs to another tenant: check the Tenant ID",
            ), facts)
        scoped = {scope.removesuffix("/.default").rstrip("/") for scope in oauth.scopes}
        other = service_of(claims.audience)
        if claims.audience and claims.audience not in audiences and (
                other or claims.audience not in scoped):
            words = f"aud {claims.audience}" + (f" ({other})" if other else "")
            raise StepFailed(Diagnosis(
                State.CRITICAL, f"the token is not for {service}", words,
                fix=f"leave OAuth Scope empty for the mode's default "
                f"({CLOUD_SCOPE_HINT[mode]}), or name {service}'s resource in --scope",
            ), facts)
        if role not in claims.roles:
            facts["note"] = (f"no {role} role in the token: the right may come from Exchange "
                             "RBAC for Applications; the service's answer decides")
        metrics: dict[str, float] = {}
        if (left := claims.seconds_left()) is not None:
            metrics["token_ttl"] = round(left)
        certificate = self.oauth.certificate
        credential = f"certificate {certificate.thumbprint}" if certificate else "client secret"
        return Passed(f"token ({', '.join(claims.roles) or 'no roles'})", facts, metrics,
                      details={"authority": self.oauth.authority, "proxy": self.proxy or "none",
                               "scope": " ".join(self.oauth.scopes), "credential": credential})


CLOUD_SCOPE_HINT = {"o365-smtp": "https://outlook.office365.com/.default",
                    "graph": "https://graph.microsoft.com/.default"}


def untrusted(refused: UntrustedAnswer) -> Diagnosis:
    return Diagnosis(State.CRITICAL, refused.problem, refused.reply, fix=IMPOSTOR_FIX)


def status_words(response: requests.Response | None) -> str | None:
    return f"HTTP {response.status_code}" if response is not None else None


def malformed(response: requests.Response | None, what: str, error: Exception) -> Diagnosis:
    """JSON that msal could not use: a key missing, or a value of the wrong kind."""
    reason = f"{type(error).__name__} {str(error)[:80]}"
    status = status_words(response)
    return Diagnosis(State.CRITICAL, f"{what} is malformed",
                     f"{status}: {reason}" if status else reason, fix=IMPOSTOR_FIX)


def trace_facts(body: dict[str, Any]) -> dict[str, Any]:
    """Microsoft's ids for a support case."""
    return {key: body[key] for key in ("trace_id", "correlation_id", "timestamp") if body.get(key)}


def json_body(response: requests.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_code(result: dict[str, Any]) -> int | None:
    """The AADSTS code of an error answer: error_codes, else the description's."""
    from check_mailgw.microsoft.catalogue import aadsts_code  # a refusal's words only

    codes = result.get("error_codes") or []
    if codes and isinstance(codes[0], int):
        return codes[0]
    return aadsts_code(str(result.get("error_description", "")))


def refusal(result: dict[str, Any], response: requests.Response | None) -> Diagnosis:
    """An error answer of the token endpoint, in plain words."""
    from check_mailgw.microsoft.catalogue import first_sentence, token_error

    description = str(result.get("error_description", ""))
    code = error_code(result)
    words = first_sentence(description) or str(result.get("error", "unknown error"))
    status = response.status_code if response is not None else None
    if status == HTTP_429_TOO_MANY_REQUESTS:
        return throttled(response, words)
    entry = token_error(code)
    if entry:
        return Diagnosis(entry.state, f"token refused ({entry.meaning})", words, fix=entry.fix)
    return Diagnosis(
        State.CRITICAL, "token refused", words,
        fix=f"Microsoft's description of the code: {ERROR_LOOKUP.format(code=code)}"
        if code else "see the identity provider's answer above",
    )


def certificate_refused(certificate: ClientCertificate, result: dict[str, Any],
                        settings: Settings) -> Diagnosis:
    """AADSTS700027 with a certificate: say which certificate, and what to do, before Entra's
    words (which speak of keys and assertions)."""
    from check_mailgw.microsoft.catalogue import first_sentence

    words = first_sentence(str(result.get("error_description", ""))) or "AADSTS700027"
    upload = (f"upload the public certificate (the file --client-certificate names, without "
              f"its key; thumbprint {certificate.thumbprint}) under Entra ID, App registrations, "
              "the app, Certificates & secrets, Certificates, or point --client-certificate at "
              "the certificate the app has")
    if certificate.not_after < settings.current_time():
        ended = certificate.not_after.strftime("%Y-%m-%d")
        return Diagnosis(State.CRITICAL, f"token refused (the client certificate expired on "
                         f"{ended})", words, fix="make a new certificate, then " + upload)
    return Diagnosis(State.CRITICAL, f"token refused (the app does not know the client "
                     f"certificate {certificate.thumbprint})", words, fix=upload)


def throttled(response: requests.Response | None, words: str) -> Diagnosis:
    after = retry_after(response.headers.get("Retry-After")) if response is not None else None
    wait = f"; {after}" if after else ""
    return Diagnosis(State.WARNING, "the identity provider is throttling this app",
                     f"HTTP 429{wait}: {words}" if words else f"HTTP 429{wait}",
                     fix="too many token requests from this app or address: check other "
                     "clients using the same app, and the check interval")


def discovery_failure(response: requests.Response | None, error: ValueError,
                      authority: str) -> Diagnosis:
    body = json_body(response)
    if body:
        return refusal(body, response)
    if response is not None and response.status_code in SUCCESSFUL:
        return not_json(response, "tenant discovery")
    status = f"HTTP {response.status_code}" if response is not None else str(error)
    return Diagnosis(State.CRITICAL, "tenant discovery failed", f"{authority}: {status}",
                     fix="check the Tenant ID and --authority / --cloud")


def server_error(response: requests.Response | None, what: str) -> Diagnosis:
    from check_mailgw.microsoft.catalogue import first_sentence

    status = response.status_code if response is not None else 0
    if status == HTTP_429_TOO_MANY_REQUESTS:
        return throttled(response, "")
    body = json_body(response)
    if response is not None and not body:
        return not_json(response, what if what != "the token request" else "the token endpoint")
    words = first_sentence(str(body.get("error_description", ""))) if body else ""
    retry = retry_after(response.headers.get("Retry-After")) if response is not None else None
    reply = f"HTTP {status}" + (f", {retry}" if retry else "") + \
        (f": {words}" if words else "")
    return Diagnosis(State.CRITICAL, f"identity provider error during {what}", reply,
                     fix="Entra ID has a problem of its own: check Microsoft 365 service health; "
                     "if it lasts, open a support case" +
                     (" with the ids below" if trace_facts(body) else ""))


def not_json(response: requests.Response | None, what: str) -> Diagnosis:
    status = f"HTTP {response.status_code}" if response is not None else "no answer"
    kind = response.headers.get("Content-Type", "?").split(";")[0] if response is not None \
        else "?"
    return Diagnosis(State.CRITICAL, f"{what} did not answer with JSON", f"{status} {kind}",
                     fix="something else answers in Microsoft's place: a proxy's error page, "
                     "a captive portal, or a wrong --authority")


def transport_failure(error: requests.RequestException, host: str,
                      proxy: str | None) -> Diagnosis:
    text = str(error)
    if isinstance(error, requests.exceptions.SSLError):
        return Diagnosis(
            State.CRITICAL, f"TLS to {host} failed", short_reason(text),
            fix="this machine does not trust the certificate it got: a TLS-inspecting proxy "
            "needs its CA given with --ca-file; otherwise check the system's CA store",
        )
    if isinstance(error, requests.exceptions.ProxyError):
        return Diagnosis(State.CRITICAL, "the proxy failed", short_reason(text),
                         fix="check --proxy / $HTTPS_PROXY: the proxy is down, refuses, or "
                         "wants credentials (http://user:password@host:port)")
    if "Name or service not known" in text or "Failed to resolve" in text or \
            "NameResolutionError" in text:
        return Diagnosis(State.CRITICAL, f"cannot resolve {host}", short_reason(text),
                         fix="this machine's DNS does not know the sign-in host: check the "
                         "resolver, or set a proxy that reaches it (--proxy)")
    if "refused" in text.lower():
        return Diagnosis(State.CRITICAL, f"connection to {host} refused", short_reason(text),
                         fix="nothing listens there: check --authority, the proxy, and firewalls")
    return Diagnosis(State.CRITICAL, f"cannot reach {host}", short_reason(text),
                     fix="check the network path to the sign-in host: firewall, proxy "
                     "(--proxy, $HTTPS_PROXY), DNS" + ("" if proxy else
                                                       "; many servers need a proxy"))


def short_reason(text: str) -> str:
    """The innermost reason of a requests/urllib3 error chain, without the object reprs."""
    for marker in ("] ", "): ", ": "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" ')\"(")[:200]

