"""What the sandbox's HTTPS services read and answer: requests, answers, canned failures."""

import json
import uuid
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html"


@dataclass(frozen=True)
class HttpRequest:
    """One parsed HTTP request."""

    method: str
    path: str
    query: str
    headers: Message
    body: bytes = b""
    version: str = "HTTP/1.1"

    def form(self) -> dict[str, str]:
        """The body as an HTML form (application/x-www-form-urlencoded), first value per name."""
        fields = parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP response, before it is written."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()
    ) -> "HttpAnswer":
        return cls(status, json.dumps(document).encode("utf-8"), JSON_TYPE, headers)


@dataclass(frozen=True)
class ProxyFailure:
    """A failure answered by something in front of the service, as an HTML page."""

    status: int
    page: str
    retry_after: int | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())

    def answer(self) -> HttpAnswer:
        headers = self.headers
        if self.retry_after is not None:
            headers = (*headers, ("Retry-After", str(self.retry_after)))
        return HttpAnswer(self.status, self.page.encode("utf-8"), HTML_TYPE, headers)


BAD_GATEWAY = ProxyFailure(
    502,
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n",
)


def request_guid(request: HttpRequest, header: str) -> str:
    """A GUID the client sent in a header (client-request-id), or a new one."""
    sent = request.header(header)
    if sent:
        try:
            return str(uuid.UUID(sent))
        except ValueError:
            pass
    return str(uuid.uuid4())
