"""Benchmark: the o365-smtp and graph modes, versus bare scripts doing the same chain.

Everything runs against a local Microsoft 365 on loopback (check_mailgw.sandbox.m365.cloud).

1. Cost per check. A monitoring core starts a fresh process per check, so each side
   runs as a fresh subprocess, interleaved, against the same sandbox (scenario ok):
   - check_mailgw: the installed console script in the mode;
   - bare: msal's acquire_token_for_client, then the same protocol with smtplib
     (EHLO, STARTTLS, EHLO, AUTH XOAUTH2 in two steps, MAIL, RCPT, RSET, QUIT) or
     requests (Graph sendMail without recipients, answered 400 ErrorInvalidRecipients).
   CPU is the child's user+sys time, wall the time around it; medians are compared.
   Like for like, the check is given the secret's end date (--secret-expires), so it does
   what the bare script does; a third side shows what the expiry lookup adds (a Graph
   token in o365-smtp, and the applications request on a connection of its own).
   Both sides keep compiled bytecode in a temporary cache, as an installed package has
   it (--compile-each-run: compile every module each run, PYTHONDONTWRITEBYTECODE-like).
   The check keeps its tenant discovery answer between runs, as it does by default (in a
   cache directory of the benchmark's own); the bare script asks for it each time. Beside
   the times, the number of modules each side imports (one run with -X importtime).

2. The token in parallel with the transport. The token endpoint answers after 1.5 s
   (scenario token-slow) and Exchange sits behind a delay proxy; the check should take
   about max(token, transport up to AUTH) + the round trips of AUTH and the envelope.

3. The discovery cache. The check reaches a distant Microsoft (the sandbox behind a CONNECT
   proxy that delays every chunk, bench/sign_in_relay.py, with --proxy) with an empty cache
   directory each run, and with one kept from an earlier run, interleaved: the identity
   provider's requests per check (as the proxy sees them) and the wall time per check.

Run by hand:  python3 bench/oauth_modes.py [--runs 20] [--parallel-runs 5] [--delay 0.2]
                                           [--cache-runs 10] [--sign-in-delay 0.05]
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import msal
import requests
from children import PLUGIN, Sample, child_environment, imported_modules, ms, run_child
from delay_proxy import DelayProxy
from sign_in_relay import SignInRelay

from check_mailgw.sandbox.check_commands import OAuthMode, oauth_args
from check_mailgw.sandbox.m365.cloud import M365Sandbox, start_m365
from check_mailgw.sandbox.m365.tenant import write_client_secret_file
from check_mailgw.sandbox.plumbing.ca import SandboxCA

MODES: tuple[OAuthMode, ...] = ("o365-smtp", "graph")
SCOPES: dict[OAuthMode, str] = {
    "o365-smtp": "https://outlook.office365.com/.default",
    "graph": "https://graph.microsoft.com/.default",
}
# The secret's end date, given: no expiry lookup, the same chain as the bare scripts.
NO_LOOKUP = ("--secret-expires", "2099-01-01")
# The plugin's step times, as its perfdata names them.
TRANSPORT_TIMES = ("connect_time", "greeting_time", "tls_time")
AFTER_TOKEN_TIMES = ("auth_time", "envelope_time")

# The bare scripts: what someone would write by hand with the same libraries. They run
# with `python -c` so that they import nothing but what they use. Arguments: authority
# (with the tenant), client id, client secret file, CA file, scope, mailbox, then the
# SMTP host:port or the Graph URL.
BARE_TOKEN = """\
import sys
import msal
import requests

authority, client_id, secret_file, ca_file, scope, mailbox, target = sys.argv[1:]
with open(secret_file) as file:
    secret = file.read().strip()
session = requests.Session()
session.trust_env = False
session.verify = ca_file
app = msal.ConfidentialClientApplication(
    client_id, client_credential=secret, authority=authority,
    http_client=session, instance_discovery=False)
result = app.acquire_token_for_client(scopes=[scope])
if "access_token" not in result:
    sys.exit("no token: " + str(result.get("error")))
token = result["access_token"]
"""

BARE_SMTP = """\
import base64
import smtplib
import ssl

host, port = target.rsplit(":", 1)
context = ssl.create_default_context(cafile=ca_file)
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    smtp.ehlo()
    smtp.starttls(context=context)
    smtp.ehlo()
    code, _ = smtp.docmd("AUTH", "XOAUTH2")
    if code != 334:
        sys.exit(f"AUTH XOAUTH2 answered {code}")
    blob = base64.b64encode(f"user={mailbox}\\x01auth=Bearer {token}\\x01\\x01".encode())
    code, _ = smtp.docmd(blob.decode("ascii"))
    if code != 235:
        sys.exit(f"the XOAUTH2 token answered {code}")
    smtp.mail(mailbox)
    smtp.rcpt(mailbox)
    smtp.rset()
