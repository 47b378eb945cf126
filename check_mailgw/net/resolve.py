"""The resolve step: the addresses of a host, as the application's own resolver finds them.

The system resolver answers first (getaddrinfo: the hosts file, then DNS, as nsswitch.conf
orders them), since the application that sends through the gateway uses it too; it runs in
a thread so that the run's deadline bounds it. dnspython is imported only where it adds
something: to tell a failure apart (NXDOMAIN, SERVFAIL, resolver timeout), and to ask the
server given with --dns-server.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from check_mailgw.outcome import Diagnosis, State, StepFailed

if TYPE_CHECKING:
    from check_mailgw.deadline import Deadline

HOSTS_FILE = Path("/etc/hosts")
RECORD_TYPES = {4: "A", 6: "AAAA"}
SOCKET_FAMILIES = {0: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}
SYSTEM_RESOLVER = "system resolver"



def is_ip_literal(host: str) -> bool:
    """An address given as such needs no DNS."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

class Resolution(NamedTuple):
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
    """The system resolver's answer; with --dns-server, that server's (A and AAAA)."""
    if dns_server is not None:
        return ask_dns(name, family, dns_server, deadline)
    # Half of what is left, so that a stuck resolver is reported as such, not as a run timeout.
    wait = deadline.budget(f"the {SYSTEM_RESOLVER}") / 2
    answer = ask_system(name, family, wait)
    if isinstance(answer, list):
        return Resolution(answer, source_of(name, family, answer))
    said = f"no answer within {wait:.1f}s" if answer is None else system_words(answer)
    raise StepFailed(explain_failure(name, family, deadline, said),
                     {"resolver": SYSTEM_RESOLVER, "system_resolver": said})


def ask_system(name: str, family: int, wait: float) -> list[str] | Exception | None:
    """getaddrinfo's addresses in its order, its error, or None if it did not answer in time.

    A daemon thread: a lookup stuck past the deadline never keeps the process alive.
    """
    answers: list[list[str] | Exception] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(name, None, SOCKET_FAMILIES[family], socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
            answers.append(list(dict.fromkeys(addresses)))
        except (OSError, UnicodeError) as error:
            answers.append(error)

    thread = threading.Thread(target=lookup, name="resolve", daemon=True)
    thread.start()
    thread.join(wait)
    return answers[0] if answers else None


def source_of(name: str, family: int, addresses: list[str]) -> str:
    """'hosts file /etc/hosts' when the system resolver's answer is the hosts file's."""
    local = {normalised(a) for a in from_hosts_file(name, family)}
    if local and local >= {normalised(a) for a in addresses}:
        return f"hosts file {HOSTS_FILE}"
    return SYSTEM_RESOLVER


def normalised(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def system_words(error: Exception) -> str:
    """What getaddrinfo said, e.g. 'Name or service not known'."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def explain_failure(name: str, family: int, deadline: Deadline, system_said: str,
                    dns_server: tuple[str, int] | None = None) -> Diagnosis:
    """Why the system resolver found nothing, as DNS itself tells it.

    The resolvers of /etc/resolv.conf (or dns_server) are asked directly: NXDOMAIN,
    SERVFAIL and a timeout each have their own diagnosis. If DNS does answer, the
    system resolver disagrees with it, and that is the diagnosis.
    """
    try:
        found = ask_dns(name, family, dns_server, deadline)
    except StepFailed as failed:
        return failed.diagnosis
    return Diagnosis(
        State.CRITICAL, f"DNS: the {SYSTEM_RESOLVER} cannot resolve {name}",
        f"{system_said}; {found.source} answers {', '.join(found.addresses)}",
        fix="the system resolver disagrees with DNS: check /etc/nsswitch.conf and any local "
        "cache (nscd, systemd-resolved), which the application sending mail uses too",
    )


def ask_dns(name: str, family: int, dns_server: tuple[str, int] | None,
            deadline: Deadline) -> Resolution:
    """A and AAAA through dnspython, asked in parallel: the configured resolvers or one server."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=dns_server is None)
    if dns_server:
        resolver.nameservers, resolver.port = [dns_server[0]], dns_server[1]
    servers = ", ".join(str(s) for s in resolver.nameservers) or "none configured"
    if dns_server:
        servers = f"{dns_server[0]}:{dns_server[1]}"
    # Half of what is left, so that a dead resolver is reported as such, not as a run timeout.
    lifetime = deadline.budget(f"the DNS resolver ({servers})") / 2
    families = [family] if family else [4, 6]
    answers: dict[int, list[str] | Exception] = {}

    def ask(version: int) -> None:
        try:
            # The system's search list applies to short names, as for the connection itself.
            answer = resolver.resolve(name, RECORD_TYPES[version], lifetime=lifetime,
                                      search=dns_server is None)
            answers[version] = [rdata.to_text() for rdata in answer]
        except (dns.exception.DNSException, OSError) as error:
            answers[version] = error

    threads = [threading.Thread(target=ask, args=(version,), name=f"resolve-{version}",
                                daemon=True) for version in families]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # each ends within its lifetime
    ordered = [answers[version] for version in families]
    addresses = [a for answer in ordered if isinstance(answer, list) for a in answer]
    if addresses:
        return Resolution(addresses, f"DNS {servers}")
    raise StepFailed(diagnose_dns_failure(name, families, ordered, servers, lifetime),
                     {"resolver": servers})


def diagnose_dns_failure(name: str, families: list[int], answers: list[list[str] | Exception],
                         servers: str, lifetime: float) -> Diagnosis:
    import dns.resolver

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
