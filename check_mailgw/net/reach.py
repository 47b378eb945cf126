"""The way to a server, the start of every mode's chain: resolve, connect, TLS."""

from __future__ import annotations

import importlib
import socket
import ssl

from check_mailgw.deadline import Deadline
from check_mailgw.net.connect import connect, endpoint
from check_mailgw.net.resolve import is_ip_literal
from check_mailgw.net.tls import describe, handshake
from check_mailgw.outcome import Passed


class Reach:
    """Where a chain connects to (the server, or the proxy before it) and what it found."""

    def __init__(self, host: str, port: int, family: int = 0,
                 dns_server: tuple[str, int] | None = None) -> None:
        self.host, self.port, self.family, self.dns_server = host, port, family, dns_server
        self.addresses = [self.host] if is_ip_literal(self.host) else []
        self.sock: socket.socket | None = None
        if not self.addresses and self.dns_server:
            # A DNS server to ask needs dnspython: its import is local work, done before the
            # clock starts. The system resolver needs none; dnspython then only explains a
            # failure.
            importlib.import_module("dns.resolver")

    @property
    def needs_dns(self) -> bool:
        return not self.addresses

    def resolve(self, deadline: Deadline) -> Passed:
        from check_mailgw.net.resolve import resolve

        found = resolve(self.host, self.family, self.dns_server, deadline)
        self.addresses = found.addresses
        return Passed(facts={"addresses": found.addresses, "source": found.source})

    def connect(self, deadline: Deadline) -> Passed:
        self.sock, address, failed = connect(self.addresses, self.port, deadline)
        facts: dict[str, object] = {"address": address}
        if failed:
            facts["attempts"] = failed
        local_address, local_port = self.sock.getsockname()[:2]
        return Passed(facts=facts, details={"port": self.port,
                                            "from": endpoint(local_address, local_port)})


def secure(sock: socket.socket, context: ssl.SSLContext, server_name: str, insecure: bool,
           deadline: Deadline, how: str) -> tuple[ssl.SSLSocket, Passed]:
    """The TLS handshake over a connected socket, and the facts of the session."""
    tls_sock = handshake(sock, context, server_name, deadline, how)
    passed = describe(tls_sock, insecure)
    passed.brief = f"{how} {passed.brief}"
    return tls_sock, passed
