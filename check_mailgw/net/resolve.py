"""The resolve step: the addresses of a host, as the system resolver would find them."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver

from check_mailgw.deadline import Deadline
from check_mailgw.outcome import Diagnosis, State, StepFailed

HOSTS_FILE = Path("/etc/hosts")
RECORD_TYPES = {4: "A", 6: "AAAA"}


@dataclass(frozen=True)
class Resolution:
    """Domain model: the addresses found for a name, and where they came from."""

    addresses: list[str]
    source: str


def from_hosts_file(name: str, family: int, path: Path = HOSTS_FILE) -> list[str]:
    """Addresses the hosts file gives the name ('files' comes before 'dns' in nsswitch)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or name.lower() not in (f.lower().rstrip(".") for f in fields[1:]):
            continue
        try:
            version = ipaddress.ip_address(fields[0].split("%", 1)[0]).version
        except ValueError:
            continue
        if family in (0, version) and fields[0] not in found:
            found.append(fields[0])
    return found


def resolve(name: str, family: int, dns_server: tuple[str, int] | None,
            deadline: Deadline) -> Resolution:
    """A and AAAA through dnspython, asked in parallel; the hosts file first."""
    if dns_server is None:
        local = from_hosts_file(name, family)
        if local:
            return Resolution(local, f"hosts file {HOSTS_FILE}")

    resolver = dns.resolver.Resolver(configure=dns_server is None)
    if dns_server:
        resolver.nameservers, resolver.port = [dns_server[0]], dns_server[1]
    servers = ", ".join(str(s) for s in resolver.nameservers) or "none configured"
    if dns_server:
        servers = f"{dns_server[0]}:{dns_server[1]}"
    # Half of what is left, so that a dead resolver is reported as such, not as a run timeout.
    lifetime = deadline.budget(f"the DNS resolver ({servers})") / 2
    families = [family] if family else [4, 6]

    def ask(version: int) -> list[str] | Exception:
        try:
            # The system's search list applies to short names, as for the connection itself.
            answer = resolver.resolve(name, RECORD_TYPES[version], lifetime=lifetime,
                                      search=dns_server is None)
            return [rdata.to_text() for rdata in answer]
        except (dns.exception.DNSException, OSError) as error:
            return error

    with ThreadPoolExecutor(max_workers=len(families)) as pool:
        answers = list(pool.map(ask, families))

    addresses = [a for answer in answers if isinstance(answer, list) for a in answer]
    if addresses:
        return Resolution(addresses, f"DNS {servers}")
    raise StepFailed(diagnose_dns_failure(name, families, answers, servers, lifetime),
                     {"resolver": servers})


def diagnose_dns_failure(name: str, families: list[int], answers: list[list[str] | Exception],
                         servers: str, lifetime: float) -> Diagnosis:
    errors = [a for a in answers if isinstance(a, Exception)]
    wanted = " or ".join(RECORD_TYPES[f] for f in families)
    if any(isinstance(e, dns.resolver.NXDOMAIN) for e in errors):
        return Diagnosis(
            State.CRITICAL, f"DNS: {name} does not exist", f"NXDOMAIN from {servers}",
            fix="check the Server setting (-H) for a typo; if the name is right, its DNS "
            "zone lost the record",
        )
    if any(isinstance(e, dns.resolver.LifetimeTimeout) for e in errors):
        return Diagnosis(
            State.CRITICAL, f"DNS: no answer for {name} within {lifetime:.1f}s",
            f"resolver timeout ({servers})",
            fix="the DNS resolver is down or unreachable: check the resolver named and the "
            "firewall towards it (UDP and TCP port 53)",
        )
    if any(isinstance(e, dns.resolver.NoNameservers) for e in errors):
        failure = next(e for e in errors if isinstance(e, dns.resolver.NoNameservers))
        return Diagnosis(
            State.CRITICAL, f"DNS: lookup of {name} failed", server_words(failure, servers),
            fix="the resolver could not get an answer (often SERVFAIL: a broken or "
            "unreachable authoritative server, or a DNSSEC failure); try again, then ask "
            "the DNS admin",
        )
    if all(isinstance(e, dns.resolver.NoAnswer) for e in errors):
        return Diagnosis(
            State.CRITICAL, f"DNS: {name} has no {wanted} record", f"NOERROR, empty from {servers}",
            fix="the name exists but has no address of that family: check the record, or "
            "drop -4/-6",
        )
    return Diagnosis(State.CRITICAL, f"DNS: lookup of {name} failed",
                     f"{type(errors[0]).__name__}: {errors[0]}",
                     fix="check the resolver configuration (/etc/resolv.conf)")


def server_words(error: Exception, servers: str) -> str:
    """What the servers answered, e.g. 'SERVFAIL from 127.0.0.1:5353'."""
    responses = getattr(error, "kwargs", {}).get("errors") or []
    for entry in responses:
        message = entry[4] if len(entry) > 4 else None
        if isinstance(message, str):
            return f"{message} from {entry[0]}:{entry[2]}"
    return f"SERVFAIL from {servers}" if "SERVFAIL" in str(error) else str(error)

