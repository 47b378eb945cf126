"""Microsoft Graph over the chain's own TLS connection: sendMail, and what its answers mean.

The request goes over the socket the connect and tls steps opened (directly or through a
proxy tunnel), so the connection set-up is measured and diagnosed like every other mode's.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.net.http_status import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    REDIRECTS,
)
from check_mailgw.net.https import GRAPH_ANSWER_LIMIT, retry_after, size_words
from check_mailgw.outcome import Diagnosis, State

READ_SIZE = 64 * 1024
REFUSED = (HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN)
# A token with no roles at all: neither Mail.Send with admin consent nor, as far as the token
# tells, an Exchange RBAC assignment (whose right is not in the token) lets the app send.
NO_ROLES_CAUSE = "token has no roles: Mail.Send unconsented, or no RBAC role"


class GraphAnswerRefused(Exception):
    """An answer of Graph's the check will not use: a redirect, compressed, or too large."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.headline())
        self.diagnosis = diagnosis


class GraphAnswer(NamedTuple):
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

    def words(self, retry: str | None = None) -> str:
        """Status, code, how long to wait, then the message: codes first, as the first line
        keeps them when it must be shortened."""
        head = f"{self.status} {self.code}" if self.code else str(self.status)
        head += f"; {retry}" if retry else ""
        return f"{head}: {self.message}" if self.code else head


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
                   "Accept-Encoding": "identity", "client-request-id": str(uuid.uuid4()),
                   "return-client-request-id": "true"}
        try:
            self.sock.settimeout(self.deadline.budget(waiting_for))
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            if response.status in REDIRECTS:
                raise GraphAnswerRefused(redirected(response.status,
                                                    response.getheader("Location", "")))
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise GraphAnswerRefused(Diagnosis(
                    State.CRITICAL, f"Graph's answer came compressed ({encoding[:40]}) though "
                    "asked for none: refused", f"HTTP {response.status}", fix=IMPOSTOR_FIX))
            data = self.read_body(response, waiting_for)
        except TimeoutError:
            raise DeadlineExceeded(waiting_for) from None
        return GraphAnswer(response.status, response.getheader("Content-Type", ""), data,
                           {k.lower(): v for k, v in response.getheaders()})

    def read_body(self, response: http.client.HTTPResponse, waiting_for: str) -> bytes:
        """The body in pieces, each read waiting only what is left of the run: a body that
        trickles in ends at the deadline, one past GRAPH_ANSWER_LIMIT is refused."""
        chunks: list[bytes] = []
        size = 0
        while True:
            self.sock.settimeout(self.deadline.budget(waiting_for))
            chunk = response.read1(READ_SIZE)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > GRAPH_ANSWER_LIMIT:
                raise GraphAnswerRefused(Diagnosis(
                    State.CRITICAL, f"Graph's answer exceeds {size_words(GRAPH_ANSWER_LIMIT)}",
                    fix=IMPOSTOR_FIX))
            chunks.append(chunk)

    def close(self) -> None:
        self.connection.close()


IMPOSTOR_FIX = ("something else answers in Graph's place (a proxy, a captive portal, a wrong "
                "--graph-url): check --graph-url, --cloud and the proxy")


def redirected(status: int, location: str) -> Diagnosis:
    where = urlsplit(location).netloc.rpartition("@")[2] or location[:100] or "nowhere"
    return Diagnosis(State.CRITICAL, f"Graph answered with a redirect to {where}: something "
                     "else answers in Microsoft's place", f"HTTP {status}", fix=IMPOSTOR_FIX)


def send_mail_path(sender: str) -> str:
    return f"/v1.0/users/{quote(sender, safe='@')}/sendMail"


def message(sender: str, recipients: list[str], subject: str, text: str) -> dict[str, Any]:
    return {"message": {
        "subject": subject,
        "body": {"contentType": "Text", "content": text},
        "toRecipients": [{"emailAddress": {"address": r}} for r in recipients],
    }, "saveToSentItems": False}


def probe_accepted(answer: GraphAnswer) -> bool:
    """The empty-recipients probe got as far as the recipients (a message without recipients is
    answered 400 ErrorInvalidRecipients; Graph has no dry run to ask instead)."""
    return answer.status == HTTP_400_BAD_REQUEST and (
        answer.code == "ErrorInvalidRecipients" or "no recipients" in answer.message.lower())


def diagnose(answer: GraphAnswer) -> Diagnosis:
    """A sendMail refusal in plain words."""
    retry = retry_after(answer.headers.get("retry-after"))

    if not answer.is_json:
        return Diagnosis(
            State.CRITICAL, "Graph did not answer with JSON",
            f"HTTP {answer.status} {answer.content_type.split(';')[0] or 'no content type'}",
            fix="something else answers in Graph's place: a proxy's error page, or a wrong "
            "--graph-url",
        )
    from check_mailgw.microsoft.catalogue import graph_error  # only a refusal needs it

    known = graph_error(answer.code, answer.message)
    if answer.status == HTTP_429_TOO_MANY_REQUESTS:
        return Diagnosis(State.WARNING, "Graph is throttling this app", answer.words(retry),
                         fix=known.fix if known else "retry later; check the check interval")
    if answer.status >= HTTP_500_INTERNAL_SERVER_ERROR:  # and whatever HTTP does not define
        return Diagnosis(State.CRITICAL, "Graph server error", answer.words(retry),
                         fix="Microsoft Graph has a problem of its own: check Microsoft 365 "
                         "service health; quote the request-id in a support case")
    if known:
        return Diagnosis(known.state, f"sendMail refused ({known.meaning})", answer.words(),
                         fix=known.fix)
    return Diagnosis(State.CRITICAL, "sendMail refused", answer.words(),
                     fix="see Graph's answer above; quote the request-id in a support case")
