"""HTTPS for the Microsoft modes: our TLS context, our proxy, every call within the deadline.

requests on its own reads REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, netrc and the proxy variables
from the environment, and then ignores verify= (requests issue 3829). The session built here
takes none of that: trust comes from --ca-file (or the system store), the proxy from --proxy or
proxy_for(), and time from the run's deadline.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Timeout

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.net.http_status import REDIRECTS

HTTPS_DEFAULT_PORT = 443


# --- which proxy -------------------------------------------------------------------------------

def proxy_for(url: str, explicit: str | None,
              env: Mapping[str, str] | None = None) -> str | None:
    """The proxy for an https URL: --proxy if given, else the environment's unless NO_PROXY.

    An explicit empty --proxy means "no proxy", whatever the environment says. NO_PROXY only
    ever exempts hosts from the environment's proxy: a proxy given on the command line is meant.
    """
    if explicit is not None:
        return with_scheme(explicit) if explicit.strip() else None
    env = os.environ if env is None else env
    proxy = first_set(env, ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"))
    if proxy is None:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or HTTPS_DEFAULT_PORT
    no_proxy = first_set(env, ("no_proxy", "NO_PROXY")) or ""
    if bypasses(no_proxy, host, port):
        return None
    return with_scheme(proxy)


def first_set(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first variable that holds something; lower case first, as curl and urllib read them."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def with_scheme(proxy: str) -> str:
    """'proxy:3128' is common in the environment; it means an HTTP proxy."""
    proxy = proxy.strip()
    return proxy if "://" in proxy else f"http://{proxy}"


def bypasses(no_proxy: str, host: str, port: int) -> bool:
    """Whether a NO_PROXY list exempts host:port.

    Entries: "*", a host name (also matching its subdomains), a domain with a leading dot,
    an IP address, a CIDR range; each optionally followed by :port.
    """
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        pattern, entry_port = split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if matches(pattern, host.lower()):
            return True
    return False


def split_port(entry: str) -> tuple[str, int | None]:
    """'host:8443' -> ('host', 8443); IPv6 addresses and ranges keep their colons."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def matches(pattern: str, host: str) -> bool:
    try:
        network = ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False  # an address range says nothing about a host name
    domain = pattern.removeprefix("*").lstrip(".").rstrip(".")
    return bool(domain) and (host == domain or host.endswith(f".{domain}"))


# --- the session -------------------------------------------------------------------------------

class ContextAdapter(HTTPAdapter):
    """Transport adapter: every connection, direct or through a proxy, uses one SSLContext.

    requests would otherwise hand urllib3 a CA bundle path (certifi's, or verify=) that urllib3
    loads into whatever context it uses, and a verify mode that overrides the context's own.
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context  # before super(): it builds the pool manager
        super().__init__(max_retries=0)

    @property
    def cert_reqs(self) -> str:
        """The context's verify mode, in urllib3's words: urllib3 sets it on the context."""
        return "CERT_NONE" if self.ssl_context.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED"

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self.ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs.setdefault("ssl_context", self.ssl_context)
        if proxy.lower().startswith("https:"):
            # An https:// proxy is trusted like the hosts behind it.
            proxy_kwargs.setdefault("proxy_ssl_context", self.ssl_context)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        for bundle in ("ca_certs", "ca_cert_dir"):
            pool_kwargs.pop(bundle, None)
        pool_kwargs["ssl_context"] = self.ssl_context
        pool_kwargs["cert_reqs"] = self.cert_reqs
        return host_params, pool_kwargs

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        if self.cert_reqs == "CERT_REQUIRED":
            return super().send(request, *args, **kwargs)
        # --insecure was asked for, and the output says so: no warning on stderr each call.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return super().send(request, *args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # The context alone decides what is trusted: no bundle path, no client certificate.
        if url.lower().startswith("https"):
            conn.cert_reqs = self.cert_reqs
            conn.ca_certs = None
            conn.ca_cert_dir = None


def https_session(ssl_context: ssl.SSLContext, proxy: str | None) -> requests.Session:
    """A session that trusts what ssl_context trusts and uses only the given proxy.

    urllib3 sets its ALPN protocols (http/1.1) on the context: give the session a context of
    its own rather than one that an SMTP connection uses too.
    """
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", ContextAdapter(ssl_context))
    session.proxies = {"https": proxy} if proxy else {}
    return session


# --- the client msal calls ---------------------------------------------------------------------

# Keyword arguments the session decides, whatever the caller passes.
SESSION_DECIDES = ("timeout", "verify", "proxies", "cert", "allow_redirects", "stream")
ANSWER_LIMIT = 1024 * 1024  # a token or discovery answer is a few KiB
GRAPH_ANSWER_LIMIT = 4 * 1024 * 1024  # an application with many credentials
READ_SIZE = 64 * 1024


class UntrustedAnswer(Exception):
    """An answer the plugin will not use: a redirect, another origin, a body too large or
    compressed. The server's fault, told in plain words; nothing more is sent."""

    def __init__(self, problem: str, reply: str | None = None) -> None:
        super().__init__(f"{problem}: {reply}" if reply else problem)
        self.problem = problem
        self.reply = reply


