"""The sandbox's Microsoft Graph, for app tokens: POST /v1.0/users/{id or upn}/sendMail, and
GET /v1.0/applications(appId='{client id}') with the app registration's credentials."""

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from check_mailgw.sandbox.m365 import graph_errors
from check_mailgw.sandbox.m365.access_tokens import GRAPH_AUDIENCES, AccessTokens, TokenRejected
from check_mailgw.sandbox.m365.app_credentials import AppCredentials
from check_mailgw.sandbox.m365.graph_errors import GraphError
from check_mailgw.sandbox.m365.tenant import SANDBOX_APP_NAME, SANDBOX_APP_OBJECT_ID, mailbox_named
from check_mailgw.sandbox.plumbing.http_answers import (
    HttpAnswer,
    HttpRequest,
    ProxyFailure,
    request_guid,
)
from check_mailgw.sandbox.scenarios import Scenario

GRAPH_VERSION_PREFIX = "/v1.0/"
_SEND_MAIL = re.compile(r"/v1\.0/users/([^/]+)/sendmail/?", re.I)
_ME_SEND_MAIL = re.compile(r"/v1\.0/me/sendmail/?", re.I)
# Matched against the percent-decoded path: clients may encode the quotes as %27.
_APPLICATION_BY_APP_ID = re.compile(r"/v1\.0/applications\(appid='([^'/]*)'\)/?", re.I)
# What OData answers carry besides JSON.
ODATA_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
# The application properties the sandbox knows, by their name in lower case.
APPLICATION_PROPERTIES = {
    name.lower(): name
    for name in ("id", "appId", "displayName", "passwordCredentials", "keyCredentials")
}

ME_NEEDS_DELEGATION = GraphError(
    400, "BadRequest", "/me request is only valid with delegated authentication flow."
)
EMPTY_PAYLOAD = GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")

_TOKEN_REJECTIONS: dict[str, GraphError] = {
    "malformed": graph_errors.TOKEN_MALFORMED,
    "signature": graph_errors.TOKEN_INVALID,
    "tenant": graph_errors.TOKEN_INVALID,
    "expired": graph_errors.TOKEN_EXPIRED,
    "audience": graph_errors.TOKEN_WRONG_AUDIENCE,
}


@dataclass(frozen=True)
class GraphMessage:
    """One message Graph accepted for sending."""

    mailbox: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    save_to_sent_items: bool
    # message.body: its contentType ("Text" or "HTML") and content.
    body_type: str = ""
    body: str = ""


