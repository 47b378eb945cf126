"""A tiny authoritative DNS server on loopback, over UDP and TCP, for the resolve step."""

import asyncio
import errno
import ipaddress
import socket
import struct
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from check_mailgw.sandbox.plumbing.background import (
    BackgroundLoop,
    RunningServer,
    TcpService,
    listen_on,
    settle,
)

DEFAULT_RECORDS: dict[str, list[str]] = {"mail.sandbox.test": ["127.0.0.1"]}

TTL = 300
# Negative answers carry the zone's SOA, as real authoritative servers do (RFC 2308).
SOA_TEMPLATE = "ns1.{zone} hostmaster.{zone} 2026010101 3600 600 86400 300"
SERVFAIL_LABEL = "servfail"
TIMEOUT_LABEL = "timeout"


class SandboxZone:
    """Answers queries from a name -> addresses table, plus the servfail/timeout names."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.queries = 0
        self._records = {
            dns.name.from_text(name): [ipaddress.ip_address(address) for address in addresses]
            for name, addresses in records.items()
        }

    def answer(self, wire: bytes) -> bytes | None:
        """The response to a query in wire format; None means: do not answer."""
        self.queries += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name
        first_label = name.labels[0].decode("ascii", "replace").lower() if name.labels else ""
        if name in self._records:
            self._add_addresses(response, name, question.rdtype)
        elif first_label == TIMEOUT_LABEL:
            return None
        elif first_label == SERVFAIL_LABEL:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(_soa_for(name))
        return response.to_wire()

    def _add_addresses(
        self, response: dns.message.Message, name: dns.name.Name, rdtype: int
    ) -> None:
        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(rdtype)
        matching = [str(a) for a in self._records[name] if a.version == version]
        if matching:
            response.answer.append(
                dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, matching)
            )
        else:
            # NODATA: the name exists, not with this type.
            response.authority.append(_soa_for(name))


def _soa_for(name: dns.name.Name) -> dns.rrset.RRset:
    zone = dns.name.Name(name.labels[-3:]) if len(name.labels) >= 3 else dns.name.root
    soa = SOA_TEMPLATE.format(zone=zone.to_text())
    return dns.rrset.from_text(zone, TTL, dns.rdataclass.IN, dns.rdatatype.SOA, soa)


class _UdpDns(asyncio.DatagramProtocol):
    """Serves the zone over UDP."""

    def __init__(self, zone: SandboxZone) -> None:
        self._zone = zone
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self._zone.answer(data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


class _TcpDns(asyncio.Protocol):
    """Serves the zone over TCP: two-byte length, then the message (RFC 1035 4.2.2)."""

    def __init__(self, zone: SandboxZone) -> None:
        self._zone = zone
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            (length,) = struct.unpack("!H", self._buffer[:2])
            if len(self._buffer) < 2 + length:
                return
            wire, self._buffer = self._buffer[2 : 2 + length], self._buffer[2 + length :]
            reply = self._zone.answer(wire)
            if reply is not None and self._transport is not None:
                self._transport.write(struct.pack("!H", len(reply)) + reply)


class DnsServer(RunningServer):
    """A running sandbox DNS server: where it listens, how many queries it got, how to stop it."""

    def __init__(self, records: dict[str, list[str]], host: str, port: int) -> None:
        self.host = host
        self._zone = SandboxZone(records)
        udp, tcp = _bind_pair(host, port)
        self.port: int = udp.getsockname()[1]
        self._background = BackgroundLoop(f"sandbox-dns-{self.port}")
        try:
            self._udp_transport = self._background.run(self._open_udp(udp))
            self._tcp = TcpService(self._background, tcp, lambda: _TcpDns(self._zone))
        except BaseException:
            udp.close()
            tcp.close()
            self._background.close()
            raise
        self._stopped = False

    @property
    def queries(self) -> int:
        """Queries received so far, over UDP and TCP, answered or not."""
        return self._zone.queries

    @property
    def address(self) -> str:
        """host:port, as --dns-server takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def _open_udp(self, sock: socket.socket) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpDns(self._zone), sock=sock)
        return transport

    async def _close(self) -> None:
        self._udp_transport.close()
        await self._tcp.aclose()
        await settle()

    def stop(self) -> None:
        """Close both sockets; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            try:
                self._background.run(self._close())
            finally:
                self._background.close()

    def __repr__(self) -> str:
        return f"<DnsServer on {self.address}>"


def _bind_pair(host: str, port: int, attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port; with port 0, any port free for both."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    for _ in range(attempts):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.bind((host, port))
            tcp = listen_on(host, udp.getsockname()[1])
        except OSError as error:
            udp.close()
            if port == 0 and error.errno == errno.EADDRINUSE:
                continue
            raise
        udp.setblocking(False)
        return udp, tcp
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")


def start_dns(
    records: dict[str, list[str]] | None = None, host: str = "127.0.0.1", port: int = 0
) -> DnsServer:
    """Start a DNS server on an IP literal (port 0: any free port) answering for records."""
    return DnsServer(DEFAULT_RECORDS if records is None else records, host, port)