"""

BARE_GRAPH = """\
message = {"subject": "check", "body": {"contentType": "Text", "content": "check"},
           "toRecipients": []}
response = session.post(
    f"{target}/v1.0/users/{mailbox}/sendMail",
    json={"message": message, "saveToSentItems": False},
    headers={"Authorization": f"Bearer {token}"}, timeout=30)
if response.status_code != 400 or "ErrorInvalidRecipients" not in response.text:
    sys.exit(f"sendMail answered {response.status_code}")
"""

BARE_PROGRAMS: dict[OAuthMode, str] = {
    "o365-smtp": BARE_TOKEN + BARE_SMTP,
    "graph": BARE_TOKEN + BARE_GRAPH,
}


@dataclass(frozen=True)
class Endpoints:
    """Where the checks go: the sandbox's, with the SMTP port replaceable (a proxy's)."""

    authority: str
    graph_url: str
    smtp_host: str
    smtp_port: int
    tenant_id: str
    client_id: str
    mailbox: str

    @classmethod
    def of(cls, sandbox: M365Sandbox) -> Endpoints:
        return cls(sandbox.authority, sandbox.graph_url, sandbox.smtp_host, sandbox.smtp_port,
                   sandbox.tenant_id, sandbox.client_id, sandbox.mailbox)


@dataclass(frozen=True)
class Inputs:
    """What both sides get: the CA and client secret inputs, and the environment."""

    ca: Path
    secret: Path
    environment: dict[str, str]


def check_argv(endpoints: Endpoints, mode: OAuthMode, inputs: Inputs,
               extra: tuple[str, ...] = NO_LOOKUP) -> list[str]:
    return [str(PLUGIN), *oauth_args(endpoints, mode, inputs.ca, inputs.secret), *extra]


def bare_argv(endpoints: Endpoints, mode: OAuthMode, inputs: Inputs) -> list[str]:
    target = (f"{endpoints.smtp_host}:{endpoints.smtp_port}" if mode == "o365-smtp"
              else endpoints.graph_url)
    return [sys.executable, "-c", BARE_PROGRAMS[mode],
            f"{endpoints.authority}/{endpoints.tenant_id}", endpoints.client_id,
            str(inputs.secret), str(inputs.ca), SCOPES[mode], endpoints.mailbox, target]


@dataclass(frozen=True)
class Comparison:
    """Medians of one mode: check_mailgw against the bare script."""

    mode: OAuthMode
    check: list[Sample]
    bare: list[Sample]
    with_lookup: list[Sample]
    modules: tuple[int, int]  # imported by the check, by the bare script

    @staticmethod
    def median(samples: list[Sample], field: Callable[[Sample], float]) -> float:
        return statistics.median(field(sample) for sample in samples)

    def row(self) -> str:
        cpu = [self.median(side, lambda s: s.cpu) for side in (self.check, self.bare)]
        wall = [self.median(side, lambda s: s.wall) for side in (self.check, self.bare)]
        lookup_cpu = self.median(self.with_lookup, lambda s: s.cpu)
        lookup_wall = self.median(self.with_lookup, lambda s: s.wall)
        return (f"{self.mode:<10} {ms(cpu[0]):>9} {ms(cpu[1]):>9} {cpu[0] / cpu[1]:6.2f}"
                f"   {ms(wall[0]):>10} {ms(wall[1]):>10} {wall[0] / wall[1]:6.2f}"
                f"   {ms(lookup_cpu - cpu[0]):>8} {ms(lookup_wall - wall[0]):>8}"
                f"   {self.modules[0]:>4} {self.modules[1]:>4}")


def compare_modes(endpoints: Endpoints, inputs: Inputs, runs: int) -> list[Comparison]:
    comparisons = []
    for mode in MODES:
        sides = {"check_mailgw": check_argv(endpoints, mode, inputs),
                 "bare": bare_argv(endpoints, mode, inputs),
                 "with lookup": check_argv(endpoints, mode, inputs, extra=())}
        for name, argv in sides.items():  # warm the page cache and the sandbox
            run_child(argv, f"{mode} {name}", inputs.environment)
        modules = (imported_modules(sides["check_mailgw"], inputs.environment),
                   imported_modules(sides["bare"], inputs.environment))
        samples: dict[str, list[Sample]] = {name: [] for name in sides}
        for run in range(runs):
            # Alternate who goes first, so neither side always follows the other.
            order = list(sides) if run % 2 == 0 else list(reversed(sides))
            for name in order:
                samples[name].append(run_child(sides[name], f"{mode} {name}", inputs.environment))
        comparisons.append(Comparison(mode, samples["check_mailgw"], samples["bare"],
                                      samples["with lookup"], modules))
    return comparisons


@dataclass(frozen=True)
class ParallelToken:
    """The o365-smtp check with a slow token endpoint and a distant Exchange."""

    token: float  # a bare msal acquire, alone
    transport: float  # a bare smtplib EHLO, STARTTLS, EHLO through the proxy, alone
    checks: list[Sample]

    def median(self, labels: tuple[str, ...]) -> float:
        return statistics.median(sum(check.perfdata()[label] for label in labels)
                                 for check in self.checks)

    def lines(self) -> list[str]:
        after_token = self.median(AFTER_TOKEN_TIMES)
        bound = max(self.token, self.transport) + after_token
        total = self.median(("total_time",))
        wall = statistics.median(check.wall for check in self.checks)
        return [
            f"parallel token: token {self.token:.2f} s, transport {self.transport:.2f} s, "
            f"auth+envelope {after_token:.2f} s -> check {total:.2f} s "
            f"(max+auth {bound:.2f} s, {over(total, bound)})",
            f"  the check's own step times: token {self.median(('token_time',)):.2f} s, "
            f"transport {self.median(TRANSPORT_TIMES):.2f} s; process wall {wall:.2f} s "
            f"(with interpreter start and imports, {over(wall, bound)}); "
            f"one after the other would be {self.token + self.transport + after_token:.2f} s",
        ]


def over(measured: float, bound: float) -> str:
    return f"{(measured / bound - 1) * 100:+.1f} %"


def acquire_token_alone(endpoints: Endpoints, inputs: Inputs) -> float:
    """Wall of msal's tenant discovery and token request, a fresh session each time."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(inputs.ca)
    start = time.monotonic()
    app = msal.ConfidentialClientApplication(
        endpoints.client_id, client_credential=inputs.secret.read_text().strip(),
        authority=f"{endpoints.authority}/{endpoints.tenant_id}", http_client=session,
        instance_discovery=False)
    result = app.acquire_token_for_client(scopes=[SCOPES["o365-smtp"]])
    elapsed = time.monotonic() - start
    session.close()
    if "access_token" not in result:
        raise SystemExit(f"no token: {result.get('error')}")
    return elapsed


