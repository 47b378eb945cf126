"""Microsoft Graph over the chain's own TLS connection: sendMail, and what its answers mean.

The request goes over the socket the connect and tls steps opened (directly or through a
proxy tunnel), so the connection set-up is measured and diagnosed like every other mode's.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.microsoft.catalogue import graph_error
from check_mailgw.outcome import Diagnosis, State

MAX_BODY = 256 * 1024  # Graph's error bodies are a few hundred bytes
ACCEPTED = 202
THROTTLED = 429


@dataclass(frozen=True)
class GraphAnswer:
    """Domain model: one Graph response: status, the error it names, and the ids to quote."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body)
        except ValueError:
            return {}
        error = document.get("error") if isinstance(document, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def code(self) -> str:
        return str(self.error.get("code", ""))

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))

    @property
    def is_json(self) -> bool:
        return "json" in self.content_type or bool(self.error)

    def ids(self) -> dict[str, str]:
        """request-id and date, for a support case."""
        inner = self.error.get("innerError") or self.error.get("innererror") or {}
        ids = {"request_id": self.headers.get("request-id") or inner.get("request-id"),
               "client_request_id": self.headers.get("client-request-id")
               or inner.get("client-request-id"),
               "date": inner.get("date")}
        return {key: str(value) for key, value in ids.items() if value}

    def words(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.code else str(self.status)


class OverTls(http.client.HTTPConnection):
    """HTTP over a socket the chain already wrapped in TLS (no second CA store to load)."""

    default_port = 443  # so the Host header carries no :443


class GraphConnection:
    """HTTP/1.1 to Graph over an established TLS socket; every wait bounded by the deadline."""

    def __init__(self, tls_sock: ssl.SSLSocket, host: str, port: int, deadline: Deadline) -> None:
        self.connection = OverTls(host, port)
        self.connection.sock = tls_sock  # already connected and verified by the chain
        self.deadline = deadline
        self.sock = tls_sock

    def post_json(self, path: str, document: dict[str, Any], token: str) -> GraphAnswer:
        waiting_for = f"Graph's answer to POST {path.rsplit('/', 1)[-1]}"
        body = json.dumps(document).encode("utf-8")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "client-request-id": str(uuid.uuid4()), "return-client-request-id": "true"}
        try:
            self.sock.settimeout(self.deadline.budget(waiting_for))
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read(MAX_BODY)
        except TimeoutError:
            raise DeadlineExceeded(waiting_for) from None
        return GraphAnswer(response.status, response.getheader("Content-Type", ""), data,
                           {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        self.connection.close()


def send_mail_path(sender: str) -> str:
    return f"/v1.0/users/{quote(sender, safe='@')}/sendMail"


def message(sender: str, recipients: list[str], subject: str, text: str) -> dict[str, Any]:
    return {"message": {
        "subject": subject,
        "body": {"contentType": "Text", "content": text},
        "toRecipients": [{"emailAddress": {"address": r}} for r in recipients],
    }, "saveToSentItems": False}


def probe_accepted(answer: GraphAnswer) -> bool:
    """The empty-recipients probe got as far as the recipients (REFERENCE.md sections 5, 9)."""
    return (answer.status == 400 and answer.code == "ErrorInvalidRecipients") or (
        answer.status == 400 and "no recipients" in answer.message.lower())


def diagnose(answer: GraphAnswer) -> Diagnosis:
    """A sendMail refusal in plain words."""
    retry = answer.headers.get("retry-after")
    wait = f" (retry after {retry}s)" if retry else ""
    if not answer.is_json:
        return Diagnosis(
            State.CRITICAL, "Graph did not answer with JSON",
            f"HTTP {answer.status} {answer.content_type.split(';')[0] or 'no content type'}",
            fix="something else answers in Graph's place: a proxy's error page, or a wrong "
            "--graph-url",
        )
    known = graph_error(answer.code, answer.message)
    if answer.status == THROTTLED:
        return Diagnosis(State.WARNING, "Graph is throttling this app", answer.words() + wait,
                         fix=known.fix if known else "retry later; check the check interval")
    if answer.status >= 500:
        return Diagnosis(State.CRITICAL, f"Graph server error{wait}", answer.words(),
                         fix="Microsoft Graph has a problem of its own: check Microsoft 365 "
                         "service health; quote the request-id in a support case")
    if known:
        return Diagnosis(known.state, f"sendMail refused ({known.meaning})", answer.words(),
                         fix=known.fix)
    return Diagnosis(State.CRITICAL, "sendMail refused", answer.words(),
                     fix="see Graph's answer above; quote the request-id in a support case")
