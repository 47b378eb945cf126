"""The sandbox's DNS server (sandbox/plumbing/dns_server.py), queried with dnspython."""

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from check_mailgw.sandbox.plumbing.dns_server import DnsServer


def resolver_for(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 1.0
    return resolver


def test_dns_answers_a_and_aaaa(dns_server: DnsServer) -> None:
    resolver = resolver_for(dns_server)
    assert [r.address for r in resolver.resolve("mail.sandbox.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("DUAL.sandbox.test", "AAAA")] == ["::1"]
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("mail.sandbox.test", "AAAA")


def test_dns_unknown_name_is_nxdomain_with_soa(dns_server: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(dns_server).resolve("nope.sandbox.test", "A")
    query = dns.message.make_query("nope.sandbox.test", "A")
    response = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_dns_servfail_name(dns_server: DnsServer) -> None:
    query = dns.message.make_query("servfail.sandbox.test", "A")
    response = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        resolver_for(dns_server).resolve("servfail.sandbox.test", "A")


def test_dns_timeout_name_gets_no_answer(dns_server: DnsServer) -> None:
    query = dns.message.make_query("timeout.sandbox.test", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=0.3)
    resolver = resolver_for(dns_server)
    resolver.lifetime = 0.5
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("timeout.sandbox.test", "A")


def test_dns_over_tcp_and_query_count(dns_server: DnsServer) -> None:
    query = dns.message.make_query("mail.sandbox.test", "A")
    response = dns.query.tcp(query, dns_server.host, port=dns_server.port, timeout=1)
    assert response.answer[0][0].address == "127.0.0.1"
    assert dns_server.queries == 1