def transport_alone(endpoints: Endpoints, inputs: Inputs) -> float:
    """Wall of connect, greeting, EHLO, STARTTLS and EHLO: the SMTP side up to AUTH."""
    context = ssl.create_default_context(cafile=str(inputs.ca))
    start = time.monotonic()
    smtp = smtplib.SMTP(endpoints.smtp_host, endpoints.smtp_port, timeout=30)
    try:
        smtp.ehlo()
        smtp.starttls(context=context)
        smtp.ehlo()
        return time.monotonic() - start
    finally:
        smtp.close()  # not QUIT: nothing more to measure


def measure_parallel_token(ca: SandboxCA, inputs: Inputs, runs: int,
                           delay: float) -> ParallelToken:
    with start_m365(ca=ca, scenario="token-slow") as sandbox:
        proxy = DelayProxy(sandbox.smtp_port, delay)
        try:
            endpoints = replace(Endpoints.of(sandbox), smtp_port=proxy.port)
            token = statistics.median(acquire_token_alone(endpoints, inputs) for _ in range(3))
            transport = statistics.median(transport_alone(endpoints, inputs)
                                          for _ in range(3))
            argv = check_argv(endpoints, "o365-smtp", inputs)
            checks = [run_child(argv, "o365-smtp check (token-slow)", inputs.environment)
                      for _ in range(runs)]
        finally:
            proxy.stop()
    return ParallelToken(token, transport, checks)


@dataclass(frozen=True)
class CacheSide:
    """Checks of one mode with or without a kept discovery answer, through the relay."""

    asked: list[int]  # the identity provider's requests of each check
    samples: list[Sample]

    def row(self, mode: OAuthMode, name: str) -> str:
        walls = sorted(sample.wall for sample in self.samples)
        tokens = sorted(sample.perfdata()["token_time"] for sample in self.samples)
        asked = sorted(set(self.asked))
        counted = str(asked[0]) if len(asked) == 1 else f"{asked[0]}-{asked[-1]}"
        return (f"{mode:<10} {name:<14} {counted:>8}   {ms(statistics.median(walls)):>7} "
                f"({ms(walls[0])}-{ms(walls[-1])})   {ms(statistics.median(tokens)):>7} "
                f"({ms(tokens[0])}-{ms(tokens[-1])})")