@dataclass
class GraphApi:
    """Answers sendMail for the sandbox tenant's mailboxes, and the app's own registration."""

    scenario: Scenario
    tokens: AccessTokens
    base_url: str
    app: AppCredentials
    messages: list[GraphMessage] = field(default_factory=list)
    # Requests that reached applications(appId=...), whatever they were answered.
    app_lookups: int = 0

    def audiences(self) -> frozenset[str]:
        # A token asked for the sandbox's own URL is a Graph token too.
        return GRAPH_AUDIENCES | {self.base_url}

    async def answer(self, request: HttpRequest) -> HttpAnswer:
        request_id = str(uuid.uuid4())
        client_request_id = request_guid(request, "client-request-id")

        def refuse(error: GraphError, **values: str) -> HttpAnswer:
            return error.answer(request_id, client_request_id, **values)

        application = _APPLICATION_BY_APP_ID.fullmatch(unquote(request.path))
        if application is not None:
            self.app_lookups += 1
            return self._application(request, application.group(1), refuse, request_id,
                                     client_request_id)
        # The scenario's failures concern sendMail only.
        failure = self.scenario.graph_failure
        # Outages come before anything is looked at.
        if isinstance(failure, ProxyFailure):
            return failure.answer()
        if failure is not None and failure.status >= 429:
            return refuse(failure)
        match = _SEND_MAIL.fullmatch(request.path)
        if match is None:
            if _ME_SEND_MAIL.fullmatch(request.path):
                return refuse(ME_NEEDS_DELEGATION)
            return refuse(graph_errors.NOT_FOUND_SEGMENT, segment=_unknown_segment(request.path))
        if request.method != "POST":
            return refuse(graph_errors.METHOD_NOT_ALLOWED)
        token_refused = self._token_refusal(request)
        if token_refused is not None:
            return refuse(token_refused)
        user = unquote(match.group(1))
        mailbox = mailbox_named(user)
        if mailbox is None:
            return refuse(graph_errors.USER_INVALID, user=user)
        # A refusal the scenario forces, once token and user are fine.
        if failure is not None:
            return refuse(failure)
        if not request.body.strip():
            return refuse(EMPTY_PAYLOAD)
        try:
            document = json.loads(request.body)
        except ValueError:
            return refuse(graph_errors.NOT_JSON)
        if not isinstance(document, dict):
            return refuse(graph_errors.NOT_JSON)
        message = document.get("message")
        message = message if isinstance(message, dict) else {}
        to, cc, bcc = (
            _addresses(message.get(kind))
            for kind in ("toRecipients", "ccRecipients", "bccRecipients")
        )
        if not (to or cc or bcc):
            return refuse(graph_errors.NO_RECIPIENTS)
        sender = _address(message.get("from")) or mailbox
        body = message.get("body")
        body = body if isinstance(body, dict) else {}
        self.messages.append(
            GraphMessage(
                mailbox=mailbox,
                sender=sender,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=str(message.get("subject") or ""),
                save_to_sent_items=document.get("saveToSentItems") is not False,
                body_type=str(body.get("contentType") or ""),
                body=str(body.get("content") or ""),
            )
        )
        headers = (("request-id", request_id), ("client-request-id", client_request_id))
        return HttpAnswer(202, headers=headers)

    def _token_refusal(self, request: HttpRequest) -> GraphError | None:
        """Why the request's bearer token is not accepted; None if it is."""
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return graph_errors.TOKEN_EMPTY
        try:
            self.tokens.verify(token.strip(), self.audiences())
        except TokenRejected as rejected:
            return _TOKEN_REJECTIONS[rejected.reason]
        return None

    def _application(
        self,
        request: HttpRequest,
        app_id: str,
        refuse: Callable[..., HttpAnswer],
        request_id: str,
        client_request_id: str,
    ) -> HttpAnswer:
        """GET applications(appId='...'): the app registration, or only its $select properties."""
        if request.method != "GET":
            return refuse(graph_errors.METHOD_NOT_ALLOWED)
        token_refused = self._token_refusal(request)
        if token_refused is not None:
            return refuse(token_refused)
        selected = _selected_properties(request.query)
        if isinstance(selected, str):
            return refuse(graph_errors.PROPERTY_UNKNOWN, property=selected)
        if self.scenario.app_lookup == "forbidden":
            return refuse(graph_errors.APPLICATION_READ_DENIED)
        if app_id.lower() != self.tokens.client_id.lower():
            return refuse(graph_errors.APPLICATION_NOT_FOUND, app_id=app_id)
        everything: dict[str, Any] = {
            "id": SANDBOX_APP_OBJECT_ID,
            "appId": self.tokens.client_id,
            "displayName": SANDBOX_APP_NAME,
            "passwordCredentials": self.app.password_credentials(),
            "keyCredentials": self.app.key_credentials(),
        }
        context = f"{self.base_url}{GRAPH_VERSION_PREFIX}$metadata#applications"
        if selected:
            context += f"({','.join(selected)})"
        document = {"@odata.context": f"{context}/$entity"}
        document.update((name, everything[name]) for name in selected or everything)
        headers = (("request-id", request_id), ("client-request-id", client_request_id))
        return HttpAnswer(200, json.dumps(document).encode("utf-8"), ODATA_TYPE, headers)


def _selected_properties(query: str) -> list[str] | str:
    """The properties $select names, in Graph's spelling ([] without $select); the first
    unknown one's name instead if there is one."""
    selected: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() != "$select":
            continue
        for item in filter(None, (part.strip() for part in value.split(","))):
            known = APPLICATION_PROPERTIES.get(item.lower())
            if known is None:
                return item
            if known not in selected:
                selected.append(known)
    return selected


def _address(recipient: Any) -> str | None:
    """The address of a Graph recipient: {"emailAddress": {"address": ...}}."""
    if not isinstance(recipient, dict):
        return None
    email_address = recipient.get("emailAddress")
    if not isinstance(email_address, dict):
        return None
    address = email_address.get("address")
    return address if isinstance(address, str) and address else None


def _addresses(recipients: Any) -> tuple[str, ...]:
    if not isinstance(recipients, list):
        return ()
    return tuple(address for address in map(_address, recipients) if address)


def _unknown_segment(path: str) -> str:
    """The first path segment Graph would not know, for its error message."""
    segments = [unquote(segment) for segment in path.strip("/").split("/")]
    # None stands for the user, whoever it names.
    expected: tuple[str | None, ...] = ("v1.0", "users", None, "sendmail")
    if len(segments) > 1 and _APPLICATION_BY_APP_ID.fullmatch(f"/v1.0/{segments[1]}"):
        expected = ("v1.0", segments[1].lower())
    for index, segment in enumerate(segments):
        if index >= len(expected):
            return segment
        if expected[index] is not None and segment.lower() != expected[index]:
            return segment
    return segments[-1]
