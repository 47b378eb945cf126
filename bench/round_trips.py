"""Benchmark: the smtp mode's CPU per check and round trips, against a bare smtplib script.

Both sides do the same chain (EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT) against a server on
loopback, and both run as a fresh process per check, as a monitoring core runs them:

- check_mailgw: the installed console script, smtp mode, STARTTLS and AUTH;
- bare: `python -c` with smtplib: ehlo, starttls, ehlo, login, mail, rcpt, rset, and
  QUIT on leaving the `with`, each waiting for its reply, as one writes it by hand.

1. CPU per check (user+sys of the child), medians of interleaved runs, by IP literal
   (127.0.0.1) and by host name (localhost, which the hosts file answers: the system
   resolver's first source, so no DNS server is asked). The server is aiosmtpd itself,
   not the sandbox: an independent STARTTLS server with AUTH, without PIPELINING.
   Both sides keep compiled bytecode in a temporary cache, as an installed package has it.
   Beside it, the number of modules each side imports (one run with -X importtime).
2. Round trips. A delay proxy between client and server holds every chunk back DELAY
   seconds each way and counts the client's waits: the server's turns to speak (greeting,
   replies, the TLS handshake) while the client still listens. Against the same server
   (no PIPELINING) and the sandbox's (PIPELINING offered); the wall is each side's own
   time from before the connection to its end, in RTTs.

Run by hand:  python3 bench/round_trips.py [--runs 30] [--delay 0.02] [--trips 3]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from children import (
    PLUGIN,
    Sample,
    child_environment,
    imported_modules,
    interleaved,
    median,
    ms,
    run_child,
)
from delay_proxy import DelayProxy

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER, write_password_file
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from check_mailgw.sandbox.smtp.listeners import start_smtp

# What someone would write by hand. Arguments: host, port, CA file, user, password file.
BARE_SMTPLIB = """\
import smtplib
import ssl
import sys
import time

host, port, ca_file, user, password_file = sys.argv[1:]
start = time.monotonic()
with open(password_file) as file:
    password = file.readline().strip()
context = ssl.create_default_context(cafile=ca_file)
with smtplib.SMTP(host, int(port), timeout=10) as smtp:
    smtp.ehlo()
    smtp.starttls(context=context)
    smtp.ehlo()
    smtp.login(user, password)
    for answer in (smtp.mail(user), smtp.rcpt(user)):
        if answer[0] != 250:
            sys.exit(f"refused: {answer}")
    smtp.rset()
