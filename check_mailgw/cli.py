"""Command line: options and config profile -> settings -> the mode's chain -> output."""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from check_mailgw import __version__
from check_mailgw.errors import SettingsError
from check_mailgw.microsoft.clouds import CLOUDS
from check_mailgw.modes import MODES, run_mode
from check_mailgw.secret import RedactingStream, Redactor
from check_mailgw.settings import (
    CLIENT_SECRET_ENV,
    CONFIG_KEYS,
    KEY_PASSPHRASE_ENV,
    PASSWORD_ENV,
    Settings,
    build_settings,
)

UNKNOWN_EXIT = 3
PREFIX = "MAILGW"


class PluginArgumentParser(argparse.ArgumentParser):
    """An argument parser that fails with UNKNOWN (exit 3) instead of argparse's exit 2."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # --help and --version exit 3, as the monitoring-plugins guidelines ask.
        if message:
            sys.stdout.write(message)
        sys.exit(UNKNOWN_EXIT)


def build_parser() -> PluginArgumentParser:
    parser = PluginArgumentParser(
        prog="check_mailgw",
        description="Checks a mail gateway end to end, the way the application that sends "
        "through it does: DNS, TCP, TLS, authentication, sender and recipient, and "
        "optionally a real test message.",
        epilog=f"Secrets: prefer --password-file or ${PASSWORD_ENV}, --client-secret-file or "
        f"${CLIENT_SECRET_ENV}; a --password or --client-secret on the command line is "
        "visible to every user in the process list. "
        "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for --help and --version).",
        argument_default=argparse.SUPPRESS,
        add_help=False,
    )
    gateway = parser.add_argument_group("gateway (the settings form)")
    gateway.add_argument("--mode", choices=list(MODES),
                         help="gateway type: smtp (username and password), o365-smtp (Exchange "
                         "Online SMTP with OAuth2), graph (Microsoft Graph sendMail); "
                         "default smtp")
    gateway.add_argument("-H", "--hostname", "--server", dest="hostname", metavar="HOST",
                         help="Server: host name or IP address of the SMTP gateway (o365-smtp: "
                         "the cloud's SMTP host)")
    gateway.add_argument("-p", "--port", metavar="PORT",
                         help="Port: default 587 with --tls, 465 with --tls implicit, else 25 "
                         "(o365-smtp: 587 with STARTTLS)")
    gateway.add_argument("--tls", nargs="?", const="auto", metavar="starttls|implicit",
                         help="Secure TLS connection: STARTTLS, or implicit TLS on port 465 "
                         "(--tls alone picks by port)")
    gateway.add_argument("--from", dest="sender", metavar="ADDRESS",
                         help="From: the sender address the gateway uses")
    gateway.add_argument("--auth", action=argparse.BooleanOptionalAction,
                         help="Need authentication (default: on when --username is given)")
    gateway.add_argument("-U", "--username", metavar="USER", help="Username for SMTP AUTH")
    gateway.add_argument("--password-file", metavar="FILE",
                         help="file holding the Password (first line)")
    gateway.add_argument("-P", "--password", metavar="PASSWORD",
                         help="Password (visible in the process list: prefer --password-file "
                         f"or ${PASSWORD_ENV})")

    oauth = parser.add_argument_group("Microsoft 365 app (o365-smtp, graph)")
    oauth.add_argument("--tenant-id", metavar="GUID|DOMAIN",
                       help="Tenant ID: the directory (tenant) ID, or a domain of the tenant")
    oauth.add_argument("--client-id", metavar="GUID",
                       help="Client ID: the application (client) ID of the Entra ID app")
    oauth.add_argument("--client-secret-file", metavar="FILE",
                       help="file holding the Client Secret's Value (first line)")
    oauth.add_argument("--client-secret", metavar="VALUE",
                       help="Client Secret (visible in the process list: prefer "
                       f"--client-secret-file or ${CLIENT_SECRET_ENV})")
    oauth.add_argument("--client-certificate", metavar="FILE",
                       help="sign in with a certificate instead of a secret: PEM with the "
                       "certificate and its private key, or a PKCS#12 .pfx")
    oauth.add_argument("--client-key", metavar="FILE",
                       help="the certificate's private key, when not in --client-certificate")
    oauth.add_argument("--client-key-passphrase-file", metavar="FILE",
                       help="file holding the passphrase of an encrypted key or .pfx "
                       f"(or ${KEY_PASSPHRASE_ENV})")
    oauth.add_argument("--scope", metavar="SCOPES",
                       help="OAuth Scope, several separated by spaces (default: the mode's: "
                       "https://outlook.office365.com/.default or "
                       "https://graph.microsoft.com/.default)")
    oauth.add_argument("--cloud", choices=list(CLOUDS),
                       help="Microsoft cloud: sets the sign-in, Graph and SMTP hosts "
                       "(default global)")
    oauth.add_argument("--authority", metavar="URL",
                       help="sign-in host, e.g. https://login.microsoftonline.com (the tenant "
                       "is appended; overrides --cloud)")
    oauth.add_argument("--graph-url", metavar="URL",
                       help="Graph host, e.g. https://graph.microsoft.com (overrides --cloud)")
    oauth.add_argument("--proxy", metavar="URL",
                       help="HTTP proxy for the HTTPS calls, http://[user:password@]host:port "
                       "(default: $HTTPS_PROXY, honouring $NO_PROXY)")
    oauth.add_argument("--azure-region", metavar="REGION",
                       help="use Entra ID's regional token service (off unless given)")
    oauth.add_argument("--token-warning", metavar="RANGE",
                       help="token acquisition time in seconds: WARNING outside RANGE")
    oauth.add_argument("--token-critical", metavar="RANGE",
                       help="token acquisition time in seconds: CRITICAL outside RANGE")

    expiry = parser.add_argument_group("credential expiry (o365-smtp, graph)")
    expiry.add_argument("--check", choices=["full", "expiry"],
                        help="full: the whole chain, with the credential's expiry when known "
                        "(default); expiry: only the token and the expiry, no mail traffic "
                        "(a daily service)")
    expiry.add_argument("--secret-warning", metavar="DAYS",
                        help="WARNING when the client secret or certificate in use has fewer "
                        "days left (default 30)")
    expiry.add_argument("--secret-critical", metavar="DAYS",
                        help="CRITICAL when fewer days are left (default 7); expired is always "
                        "CRITICAL")
    expiry.add_argument("--secret-expires", metavar="YYYY-MM-DD",
                        help="the client secret's end date, instead of reading it from Graph "
                        "(which needs Application.Read.All)")
    expiry.add_argument("--expiry-lookup-denied", choices=["warning", "critical", "info"],
                        help="state when Graph refuses to show the app's credentials "
                        "(default warning)")
    # Pins "now" for the expiry arithmetic, so tests get exact days; not for production use.
    expiry.add_argument("--now", help=argparse.SUPPRESS)

    probe = parser.add_argument_group("what to prove")
    probe.add_argument("--send-to", metavar="ADDRESS",
                       help="send one real test message to ADDRESS (default: nothing is sent; "
                       "MAIL FROM/RCPT TO are answered, then RSET)")
    probe.add_argument("-F", "--helo", metavar="NAME", help="name for EHLO (default: hostname)")
    family = probe.add_mutually_exclusive_group()
    family.add_argument("-4", dest="address_family", action="store_const", const=4,
                        help="use IPv4 only")
    family.add_argument("-6", dest="address_family", action="store_const", const=6,
                        help="use IPv6 only")
    probe.add_argument("--dns-server", metavar="IP[:PORT]",
                       help="ask this DNS server instead of the system's resolver")
    probe.add_argument("--allow-cleartext-auth", action="store_true",
                       help="allow sending the password without TLS (refused otherwise)")
    probe.add_argument("--basic-auth-retirement", choices=["warning", "info"],
                       help="smtp against Exchange Online: a working password login is a "
                       "WARNING (default) or information, as Microsoft retires it")

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--ca-file", metavar="FILE",
                     help="trust the CA certificates in FILE instead of the system's")
    tls.add_argument("--insecure", action="store_true",
                     help="do not verify the server certificate (not recommended)")
    tls.add_argument("-D", "--certificate-days", metavar="WARN[,CRIT]",
                     help="days left on the server certificate below which to warn "
                     "(default 14,7)")

    limits = parser.add_argument_group("thresholds and time")
    limits.add_argument("-w", "--warning", metavar="RANGE",
                        help="total time in seconds: WARNING outside RANGE (e.g. 5)")
    limits.add_argument("-c", "--critical", metavar="RANGE",
                        help="total time in seconds: CRITICAL outside RANGE (e.g. 10)")
    limits.add_argument("-t", "--timeout", metavar="SECONDS",
                        help="the whole run's time limit (default 10)")
    limits.add_argument("--timeout-state", choices=["ok", "warning", "critical", "unknown"],
                        help="state when -t runs out (default unknown)")

    general = parser.add_argument_group("general")
    general.add_argument("--config", metavar="FILE", help="TOML file with named profiles")
    general.add_argument("--profile", metavar="NAME", help="profile to use from --config")
    general.add_argument("--format", dest="output_format", choices=["nagios", "json"],
                         help="output format (default nagios)")
    general.add_argument("-v", "--verbose", action="count", default=0,
                         help="-v steps and fixes, -vv protocol dialogue, -vvv everything")
    general.add_argument("-V", "--version", action="version",
                         version=f"check_mailgw {__version__}")
    general.add_argument("-h", "--help", action="help", help="show this help and exit")
    return parser


def parse_settings(argv: Sequence[str] | None) -> Settings:
    options = vars(build_parser().parse_args(argv))
    verbosity = options.pop("verbose", 0)
    config, profile_name = options.pop("config", None), options.pop("profile", None)
    profile = {}
    if config:
        from check_mailgw.config import load_profile

        profile = load_profile(config, profile_name, CONFIG_KEYS)
    elif profile_name:
        raise SettingsError("--profile needs --config FILE")
    return build_settings(options, profile, os.environ, verbosity)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    redactor = Redactor()
    out = RedactingStream(sys.stdout, redactor)
    verbosity = 0
    try:
        settings = parse_settings(argv)
        verbosity = settings.verbosity
        for secret in settings.secrets:
            redactor.add(secret)
        import nagiosplugin

        from check_mailgw.output import as_json, build_check

        check = build_check(settings, lambda: run_mode(settings, redactor))
        if settings.output_format == "json":
            check()
            out.write(as_json(check) + "\n")
            sys.exit(check.exitcode)
        nagiosplugin.Runtime().stdout = out
        # A watchdog past -t, in case a step ever ignores the deadline.
        check.main(verbose=settings.verbosity, timeout=math.ceil(settings.timeout) + 2)
    except SettingsError as error:
        out.write(f"{PREFIX} UNKNOWN - {error}\n")
    except KeyboardInterrupt:
        out.write(f"{PREFIX} UNKNOWN - interrupted\n")
    except Exception as error:
        out.write(f"{PREFIX} UNKNOWN - {describe_crash(error)}\n")
        if verbosity >= 3:
            out.write(traceback.format_exc())
    sys.exit(UNKNOWN_EXIT)


def describe_crash(error: Exception) -> str:
    import nagiosplugin

    if isinstance(error, nagiosplugin.Timeout):
        return f"timed out: the run exceeded its time limit ({error}s)"
    return f"internal error: {type(error).__name__}: {error} (run with -vvv for details)"
