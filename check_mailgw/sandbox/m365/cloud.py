"""A local Microsoft 365: identity provider and Graph over HTTPS, and Exchange SMTP.

start_m365 starts both listeners on loopback with the sandbox CA's certificate
and one scenario; the M365Sandbox it returns says where they listen, what
they received, and which credentials the app registration holds.
"""

import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from check_mailgw.sandbox.accounts import SANDBOX_USER
from check_mailgw.sandbox.m365.access_tokens import AccessTokens
from check_mailgw.sandbox.m365.app_credentials import AppCredentials
from check_mailgw.sandbox.m365.exchange_smtp import start_exchange_smtp
from check_mailgw.sandbox.m365.graph_api import GRAPH_VERSION_PREFIX, GraphApi, GraphMessage
from check_mailgw.sandbox.m365.identity_provider import IdentityProvider
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_ID, SANDBOX_TENANT_ID, SigningKey
from check_mailgw.sandbox.plumbing.background import RunningServer
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.plumbing.http_answers import HttpAnswer, HttpRequest
from check_mailgw.sandbox.plumbing.https_server import HttpsServer, start_https
from check_mailgw.sandbox.scenarios import Scenario, get_scenario
from check_mailgw.sandbox.smtp.dialect import Received
from check_mailgw.sandbox.smtp.listeners import SmtpServer

# Enough for any test; a client that loops is not recorded past it.
MAX_RECORDED_REQUESTS = 10_000


class RequestSeen(NamedTuple):
    """One HTTPS request as a test may read it: no query, header or body (they carry secrets)."""

    service: Literal["identity", "graph"]
    method: str
    path: str
    status: int


class CloudApi:
    """Routes HTTPS requests: /v1.0/... to Graph, the rest to the identity provider."""

    def __init__(self, identity: IdentityProvider, graph: GraphApi) -> None:
        self.identity = identity
        self.graph = graph
        self.requests: list[RequestSeen] = []

    async def answer(self, request: HttpRequest) -> HttpAnswer:
        to_graph = request.path.lower().startswith(GRAPH_VERSION_PREFIX)
        answer = await (self.graph if to_graph else self.identity).answer(request)
        if len(self.requests) < MAX_RECORDED_REQUESTS:
            service: Literal["identity", "graph"] = "graph" if to_graph else "identity"
            self.requests.append(RequestSeen(service, request.method, request.path, answer.status))
        return answer


class M365Sandbox(RunningServer):
    """A running local Microsoft 365: its endpoints, identities and what it received."""

    def __init__(
        self,
        *,
        tokens: AccessTokens,
        https: HttpsServer,
        api: CloudApi,
        exchange: SmtpServer,
        app: AppCredentials,
    ) -> None:
        self.tokens = tokens
        # The app registration's secrets and certificates, dated from app.now.
        self.app = app
        self.https = https
        self.exchange = exchange
        self._api = api
        self._stopped = False

    @property
    def scenario(self) -> Scenario:
        return self._api.identity.scenario

    def play(self, scenario: str, now: datetime.datetime | None = None) -> None:
        """Play another scenario from the next request or connection on, on the same ports.

        The app's credentials are made again for it, dated from now (default: the current
        time): write_client_certificate again for the certificate it hands out.
        """
        chosen = get_scenario(scenario)
        self.app = AppCredentials.for_scenario(chosen, now or datetime.datetime.now(datetime.UTC))
        for part in (self._api.identity, self._api.graph):
            part.scenario, part.app = chosen, self.app
        self.exchange.play(chosen)

    # Where the plugin points --authority and --graph-url (the same server).
    @property
    def authority(self) -> str:
        return self.https.base_url

    @property
    def graph_url(self) -> str:
        return self.https.base_url

    @property
    def smtp_host(self) -> str:
        return self.exchange.host

    @property
    def smtp_port(self) -> int:
        return self.exchange.port

    @property
    def tenant_id(self) -> str:
        return self.tokens.tenant_id

    @property
    def client_id(self) -> str:
        return self.tokens.client_id

    @property
    def mailbox(self) -> str:
        return SANDBOX_USER

    @property
    def now(self) -> datetime.datetime:
        """The reference time the app's credential dates count from (UTC, whole seconds)."""
        return self.app.now

    @property
    def app_lookups(self) -> int:
        """How many requests reached Graph's applications(appId=...), whatever the answer."""
        return self._api.graph.app_lookups

    def write_client_certificate(self, path: str | Path, *, passphrase: str | None = None) -> Path:
        """Write the app's certificate and its private key to one PEM file (mode 0600)."""
        return self.app.certificate.write_pem(path, passphrase=passphrase)

    @property
    def graph_messages(self) -> list[GraphMessage]:
        """Messages Graph accepted, oldest first."""
        return self._api.graph.messages

    @property
    def smtp_messages(self) -> list[Received]:
        """Messages the Exchange listener accepted, oldest first."""
        return self.exchange.messages

    @property
    def requests(self) -> list[RequestSeen]:
        """Every HTTPS request answered, oldest first: service, method, path, status."""
        return self._api.requests

    @property
    def issued_tokens(self) -> list[dict[str, Any]]:
        """The claims of every token the identity provider issued, oldest first."""
        return self._api.identity.issued

    @property
    def token_requests(self) -> int:
        """How many requests reached the token endpoint, whatever they were answered."""
        return self._api.identity.token_requests

    def stop(self) -> None:
        """Stop both listeners; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            try:
                self.exchange.stop()
            finally:
                self.https.stop()

    def __repr__(self) -> str:
        return (
            f"<M365Sandbox {self.scenario.name} https {self.authority} "
            f"smtp {self.smtp_host}:{self.smtp_port}>"
        )


def start_m365(
    *,
    ca: SandboxCA,
    scenario: str = "ok",
    host: str = "127.0.0.1",
    https_port: int = 0,
    smtp_port: int = 0,
    signing_key: SigningKey | None = None,
    now: datetime.datetime | None = None,
) -> M365Sandbox:
    """Start the HTTPS server and the Exchange SMTP listener (port 0: any free port).

    A signing key is made unless one is given (tests share one: making it takes time).
    The app's credentials are dated from now (default: the current time), so that
    their days left read as the scenario says.
    """
    chosen = get_scenario(scenario)
    key = signing_key or SigningKey.generate()
    tokens = AccessTokens(key, SANDBOX_TENANT_ID, SANDBOX_CLIENT_ID)
    app = AppCredentials.for_scenario(chosen, now or datetime.datetime.now(datetime.UTC))
    apis: list[CloudApi] = []

    def make_api(base_url: str) -> CloudApi:
        api = CloudApi(
            IdentityProvider(chosen, tokens, base_url, app),
            GraphApi(chosen, tokens, base_url, app),
        )
        apis.append(api)
        return api

    https = start_https(make_api, context=ca.server_context(), host=host, port=https_port)
    try:
        exchange = start_exchange_smtp(
            tokens=tokens, scenario=scenario, ca=ca, host=host, port=smtp_port
        )
    except BaseException:
        https.stop()
        raise
    return M365Sandbox(tokens=tokens, https=https, api=apis[0], exchange=exchange, app=app)