print(f"OK | total_time={time.monotonic() - start:.6f}s")
"""

ADDRESSES = {"by IP": "127.0.0.1", "by name": "localhost"}


@dataclass(frozen=True)
class Inputs:
    """What both sides get: the CA and password files, and the environment."""

    ca: Path
    password: Path
    environment: dict[str, str]


def check_argv(host: str, port: int, inputs: Inputs) -> list[str]:
    return [str(PLUGIN), "-H", host, "-p", str(port), "--tls", "--from", SANDBOX_USER,
            "-U", SANDBOX_USER, "--password-file", str(inputs.password),
            "--ca-file", str(inputs.ca)]


def bare_argv(host: str, port: int, inputs: Inputs) -> list[str]:
    return [sys.executable, "-c", BARE_SMTPLIB, host, str(port), str(inputs.ca), SANDBOX_USER,
            str(inputs.password)]


def accept_sandbox_account(server: SMTP, session: Session, envelope: Envelope,
                           mechanism: str, auth_data: object) -> AuthResult:
    expected = (SANDBOX_USER.encode(), SANDBOX_PASSWORD.encode())
    valid = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == expected
    return AuthResult(success=valid)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def independent_server(ca: SandboxCA) -> Iterator[int]:
    """aiosmtpd with STARTTLS and AUTH after it, accepting every envelope; its port."""
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port(),
                            server_hostname="mail.sandbox.test", tls_context=ca.server_context(),
                            authenticator=accept_sandbox_account, auth_require_tls=True)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@dataclass(frozen=True)
class Trips:
    """One side through the delay proxy: the waits of each run, and its own times."""

    waits: list[int]
    samples: list[Sample]

    def row(self, name: str, rtt: float) -> str:
        wall = median(self.samples, lambda s: s.perfdata()["total_time"])
        waits = sorted(set(self.waits)) or [0]  # 0: the proxy saw no connection end
        counted = str(waits[0]) if len(waits) == 1 else f"{min(waits)}-{max(waits)}"
        return f"    {name:<14} waits {counted:>5}   wall {ms(wall):>7} = {wall / rtt:4.1f} RTT"


def through_proxy(argv_for: dict[str, list[str]], proxy: DelayProxy, runs: int,
                  environment: dict[str, str]) -> dict[str, Trips]:
    trips = {}
    for name, argv in argv_for.items():
        waits, samples = [], []
        for _ in range(runs):
            before = len(proxy.conversations)
            samples.append(run_child(argv, name, environment))
            # The relay ends a few delays after the client: wait, so no run counts another's.
            give_up = time.monotonic() + 5
            while len(proxy.conversations) == before and time.monotonic() < give_up:
                time.sleep(0.01)
            waits += [c.waits for c in proxy.conversations[before:]]
        trips[name] = Trips(waits, samples)
    return trips


def round_trips(port: int, inputs: Inputs, delay: float, runs: int) -> dict[str, Trips]:
    proxy = DelayProxy(port, delay)
    try:
        return through_proxy({
            "check_mailgw": check_argv("127.0.0.1", proxy.port, inputs),
            "bare smtplib": bare_argv("127.0.0.1", proxy.port, inputs),
        }, proxy, runs, inputs.environment)
    finally:
        proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="checks per side for the CPU")
    parser.add_argument("--delay", type=float, default=0.02, help="one-way delay in seconds")
    parser.add_argument("--trips", type=int, default=3, help="checks per side through the proxy")
    args = parser.parse_args()
    # aiosmtpd's own AUTH code sets the attribute it deprecates, and logs that each time.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    if not PLUGIN.exists():
        raise SystemExit(f"{PLUGIN} missing: install the package first (pip install -e .)")

    ca = SandboxCA()
    with tempfile.TemporaryDirectory() as directory:
        inputs = Inputs(ca.write_ca(Path(directory) / "ca.pem"),
                        write_password_file(Path(directory) / "password"),
                        child_environment(Path(directory) / "pycache"))
        with independent_server(ca) as port:
            modules = {side: imported_modules(argv, inputs.environment) for side, argv in (
                ("check_mailgw", check_argv("127.0.0.1", port, inputs)),
                ("bare smtplib", bare_argv("127.0.0.1", port, inputs)))}
            cpu = {
                how: interleaved({"check_mailgw": check_argv(host, port, inputs),
                                  "bare smtplib": bare_argv(host, port, inputs)},
                                 args.runs, inputs.environment)
                for how, host in ADDRESSES.items()
            }
            without_pipelining = round_trips(port, inputs, args.delay, args.trips)
        with start_smtp(security="starttls", ca=ca) as sandbox:
            with_pipelining = round_trips(sandbox.port, inputs, args.delay, args.trips)

    print(f"CPU per check, {args.runs} fresh processes per side, medians (user+sys):")
    for how, samples in cpu.items():
        check, bare = (median(samples[side], lambda s: s.cpu)
                       for side in ("check_mailgw", "bare smtplib"))
        check_wall, bare_wall = (median(samples[side], lambda s: s.wall)
                                 for side in ("check_mailgw", "bare smtplib"))
        print(f"  {how:<8} check_mailgw {ms(check):>6}  bare smtplib {ms(bare):>6}  "
              f"ratio {check / bare:.2f}   (wall {ms(check_wall)} vs {ms(bare_wall)}, "
              f"{check_wall / bare_wall:.2f})")
    print(f"  modules imported: check_mailgw {modules['check_mailgw']}, "
          f"bare smtplib {modules['bare smtplib']}")
    rtt = 2 * args.delay
    print(f"Round trips through a delay proxy, one-way {ms(args.delay)} (RTT {ms(rtt)}), "
          f"{args.trips} runs per side; waits = times the client waited for the server "
          "(its greeting, each reply or pipelined batch, the TLS handshake):")
    for title, trips in (("aiosmtpd, no PIPELINING", without_pipelining),
                         ("sandbox, PIPELINING", with_pipelining)):
        print(f"  {title}:")
        for name, side in trips.items():
            print(side.row(name, rtt))


if __name__ == "__main__":
    main()
