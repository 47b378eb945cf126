"""mailgw-sandbox: run local imitations of mail gateways and Microsoft 365, or demo the plugin."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from check_mailgw.sandbox.accounts import (
    SANDBOX_USER,
    can_enter,
    hand_over,
)
from check_mailgw.sandbox.check_commands import (
    CA_FILE_NAME,
    CLIENT_CERTIFICATE_FILE_NAME,
    CLIENT_SECRET_FILE_NAME,
    DEMO_FAILURES,
    PASSWORD_FILE_NAME,
    PORT_BASE_MAX,
    PORT_BASE_MIN,
    DemoFailure,
    SandboxPorts,
    expiry_commands,
    oauth_args,
    oauth_commands,
    shell_line,
    smtp_commands,
)
from check_mailgw.sandbox.config_file import EXPIRY_PROFILE, write_config
from check_mailgw.sandbox.m365.tenant import (
    SANDBOX_OPS_MAILBOX,
    SANDBOX_TENANT_DOMAIN,
)
from check_mailgw.sandbox.plumbing.background import PortInUse
from check_mailgw.sandbox.plumbing.dns_server import DEFAULT_RECORDS, DnsServer
from check_mailgw.sandbox.scenarios import PART_TITLES, SCENARIOS

if TYPE_CHECKING:
    # The servers need the sandbox extra: imported once it is known to be there.
    from check_mailgw.sandbox.m365.cloud import M365Sandbox
    from check_mailgw.sandbox.mail_sandbox import MailSandbox
    from check_mailgw.sandbox.plumbing.ca import SandboxCA
    from check_mailgw.sandbox.smtp.listeners import Security, SmtpServer

# The "sandbox" extra of pyproject.toml, by import name. Not dependencies of the plugin:
# a production install has no use for an SMTP server library.
SANDBOX_REQUIREMENTS = {"aiosmtpd": "aiosmtpd>=1.4", "trustme": "trustme>=1.1"}
MISSING_REQUIREMENTS_EXIT = 3
DEFAULT_PORT_BASE = 2500
# Generous: a check's own timeout should always come first.
DEMO_CHECK_TIMEOUT = 120.0
READY_LINE = "Serving until Ctrl-C or SIGTERM."
ERROR_EXIT = 2


def _existing_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {name}") from None
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailgw-sandbox",
        description=(
            "Run a local imitation of a mail gateway (SMTP with STARTTLS, implicit TLS "
            "and plain, plus DNS) and of Microsoft 365 (an Entra ID-like identity "
            "provider, Graph sendMail and Exchange SMTP with XOAUTH2) on loopback, and "
            "print the check_mailgw command lines that check them."
        ),
    )
    parser.add_argument(
        "--scenario",
        default="ok",
        choices=list(SCENARIOS),
        metavar="NAME",
        help="how the servers behave (default: ok; see --list-scenarios)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where to write ca.pem, password, client-secret and client-certificate.pem "
        "(default: a new temporary directory, removed on exit)",
    )
    parser.add_argument(
        "--user",
        type=_existing_user,
        metavar="NAME",
        help="give the files (and a directory the sandbox makes) to the user who runs the "
        "checks, e.g. nagios; secrets stay mode 0600 (needs root)",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        metavar="N",
        help="listen on N+87 (STARTTLS), N-35 (implicit TLS), N+25 (plain), N+53 (DNS), "
        "N-57 (HTTPS: identity provider and Graph), N+88 (Exchange SMTP): 2587, 2465, "
        "2525, 2553, 2443 and 2588 by default; 0 picks free ports",
    )
    parser.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="also write a check_mailgw config file with a profile per mode (smtp, "
        f"o365-smtp, graph) and {EXPIRY_PROFILE}, pointing at the running sandbox",
    )
    parser.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run the printed checks once, and a failing scenario for each mode, show "
        "their output, and exit 0 if each ended as expected",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_scenarios:
        print(_scenario_list())
        return 0
    if args.port_base and not PORT_BASE_MIN <= args.port_base <= PORT_BASE_MAX:
        parser.error(f"--port-base must be 0 or between {PORT_BASE_MIN} and {PORT_BASE_MAX}")
    missing = missing_requirements()
    if missing:
        print(f"mailgw-sandbox: {missing}", file=sys.stderr)
        return MISSING_REQUIREMENTS_EXIT
    # aiosmtpd reports every odd client at WARNING; the sandbox expects odd clients.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130


def missing_requirements() -> str | None:
    """What of the sandbox extra is missing, and the command that installs it where this
    interpreter looks; None if nothing is."""
    missing = [module for module in SANDBOX_REQUIREMENTS if find_spec(module) is None]
    if not missing:
        return None
    quoted = " ".join(shlex.quote(SANDBOX_REQUIREMENTS[module]) for module in missing)
    venv = Path(sys.prefix)
    if (venv / "pipx_metadata.json").exists():
        fix = (f"pipx inject {venv.name} {quoted} "
               "(or, from the clone: pipx install --force '.[sandbox]')")
    else:
        fix = f"{shlex.quote(sys.executable)} -m pip install {quoted}"
    names = " and ".join(missing)
    return (f"the sandbox needs {names} (the check_mailgw[sandbox] extra), not installed for "
            f"{sys.executable}: {fix}")


def _run(args: argparse.Namespace) -> int:
    from check_mailgw.sandbox.plumbing.ca import SandboxCA

    temporary = args.dir is None
    directory: Path = Path(tempfile.mkdtemp(prefix="mailgw-sandbox-")) if temporary else args.dir
    # Written so far, for --user: the directory itself only if the sandbox made it.
    written: list[Path] = [directory] if temporary or not directory.exists() else []
    try:
        ca = SandboxCA()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"mailgw-sandbox: cannot write the sandbox files: {error}", file=sys.stderr)
            return ERROR_EXIT
        with ExitStack() as stack:
            # Caught from the start, so that a signal during startup still stops cleanly.
            stop = None if args.demo else stack.enter_context(_stop_signals())
            try:
                sandbox = _start_servers(stack, ca, args.scenario, args.port_base)
            except PortInUse as error:
                print(f"mailgw-sandbox: {error}", file=sys.stderr)
                return ERROR_EXIT
            except OSError as error:
                print(f"mailgw-sandbox: cannot start the servers: {error}", file=sys.stderr)
                return ERROR_EXIT
            dns, smtp, cloud, ports = sandbox.dns, sandbox.smtp, sandbox.cloud, sandbox.ports
            try:
                # The app's certificate is made with its credentials: once the servers run.
                written += sandbox.write_files(directory)
            except OSError as error:
                print(f"mailgw-sandbox: cannot write the sandbox files: {error}", file=sys.stderr)
                return ERROR_EXIT
            commands = smtp_commands(directory, ports) + oauth_commands(directory, ports)
            expiry = expiry_commands(directory, ports)
            if args.write_config is not None:
                try:
                    written.append(write_config(args.write_config, directory, ports, cloud))
                except OSError as error:
                    print(f"mailgw-sandbox: cannot write the config: {error}", file=sys.stderr)
                    return ERROR_EXIT
            if args.user is not None:
                try:
                    hand_over(written, args.user)
                except OSError as error:
                    print(f"mailgw-sandbox: --user {args.user}: cannot give it the files: "
                          f"{error}", file=sys.stderr)
                    return ERROR_EXIT
                if not can_enter(directory, args.user):
                    print(f"mailgw-sandbox: note: {args.user} cannot enter {directory} or a "
                          "directory above it: give it the way in, or another --dir",
                          file=sys.stderr, flush=True)
            print(
                _banner(args.scenario, directory, temporary, dns, smtp, cloud, commands, expiry,
                        args.user),
                flush=True,
            )
            if args.write_config is not None:
                print(_config_note(args.write_config, temporary), flush=True)
            if stop is None:
                failures = _start_failures(stack, ca, directory, ports)
                return _run_demo(commands + expiry, failures)
            print(READY_LINE, flush=True)
            # A timeout keeps the wait responsive to signals on every platform.
            while not stop.wait(0.5):
                pass
            print("Stopping.", flush=True)
            return 0
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the context lasts."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _scenario_list() -> str:
    """Every scenario, under the part of the sandbox it changes."""
    width = max(len(name) for name in SCENARIOS)
    blocks: list[str] = []
    for part, title in PART_TITLES.items():
        members = [scenario for scenario in SCENARIOS.values() if scenario.part == part]
        if members:
            lines = [f"  {s.name:<{width}}  {s.description}" for s in members]
            blocks.append("\n".join([f"{title}:", *lines]))
    return "\n\n".join(blocks)


def _start_servers(
    stack: ExitStack, ca: SandboxCA, scenario: str, port_base: int
) -> MailSandbox:
    from check_mailgw.sandbox.mail_sandbox import start_mail_sandbox

    ports = SandboxPorts.from_base(port_base)
    return stack.enter_context(start_mail_sandbox(ca=ca, scenario=scenario, ports=ports))


def _banner(
    scenario: str,
    directory: Path,
    temporary: bool,
    dns: DnsServer,
    smtp: dict[Security, SmtpServer],
    cloud: M365Sandbox,
    commands: list[list[str]],
    expiry: list[list[str]],
    user: str | None = None,
) -> str:
    names = ", ".join(f"{name} -> {' '.join(ips)}" for name, ips in DEFAULT_RECORDS.items())
    where = f"{directory} (removed on exit)" if temporary else str(directory)
    if user is not None:
        where += f", owned by {user}"
    secret_file = directory / CLIENT_SECRET_FILE_NAME
    certificate = cloud.app.certificate
    lines = [
        f'check_mailgw sandbox, scenario "{scenario}": {SCENARIOS[scenario].description}',
        f"  SMTP with STARTTLS    {smtp['starttls'].host}:{smtp['starttls'].port}",
        f"  SMTP with TLS         {smtp['implicit'].host}:{smtp['implicit'].port}",
        f"  SMTP, plain           {smtp['plain'].host}:{smtp['plain'].port}",
        f"  DNS (UDP and TCP)     {dns.address}  {names}",
        f"  account               {SANDBOX_USER}, password in {directory / PASSWORD_FILE_NAME}",
        f"  identity + Graph      {cloud.authority}  (HTTPS: Entra ID-like tokens, sendMail)",
        f"  Exchange SMTP         {cloud.smtp_host}:{cloud.smtp_port}  (STARTTLS, AUTH XOAUTH2)",
        f"  tenant id             {cloud.tenant_id}  (or {SANDBOX_TENANT_DOMAIN})",
        f"  client id             {cloud.client_id}, secret in {secret_file}",
        f"  client certificate    {directory / CLIENT_CERTIFICATE_FILE_NAME}  (certificate and "
        f"key; thumbprint {certificate.sha1_thumbprint}, ends "
        f"{certificate.not_after:%Y-%m-%d})",
        f"  mailboxes             {cloud.mailbox}, {SANDBOX_OPS_MAILBOX}",
        f"  CA certificate        {directory / CA_FILE_NAME}",
        f"  files                 {where}",
        "",
        "Check it with:",
        *(f"  {shell_line(arguments)}" for arguments in commands),
        "",
        "Credential expiry, as a daily service (with the certificate; or add --check expiry "
        "to the graph line above):",
        *(f"  {shell_line(arguments)}" for arguments in expiry),
        "",
    ]
    return "\n".join(lines)


def _config_note(path: Path, temporary: bool) -> str:
    lines = [
        f"Config file written to {path}; use it with:",
        f"  {shell_line(['--config', str(path), '--profile', 'smtp'])}"
        f"   (or --profile o365-smtp, graph, {EXPIRY_PROFILE})",
    ]
    if temporary:
        lines.append("  (it names files in the temporary directory: give --dir to keep them)")
    return "\n".join(lines) + "\n"


def _start_failures(
    stack: ExitStack, ca: SandboxCA, directory: Path, ports: SandboxPorts
) -> list[tuple[DemoFailure, list[str]]]:
    """For the demo: a server of its own, on free ports, for each mode's failing scenario,
    and the command line that checks it."""
    from check_mailgw.sandbox.m365.cloud import start_m365
    from check_mailgw.sandbox.smtp.listeners import start_smtp

    failures: list[tuple[DemoFailure, list[str]]] = []
    for failure in DEMO_FAILURES:
        if failure.mode == "smtp":
            server = stack.enter_context(start_smtp(
                security="starttls", scenario=failure.scenario, ca=ca, host=ports.host))
            own = dataclasses.replace(ports, starttls=server.port)
            arguments = smtp_commands(directory, own)[0]  # STARTTLS with the password
        else:
            cloud = stack.enter_context(start_m365(ca=ca, scenario=failure.scenario,
                                                   host=ports.host))
            arguments = oauth_args(cloud, failure.mode, directory / CA_FILE_NAME,
                                   directory / CLIENT_SECRET_FILE_NAME)
        failures.append((failure, arguments))
    return failures


def _run_check(arguments: list[str]) -> int | None:
    """Run one check at -v and show its output; its exit code, None if it hung."""
    arguments = [*arguments, "-v"]
    print(f"$ {shell_line(arguments)}", flush=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "check_mailgw", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=DEMO_CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  (no result within {DEMO_CHECK_TIMEOUT:.0f} s)\n", flush=True)
        return None
    if done.stdout.strip():
        print(textwrap.indent(done.stdout.rstrip(), "  "))
    return done.returncode


def _run_demo(commands: list[list[str]], failures: list[tuple[DemoFailure, list[str]]]) -> int:
    passed = 0
    for arguments in commands:
        code = _run_check(arguments)
        if code is not None:
            print(f"  exit code {code}\n", flush=True)
        passed += code == 0
    print("Expected failures, one per mode: each check runs against a server of its own "
          "playing a failing scenario, and must fail.\n", flush=True)
    as_expected = 0
    for failure, arguments in failures:
        scenario = SCENARIOS[failure.scenario]
        print(f"# EXPECTED FAILURE, {failure.mode} mode, scenario {scenario.name}: "
              f"{scenario.description}", flush=True)
        code = _run_check(arguments)
        if code is not None:
            verdict = "as expected" if code == failure.exit_code else \
                f"expected {failure.exit_code}"
            print(f"  exit code {code} ({verdict})\n", flush=True)
        as_expected += code == failure.exit_code
    print(f"{passed} of {len(commands)} checks exited 0.", flush=True)
    print(f"{as_expected} of {len(failures)} expected failures failed as expected.", flush=True)
    print("These command lines need a running sandbox: this demo's servers and files are "
          "gone now. Run mailgw-sandbox (without --demo): it prints the same lines with its "
          "own files and serves until Ctrl-C; mailgw-sandbox --scenario NAME plays a "
          "failure.", flush=True)
    return 0 if passed == len(commands) and as_expected == len(failures) else 1