def origin_of(url: str) -> tuple[str, str, int]:
    """scheme, host and port: what must match for a credential to go there."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").rstrip(".").lower(), \
        port or (HTTPS_DEFAULT_PORT if scheme == "https" else 80)


class DeadlineHttpClient:
    """The http_client for msal (and the Graph calls): each request bounded by the deadline.

    No redirect is followed (a credential goes only to the host it is meant for), no request
    leaves `origin` when one is given, and an answer is read in pieces, at most `limit`
    bytes and within the deadline, never decompressed.

    It keeps one line per exchange for the -vv dialogue: method, URL without query string,
    status and time. Query strings, bodies and headers hold secrets and are never kept.
    """

    def __init__(self, session: requests.Session, deadline: Deadline, *,
                 origin: str | None = None, host_words: str = "the server",
                 limit: int = ANSWER_LIMIT,
                 inspect: Callable[[str, requests.Response], None] | None = None) -> None:
        self.session = session
        self.deadline = deadline
        self.origin = origin_of(origin) if origin else None
        self.host_words = host_words  # "the sign-in host", "Graph": who answers, in words
        self.limit = limit
        self.inspect = inspect  # a check of each answer before its caller sees it
        self.exchanges: list[str] = []
        self.last_response: requests.Response | None = None

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kwargs: Any) -> requests.Response:
        return self.request("POST", url, params=params, data=data, headers=headers, **kwargs)

    def get(self, url: str, params: Any = None, headers: Any = None,
            **kwargs: Any) -> requests.Response:
        return self.request("GET", url, params=params, headers=headers, **kwargs)

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        waiting_for = f"the answer of {authority_of(url)}"
        self.refuse_other_origin(method, url)
        for name in SESSION_DECIDES:
            kwargs.pop(name, None)
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Accept-Encoding"] = "identity"  # a compressed answer could inflate past limit
        # total= bounds connect and the wait for the answer together, not each on its own.
        timeout = Timeout(total=self.deadline.budget(waiting_for))
        started = time.monotonic()
        try:
            response = self.session.request(method, url, timeout=timeout, headers=headers,
                                            allow_redirects=False, stream=True, **kwargs)
            try:
                self.refuse_redirect(response)
                response._content = self.read_body(response, url, waiting_for)
            except BaseException:
                response.close()  # given up half-way: the connection cannot serve again
                raise
            response.raw.release_conn()  # read whole: the next request to the host reuses it
        except requests.RequestException as error:
            took = time.monotonic() - started
            timed_out = is_timeout(error)
            outcome = "no answer in time" if timed_out else type(error).__name__
            self.exchanges.append(f"{method} {printable_url(url)} -> {outcome} ({took:.3f}s)")
            if timed_out:
                raise DeadlineExceeded(waiting_for) from None
            raise
        except UntrustedAnswer as refused:
            took = time.monotonic() - started
            self.exchanges.append(f"{method} {printable_url(url)} -> refused: {refused.problem} "
                                  f"({took:.3f}s)")
            raise
        took = time.monotonic() - started
        self.exchanges.append(
            f"{method} {printable_url(url)} -> {response.status_code} ({took:.3f}s)")
        self.last_response = response
        if self.inspect is not None:
            self.inspect(url, response)
        return response

    def refuse_other_origin(self, method: str, url: str) -> None:
        """Before anything is sent: a request for another scheme, host or port is refused."""
        if self.origin is None or origin_of(url) == self.origin:
            return
        shown = printable_url(url)
        if method == "POST":
            raise UntrustedAnswer(f"the discovery document names a token endpoint at {shown}, "
                                  f"not at {self.host_words}: refused; the secret was not sent")
        raise UntrustedAnswer(f"asked to fetch {shown}, not from {self.host_words}: refused")

    def refuse_redirect(self, response: requests.Response) -> None:
        if response.status_code not in REDIRECTS:
            return
        location = response.headers.get("Location", "")
        where = authority_of(location) if urlsplit(location).hostname else \
            (location[:100] or "nowhere")
        raise UntrustedAnswer(
            f"{self.host_words} answered with a redirect to {where}: something else answers in "
            "Microsoft's place", f"HTTP {response.status_code}")

    def read_body(self, response: requests.Response, url: str, waiting_for: str) -> bytes:
        """The body, read in pieces: at most `limit` bytes, and within the deadline in total
        (each read may wait only what is left of the run), never decompressed."""
        what = answer_name(url, self.host_words)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UntrustedAnswer(f"{what} came compressed ({encoding[:40]}) though asked for "
                                  "none: refused")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise UntrustedAnswer(f"{what} exceeds {size_words(self.limit)}",
                                  f"Content-Length {declared}")
        raw = response.raw
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        read = getattr(raw, "read1", None) or raw.read  # read1: one wait on the socket at most
        chunks: list[bytes] = []
        size = 0
        while True:
            budget = self.deadline.budget(waiting_for)
            if sock is not None:
                sock.settimeout(budget)
            try:
                chunk = read(READ_SIZE, decode_content=False)
            except (TimeoutError, Urllib3Timeout):  # urllib3 names a socket's timeout its way
                raise DeadlineExceeded(waiting_for) from None
            except (OSError, ProtocolError) as error:  # a hang-up or broken chunks
                reason = str(error.args[0] if error.args else error)[:120]
                raise UntrustedAnswer(f"{what} broke off before its end", reason) from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.limit:
                raise UntrustedAnswer(f"{what} exceeds {size_words(self.limit)}")
            chunks.append(chunk)


def retry_after(value: str | None, now: float | None = None) -> str | None:
    """Retry-After in words, as seconds: it may also be an HTTP date (RFC 9110 section 10.2.3),
    which is turned into seconds from now and shown with its time."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit() and len(value) <= 9:
        return f"retry after {int(value)}s"
    from email.utils import parsedate_to_datetime  # only a throttled answer pays for it

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    seconds = max(0, round(when.timestamp() - (time.time() if now is None else now)))
    return f"retry after {seconds}s ({when.astimezone(datetime.UTC):%H:%M:%S} UTC)"


def answer_name(url: str, host_words: str) -> str:
    """What an answer is, for the words of a refusal."""
    path = urlsplit(url).path
    if path.endswith("/openid-configuration"):
        return "the discovery document"
    if path.endswith("/token"):
        return "the token endpoint's answer"
    return f"the answer of {host_words}"


def size_words(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def authority_of(url: str) -> str:
    """host or host:port, without any user:password@."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def printable_url(url: str) -> str:
    """scheme://host[:port]/path: no credentials, no query string, no fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{authority_of(url)}{parts.path}"


def is_timeout(error: BaseException) -> bool:
    """Whether a requests error is, somewhere down its chain, a socket timeout.

    requests reports some timeouts as such, others as ProxyError or ConnectionError around
    urllib3's timeout errors (connecting to the proxy, reading the body).
    """
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        # urllib3's NewConnectionError (refused, unreachable) is a timeout class only by descent.
        timeout_kinds = (requests.Timeout, Urllib3Timeout, TimeoutError)
        if isinstance(current, timeout_kinds) and not isinstance(current, NewConnectionError):
            return True
        pending.extend(current.args)
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
    return False
