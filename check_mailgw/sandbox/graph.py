"""The sandbox's Microsoft Graph: POST /v1.0/users/{id or upn}/sendMail with an app token."""

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from check_mailgw.sandbox import graph_errors
from check_mailgw.sandbox.graph_errors import GraphError
from check_mailgw.sandbox.http_answers import HttpAnswer, HttpRequest, ProxyFailure, request_guid
from check_mailgw.sandbox.scenarios import Scenario
from check_mailgw.sandbox.tenant import mailbox_named
from check_mailgw.sandbox.tokens import GRAPH_AUDIENCES, AccessTokens, TokenRejected

GRAPH_VERSION_PREFIX = "/v1.0/"
_SEND_MAIL = re.compile(r"/v1\.0/users/([^/]+)/sendmail/?", re.I)
_ME_SEND_MAIL = re.compile(r"/v1\.0/me/sendmail/?", re.I)

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


@dataclass
class GraphApi:
    """Answers sendMail for the sandbox tenant's mailboxes."""

    scenario: Scenario
    tokens: AccessTokens
    base_url: str
    messages: list[GraphMessage] = field(default_factory=list)

    def audiences(self) -> frozenset[str]:
        # A token asked for the sandbox's own URL is a Graph token too.
        return GRAPH_AUDIENCES | {self.base_url}

    async def answer(self, request: HttpRequest) -> HttpAnswer:
        request_id = str(uuid.uuid4())
        client_request_id = request_guid(request, "client-request-id")

        def refuse(error: GraphError, **values: str) -> HttpAnswer:
            return error.answer(request_id, client_request_id, **values)

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
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refuse(graph_errors.TOKEN_EMPTY)
        try:
            self.tokens.verify(token.strip(), self.audiences())
        except TokenRejected as rejected:
            return refuse(_TOKEN_REJECTIONS[rejected.reason])
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
        self.messages.append(
            GraphMessage(
                mailbox=mailbox,
                sender=sender,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=str(message.get("subject") or ""),
                save_to_sent_items=document.get("saveToSentItems") is not False,
            )
        )
        headers = (("request-id", request_id), ("client-request-id", client_request_id))
        return HttpAnswer(202, headers=headers)


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
    expected = ("v1.0", "users", None, "sendmail")
    for index, segment in enumerate(segments):
        if index >= len(expected):
            return segment
        if expected[index] is not None and segment.lower() != expected[index]:
            return segment
    return segments[-1]
