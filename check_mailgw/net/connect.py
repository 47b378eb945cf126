"""The connect step: TCP to each resolved address in turn, refused and timed out told apart."""

from __future__ import annotations

import errno
import socket

from check_mailgw.deadline import Deadline
from check_mailgw.outcome import Diagnosis, State, StepFailed


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def connect(addresses: list[str], port: int,
            deadline: Deadline) -> tuple[socket.socket, str, list[str]]:
    """The first address that accepts, and what the ones before it said.

    Each attempt gets a fair share of half the time left, so that an address that drops
    SYNs is reported as such rather than eating the whole run.
    """
    failures: list[tuple[str, str]] = []  # (kind, words)
    for index, address in enumerate(addresses):
        share = deadline.budget(f"TCP connect to {endpoint(address, port)}") / 2
        share /= len(addresses) - index
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(share)
        try:
            sock.connect((address, port))
        except TimeoutError:
            failures.append(("timeout", f"{endpoint(address, port)} timed out after {share:.1f}s"))
        except ConnectionRefusedError:
            failures.append(("refused", f"{endpoint(address, port)} refused"))
        except OSError as error:
            reason = error.strerror or errno.errorcode.get(error.errno or 0, str(error))
            failures.append(("other", f"{endpoint(address, port)} {reason}"))
        else:
            sock.settimeout(None)
            # Requests and commands are small writes: waiting for ACKs would add 40 ms each.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, address, [words for _, words in failures]
        sock.close()
    raise StepFailed(diagnose_connect(failures), {"attempts": [w for _, w in failures]})


def diagnose_connect(failures: list[tuple[str, str]]) -> Diagnosis:
    words = "; ".join(w for _, w in failures)
    kinds = {kind for kind, _ in failures}
    if kinds == {"refused"}:
        return Diagnosis(
            State.CRITICAL, "connection refused", words,
            fix="nothing listens on that port: check the Port setting (-p), and that the "
            "mail service runs on the server",
        )
    if kinds == {"timeout"}:
        return Diagnosis(
            State.CRITICAL, "connection timed out", words,
            fix="no answer to the TCP handshake: a firewall drops the traffic, or the host "
            "is down; check the route and firewall rules for this port",
        )
    return Diagnosis(
        State.CRITICAL, "cannot connect", words,
        fix="check the network route to the server, the Port setting and any firewall",
    )