def measure_discovery_cache(ca: SandboxCA, inputs: Inputs, runs: int, delay: float,
                            directory: Path) -> dict[OAuthMode, dict[str, CacheSide]]:
    results: dict[OAuthMode, dict[str, CacheSide]] = {}
    with start_m365(ca=ca, scenario="ok") as sandbox, SignInRelay(ca, delay) as relay:
        endpoints = Endpoints.of(sandbox)
        for mode in MODES:
            argv = [*check_argv(endpoints, mode, inputs), "--proxy", relay.url]
            kept = {**inputs.environment, "XDG_CACHE_HOME": str(directory / f"kept-{mode}")}
            run_child(argv, f"{mode} check (cache)", kept)  # the run that keeps the answer
            asked: dict[str, list[int]] = {"without cache": [], "with cache": []}
            samples: dict[str, list[Sample]] = {"without cache": [], "with cache": []}
            for run in range(runs):
                empty = {**inputs.environment,
                         "XDG_CACHE_HOME": tempfile.mkdtemp(dir=directory, prefix="empty-")}
                order = [("without cache", empty), ("with cache", kept)]
                for name, environment in order if run % 2 == 0 else reversed(order):
                    relay.clear()
                    samples[name].append(run_child(argv, f"{mode} check ({name})", environment))
                    asked[name].append(sum(1 for _, path in relay.requests()
                                           if not path.startswith("/v1.0/")))
            results[mode] = {name: CacheSide(asked[name], samples[name]) for name in asked}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="checks per side and mode")
    parser.add_argument("--parallel-runs", type=int, default=5,
                        help="checks with the slow token and the distant Exchange")
    parser.add_argument("--delay", type=float, default=0.2,
                        help="one-way delay to Exchange in seconds, in the parallel case")
    parser.add_argument("--cache-runs", type=int, default=10,
                        help="checks per side with and without the discovery cache")
    parser.add_argument("--sign-in-delay", type=float, default=0.05,
                        help="one-way delay to the identity provider in seconds, in the "
                        "discovery cache case")
    parser.add_argument("--compile-each-run", action="store_true",
                        help="no bytecode cache: every module compiled in every run")
    args = parser.parse_args()
    if not PLUGIN.exists():
        raise SystemExit(f"{PLUGIN} missing: install the package first (pip install -e .)")

    ca = SandboxCA()
    with tempfile.TemporaryDirectory() as directory:
        pycache = None if args.compile_each_run else Path(directory) / "pycache"
        # The check's discovery cache in the benchmark's directory, not the user's.
        environment = {**child_environment(pycache),
                       "XDG_CACHE_HOME": str(Path(directory) / "cache")}
        inputs = Inputs(ca.write_ca(Path(directory) / "ca.pem"),
                        write_client_secret_file(Path(directory) / "client-secret"),
                        environment)
        with start_m365(ca=ca, scenario="ok") as sandbox:
            comparisons = compare_modes(Endpoints.of(sandbox), inputs, args.runs)
        parallel = measure_parallel_token(ca, inputs, args.parallel_runs, args.delay)
        cached = measure_discovery_cache(ca, inputs, args.cache_runs, args.sign_in_delay,
                                         Path(directory))

    cache = "compiled each run" if args.compile_each_run else "cached"
    print(f"{args.runs} runs per side, medians; CPU = user+sys of the child process; "
          f"bytecode {cache}")
    print("mode       check CPU  bare CPU  ratio   check wall  bare wall  ratio"
          "   + expiry lookup: CPU, wall   modules: check bare")
    for comparison in comparisons:
        print(comparison.row())
    print(f"one-way delay to Exchange {args.delay * 1000:.0f} ms, "
          f"{args.parallel_runs} checks, medians")
    for line in parallel.lines():
        print(line)
    print(f"discovery cache: one-way delay to the identity provider and Graph "
          f"{args.sign_in_delay * 1000:.0f} ms (RTT {args.sign_in_delay * 2000:.0f} ms) "
          f"through a CONNECT proxy, {args.cache_runs} checks per side, medians (min-max)")
    print("mode       side           requests   wall per check        token_time")
    for mode, sides in cached.items():
        for name, side in sides.items():
            print(side.row(mode, name))
        saved = (statistics.median(s.wall for s in sides["without cache"].samples)
                 - statistics.median(s.wall for s in sides["with cache"].samples))
        print(f"{'':<10} saved {ms(saved)} per check, "
              f"{saved / (2 * args.sign_in_delay):.1f} RTT")


if __name__ == "__main__":
    main()
