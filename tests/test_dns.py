"""The resolve step against the sandbox's DNS server: answers and failures told apart."""

from __future__ import annotations

import re

from checkrun import run_check

from check_mailgw.deadline import Deadline
from check_mailgw.net.resolve import explain_failure
from check_mailgw.outcome import State
from check_mailgw.sandbox.accounts import SANDBOX_USER

OK, CRITICAL = 0, 2


def check_name(name: str, dns_server, port: int, *extra: object):
    return run_check("-H", name, "-p", port, "--from", SANDBOX_USER,
                     "--dns-server", f"{dns_server.host}:{dns_server.port}", *extra, "-v")


def test_a_record_leads_to_the_server(smtp_server, dns_server) -> None:
    server = smtp_server("plain", "ok")
    result = check_name("mail.sandbox.test", dns_server, server.port)
    assert result.exit_code == OK, result.stdout
    assert result.first_line.startswith(f"MAILGW OK - smtp mail.sandbox.test:{server.port}: ")
    assert re.search(r"resolve\s+OK .*addresses=127\.0\.0\.1; source=DNS 127\.0\.0\.1:\d+",
                     result.long_output)
    assert {"dns_time", "connect_time", "total_time"} <= set(result.perfdata)


def test_each_address_is_tried_in_turn(smtp_server, dns_server) -> None:
    # dual.sandbox.test has 127.0.0.1 and ::1; the server listens on ::1 only.
    server = smtp_server("plain", "ok", host="::1")
    result = check_name("dual.sandbox.test", dns_server, server.port, "-4")
    assert result.exit_code == CRITICAL
    assert re.search(r"connection refused: 127\.0\.0\.1:\d+ refused", result.first_line)
    result = check_name("dual.sandbox.test", dns_server, server.port)
    assert result.exit_code == OK, result.stdout
    assert "addresses=127.0.0.1,::1" in result.long_output
    assert re.search(r"connect\s+OK .*address=::1; attempts=127\.0\.0\.1:\d+ refused",
                     result.long_output)


def test_nxdomain(dns_server) -> None:
    result = check_name("nosuch.sandbox.test", dns_server, 25)
    assert result.exit_code == CRITICAL
    assert re.search(r"^MAILGW CRITICAL - resolve on nosuch\.sandbox\.test:25: DNS: "
                     r"nosuch\.sandbox\.test does not exist: NXDOMAIN from 127\.0\.0\.1:\d+",
                     result.first_line)
    assert "fix: check the Server setting (-H) for a typo" in result.long_output
    assert {"dns_time", "total_time"} <= set(result.perfdata)
    assert "connect_time" not in result.perfdata


def test_servfail(dns_server) -> None:
    result = check_name("servfail.sandbox.test", dns_server, 25)
    assert result.exit_code == CRITICAL
    assert re.search(r"DNS: lookup of servfail\.sandbox\.test failed: SERVFAIL", result.first_line)
    assert "fix: the resolver could not get an answer" in result.long_output


def test_resolver_timeout_is_critical_and_named(dns_server) -> None:
    result = check_name("timeout.sandbox.test", dns_server, 25, "-t", "2")
    assert result.exit_code == CRITICAL
    assert re.search(r"DNS: no answer for timeout\.sandbox\.test within 1\.0s: resolver timeout "
                     r"\(127\.0\.0\.1:\d+\)", result.first_line)
    assert "fix: the DNS resolver is down or unreachable" in result.long_output


def test_hosts_file_comes_before_dns(smtp_server) -> None:
    # 'localhost' is in /etc/hosts: the system resolver answers from it, before any DNS.
    server = smtp_server("plain", "ok", host="127.0.0.1")
    result = run_check("-H", "localhost", "-p", server.port, "-4", "--from", SANDBOX_USER, "-v")
    assert result.exit_code == OK, result.stdout
    assert "source=hosts file /etc/hosts" in result.long_output


def test_ip_literal_skips_dns(smtp_server) -> None:
    server = smtp_server("plain", "ok")
    result = run_check("-H", "127.0.0.1", "-p", server.port, "--from", SANDBOX_USER, "-v")
    assert result.exit_code == OK
    assert "dns_time" not in result.perfdata
    assert not re.search(r"^resolve", result.long_output, re.MULTILINE)


# When the system resolver finds nothing, DNS itself tells why. These ask the sandbox's DNS
# server in place of the machine's resolvers, which must not be queried from a test.
NOT_KNOWN = "Name or service not known"


def explained(name: str, dns_server, seconds: float = 4):
    return explain_failure(name, 0, Deadline(seconds), NOT_KNOWN,
                           dns_server=(dns_server.host, dns_server.port))


def test_system_resolver_failure_told_apart_nxdomain(dns_server) -> None:
    diagnosis = explained("nosuch.sandbox.test", dns_server)
    assert diagnosis.state == State.CRITICAL
    assert diagnosis.problem == "DNS: nosuch.sandbox.test does not exist"
    assert re.fullmatch(r"NXDOMAIN from 127\.0\.0\.1:\d+", diagnosis.reply or "")


def test_system_resolver_failure_told_apart_servfail(dns_server) -> None:
    diagnosis = explained("servfail.sandbox.test", dns_server)
    assert diagnosis.problem == "DNS: lookup of servfail.sandbox.test failed"
    assert (diagnosis.reply or "").startswith("SERVFAIL")


def test_system_resolver_failure_told_apart_timeout(dns_server) -> None:
    diagnosis = explained("timeout.sandbox.test", dns_server, seconds=1)
    assert diagnosis.problem == "DNS: no answer for timeout.sandbox.test within 0.5s"
    assert re.fullmatch(r"resolver timeout \(127\.0\.0\.1:\d+\)", diagnosis.reply or "")


def test_system_resolver_that_disagrees_with_dns_is_the_diagnosis(dns_server) -> None:
    diagnosis = explained("mail.sandbox.test", dns_server)
    assert diagnosis.state == State.CRITICAL
    assert diagnosis.problem == "DNS: the system resolver cannot resolve mail.sandbox.test"
    assert re.fullmatch(rf"{NOT_KNOWN}; DNS 127\.0\.0\.1:\d+ answers 127\.0\.0\.1",
                        diagnosis.reply or "")
    assert "/etc/nsswitch.conf" in (diagnosis.fix or "")
