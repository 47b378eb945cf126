"""Benchmark: the smtp chain against a distant gateway, versus a plain smtplib check.

Round trips are the real cost of a check against a server far away, so this puts
a delay proxy on loopback between the client and the sandbox's STARTTLS server
(every chunk is held back DELAY seconds in each direction) and times, in the same
run and process:

- baseline: what a straightforward smtplib check does (EHLO, STARTTLS, EHLO,
  login, MAIL, RCPT, RSET, QUIT, each waiting for its reply);
- check_mailgw: the smtp mode's chain (AUTH PLAIN with the initial response,
  MAIL/RCPT/RSET pipelined, QUIT not waited for).

Run by hand:  python3 bench/round_trips.py [--delay 0.02] [--runs 15]
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from delay_proxy import DelayProxy

from check_mailgw.modes import run_mode
from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER, write_password_file
from check_mailgw.sandbox.ca import SandboxCA
from check_mailgw.sandbox.smtp_server import start_smtp
from check_mailgw.secret import Redactor
from check_mailgw.settings import build_settings


def smtplib_check(port: int, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
        client.login(SANDBOX_USER, SANDBOX_PASSWORD)
        client.mail(SANDBOX_USER)
        client.rcpt(SANDBOX_USER)
        client.rset()


def mailgw_check(port: int, ca_file: str, password_file: str) -> None:
    settings = build_settings({
        "hostname": "127.0.0.1", "port": port, "tls": "starttls", "sender": SANDBOX_USER,
        "username": SANDBOX_USER, "password_file": password_file, "ca_file": ca_file,
    }, env={})
    report = run_mode(settings, Redactor())
    assert report.failure is None, report.failure


def timed(check: Callable[[], None], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        check()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.02, help="one-way delay in seconds")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    ca = SandboxCA()
    with tempfile.TemporaryDirectory() as directory, \
            start_smtp(security="starttls", ca=ca) as server:
        ca_file = str(ca.write_ca(Path(directory) / "ca.pem"))
        password_file = str(write_password_file(Path(directory) / "password"))
        proxy = DelayProxy(server.port, args.delay)
        try:
            candidates = {
                "baseline (smtplib)": lambda: smtplib_check(proxy.port, ca_file),
                "check_mailgw smtp": lambda: mailgw_check(proxy.port, ca_file, password_file),
            }
            for check in candidates.values():  # warm up imports and the CA
                check()
            results = {name: timed(check, args.runs) for name, check in candidates.items()}
        finally:
            proxy.stop()

    rtt = 2 * args.delay
    print(f"one-way delay {args.delay * 1000:.0f} ms (RTT {rtt * 1000:.0f} ms), "
          f"{args.runs} runs each")
    baseline = statistics.median(results["baseline (smtplib)"])
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<20} median {median * 1000:7.1f} ms  = {median / rtt:4.1f} RTT  "
              f"({median / baseline:.2f} x baseline)")


if __name__ == "__main__":
    main()
