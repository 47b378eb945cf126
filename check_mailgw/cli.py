"""Command line: options and config profile -> settings -> the mode's chain -> output."""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NoReturn

from check_mailgw import __version__
from check_mailgw.credentials import CLIENT_SECRET_ENV, KEY_PASSPHRASE_ENV, PASSWORD_ENV
from check_mailgw.errors import SettingsError
from check_mailgw.microsoft.clouds import CLOUDS
from check_mailgw.modes import MODES, run_mode
from check_mailgw.secret import RedactingStream, Redactor
from check_mailgw.validators import CHECKS

if TYPE_CHECKING:
    from check_mailgw.settings import Settings

UNKNOWN_EXIT = 3


class PluginArgumentParser(argparse.ArgumentParser):
    """An argument parser that fails with UNKNOWN (exit 3) instead of argparse's exit 2."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(message)

    def parse(self, arguments: Sequence[str]) -> argparse.Namespace:
        """The options; an unknown one is refused by name, with the closest known one."""
        options, unknown = self.parse_known_args(arguments)
        if unknown:
            raise SettingsError(unknown_arguments(unknown, self.long_options()))
        return options

    def long_options(self) -> list[str]:
        """The --options that --help shows: the ones worth suggesting."""
        return [name for action in self._actions if action.help != argparse.SUPPRESS
                for name in action.option_strings if name.startswith("--")]

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # --help and --version exit 3, as the monitoring-plugins guidelines ask.
        if message:
            sys.stdout.write(message)
        sys.exit(UNKNOWN_EXIT)


def unknown_arguments(unknown: Sequence[str], known: Sequence[str]) -> str:
    """The first unknown option, and what was probably meant; never the value after it,
    which may be a password typed after a misspelt --password."""
    option = next((word.split("=", 1)[0] for word in unknown
                   if word.startswith("-") and word != "-"), None)
    if option is None:
        return f"unrecognized arguments: {' '.join(unknown)}"
    meant = closest_option(option, known) if option.startswith("--") else None
    if meant:
        return f"unknown option {option}: did you mean {meant}?"
    return f"unrecognized arguments: {option} (check_mailgw --help lists every option)"


def closest_option(word: str, known: Sequence[str]) -> str | None:
    """Of difflib's close matches and the options the word cuts off (--cert), the nearest
    by typing mistakes: a swapped pair of letters (--form for --from) is one mistake, as is
    a cut-off end (--password-f); an added end (--helo-name) is two; on a tie, the fewest
    letters to change."""
    import difflib  # only a misspelt option pays for it

    candidates = [*difflib.get_close_matches(word, known, n=5, cutoff=0.6),
                  *(name for name in known if name.startswith(word))]

    def mistakes(name: str) -> int:
        if name.startswith(word):
            return 1
        return min(2, typing_distance(word, name)) if word.startswith(name) else \
            typing_distance(word, name)

    return min(candidates, default=None,
               key=lambda name: (mistakes(name), typing_distance(word, name)))


def typing_distance(a: str, b: str) -> int:
    """Letters inserted, deleted, changed or swapped with their neighbour to turn a into b
    (optimal string alignment distance)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1,
                         rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


class CheckSmtpOnly(argparse.Action):
    """A check_smtp option with no meaning here: UNKNOWN, saying what to do instead."""

    def __init__(self, option_strings: Sequence[str], dest: str, advice: str,
                 **kwargs: object) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.advice = advice

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        raise SettingsError(f"{'/'.join(self.option_strings)}: a check_smtp option with no "
                            f"meaning here: {self.advice}")


class CheckSmtpAlways(argparse.Action):
    """A check_smtp option asking for what check_mailgw always does: accepted, with a note."""

    def __init__(self, option_strings: Sequence[str], dest: str, advice: str,
                 **kwargs: object) -> None:
        super().__init__(option_strings, "check_smtp_notes", nargs=0,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.advice = advice

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        notes = [*getattr(namespace, self.dest, []),
                 f"{'/'.join(self.option_strings)}: {self.advice}"]
        setattr(namespace, self.dest, notes)


HELP_USAGE = """\
%(prog)s [--mode smtp] -H HOST [-p PORT] [--tls [starttls|implicit]]
                    --from ADDRESS [-U USER --password-file FILE] [options]
       %(prog)s --mode o365-smtp|graph --tenant-id GUID|DOMAIN
                    --client-id GUID
                    (--client-secret-file FILE | --client-certificate FILE)
                    --from ADDRESS [options]
       %(prog)s --mode o365-smtp|graph ... --check expiry"""

# Placeholders only: example.com, a contoso tenant, GUIDs of zeros.
HELP_EPILOG = f"""\
Output: the first line (at most 160 characters) names what was checked, or the
step that broke with the server's reply code; -v adds a line per step and the
fix. --format json prints the whole outcome as JSON (README: "JSON output").

Secrets: prefer --password-file or ${PASSWORD_ENV}, --client-secret-file or
${CLIENT_SECRET_ENV}; a --password or --client-secret on the command line is
visible to every user in the process list.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for --help and
--version).

Examples:
  smtp, STARTTLS and AUTH, nothing sent:
    check_mailgw -H mail.example.com --tls --from monitor@example.com \\
      -U monitor@example.com --password-file /etc/check_mailgw/password

  o365-smtp, Exchange Online SMTP with an app's OAuth2 token:
    check_mailgw --mode o365-smtp --tenant-id contoso.onmicrosoft.com \\
      --client-id 00000000-0000-0000-0000-000000000000 \\
      --client-secret-file /etc/check_mailgw/client-secret \\
      --from monitor@contoso.onmicrosoft.com

  graph, Microsoft Graph sendMail:
    check_mailgw --mode graph \\
      --tenant-id 00000000-0000-0000-0000-000000000000 \\
      --client-id 00000000-0000-0000-0000-000000000000 \\
      --client-secret-file /etc/check_mailgw/client-secret \\
      --from monitor@contoso.onmicrosoft.com

  the client secret's end date, as a daily service (o365-smtp or graph):
    check_mailgw --mode graph --check expiry \\
      --tenant-id contoso.onmicrosoft.com \\
      --client-id 00000000-0000-0000-0000-000000000000 \\
      --client-secret-file /etc/check_mailgw/client-secret"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help opens with the version; description and epilog keep their lines (examples)."""

    def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                  groups: Iterable[argparse._MutuallyExclusiveGroup],
                  prefix: str | None = None) -> None:
        if usage is not argparse.SUPPRESS:
            self.add_text(f"check_mailgw {__version__} - checks a mail gateway end to end")
        super().add_usage(usage, actions, groups, prefix)


def build_parser() -> PluginArgumentParser:
    parser = PluginArgumentParser(
        prog="check_mailgw",
        usage=HELP_USAGE,
        description="Checks a mail gateway end to end, the way the application that sends\n"
        "through it does: DNS, TCP, TLS, authentication, sender and recipient, and\n"
        "optionally a real test message.",
        epilog=HELP_EPILOG,
        formatter_class=HelpFormatter,
        argument_default=argparse.SUPPRESS,
        add_help=False,
        allow_abbrev=False,  # --form is not --format: a typo gets named, not guessed at
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
    tls_choice = gateway.add_mutually_exclusive_group()
    tls_choice.add_argument("--tls", nargs="?", const="auto", metavar="starttls|implicit",
                            help="Secure TLS connection: STARTTLS, or implicit TLS on port 465 "
                            "(--tls alone picks by port)")
    tls_choice.add_argument("-S", "--starttls", dest="check_smtp_tls", action="store_const",
                            const="starttls",
                            help="STARTTLS, on port 25 unless -p (as check_smtp's -S)")
    tls_choice.add_argument("-s", "--ssl", dest="check_smtp_tls", action="store_const",
                            const="implicit",
                            help="implicit TLS, on port 465 unless -p (as check_smtp's -s)")
    gateway.add_argument("-f", "--from", dest="sender", metavar="ADDRESS",
                         help="From: the sender address the gateway uses")
    gateway.add_argument("--auth", action=argparse.BooleanOptionalAction,
                         help="Need authentication (default: on when --username is given)")
    gateway.add_argument("-U", "--username", metavar="USER", help="Username for SMTP AUTH")
    gateway.add_argument("-A", "--auth-mechanism", metavar="PLAIN|LOGIN",
                         help="SMTP AUTH mechanism (default: PLAIN when offered, else LOGIN)")
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
    oauth.add_argument("--discovery-cache", metavar="DIR",
                       help="where tenant discovery answers are kept for 24 hours (default: "
                       "$XDG_CACHE_HOME/check_mailgw or ~/.cache/check_mailgw; '' for none)")
    oauth.add_argument("--azure-region", metavar="REGION",
                       help="use Entra ID's regional token service (off unless given)")
    oauth.add_argument("--token-warning", metavar="RANGE",
                       help="token acquisition time in seconds: WARNING outside RANGE")
    oauth.add_argument("--token-critical", metavar="RANGE",
                       help="token acquisition time in seconds: CRITICAL outside RANGE")

    expiry = parser.add_argument_group("credential expiry (o365-smtp, graph)")
    expiry.add_argument("--check", choices=list(CHECKS),
                        help="full: the whole chain, with the credential's expiry when known "
                        "(default); chain: the chain without the expiry (the 5-minute "
                        "service beside a daily expiry service, so an ending credential "
                        "alerts once); expiry: only the token and the expiry, no mail "
                        "traffic (the daily service)")
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
    for version in (4, 6):  # check_smtp's long spellings
        family.add_argument(f"--use-ipv{version}", dest="address_family",
                            action="store_const", const=version, help=argparse.SUPPRESS)
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

    # check_smtp's long spellings of options that mean the same here.
    for spelling, dest in (("--authtype", "auth_mechanism"), ("--authuser", "username"),
                           ("--authpass", "password"), ("--fqdn", "helo"),
                           ("--certificate", "certificate_days")):
        parser.add_argument(spelling, dest=dest, help=argparse.SUPPRESS)
    # check_smtp's options with no meaning here (README: "Coming from check_smtp").
    chain = ("check_mailgw runs the whole chain itself (EHLO, STARTTLS, AUTH, MAIL FROM, "
             "RCPT TO): drop -C/-R; --send-to ADDRESS proves delivery")
    for spellings, nargs, advice in (
        (("-e", "--expect"), None, "the greeting is judged by its reply code (220) and every "
         "step after it: drop -e (-v shows the greeting)"),
        (("-C", "--command"), None, chain),
        (("-R", "--response"), None, chain),
        (("-L", "--lmtp"), 0, "check_mailgw checks a mail gateway over SMTP: keep "
         "check_smtp -L for an LMTP server"),
        (("-r",), 0, "no PROXY protocol header: check_mailgw connects to the gateway itself, as "
         "the application does; point -H at it"),
        (("--ignore-certificate-expiration",), 0, "an expired server certificate fails TLS "
         "verification here; -D 0 drops the warning about days left"),
        (("--output-format",), None, "use --format nagios or --format json"),
        (("--extra-opts",), "?", "use --config FILE --profile NAME (a TOML file)"),
    ):
        parser.add_argument(*spellings, action=CheckSmtpOnly, nargs=nargs, advice=advice)
    for spellings, advice in (
        (("-q", "--ignore-quit-failure"), "check_mailgw never waits for the reply to QUIT, so a "
         "failing QUIT never counts; the option can go"),
        (("--sni",), "check_mailgw always names the server in the TLS handshake (SNI); the "
         "option can go"),
    ):
        parser.add_argument(*spellings, action=CheckSmtpAlways, advice=advice)
    return parser


def parse_settings(argv: Sequence[str] | None) -> Settings:
    from check_mailgw.secret import loose_permissions
    from check_mailgw.text import one_line
    from check_mailgw.validators import DEFAULT_TIMEOUT, check_timeout, refuse_control_characters

    old_spellings = {"-to": "-t", "-wt": "-w", "-ct": "-c"}  # check_smtp still takes them
    arguments = [old_spellings.get(a, a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        options = vars(build_parser().parse(arguments))
        verbosity = options.pop("verbose", 0)
        notes: list[str] = options.pop("check_smtp_notes", [])
        config, profile_name = options.pop("config", None), options.pop("profile", None)
        profile = {}
        if profile_name is not None:
            refuse_control_characters(profile_name, "--profile")
        if config:
            from check_mailgw.config import CONFIG_KEYS, load_profile

            wait = check_timeout(options["timeout"]) if "timeout" in options else \
                DEFAULT_TIMEOUT
            profile = load_profile(config, profile_name, CONFIG_KEYS, wait)
            if profile.keys() & {"password", "client_secret"} and (note := loose_permissions(
                    config, f"--config {config}, which holds a secret,")):
                notes.append(one_line(note))
        elif profile_name:
            raise SettingsError("--profile needs --config FILE")
        from check_mailgw.from_options import build_settings  # after --help exits

        settings = build_settings(options, profile, os.environ, verbosity)
    except SettingsError as error:  # one line, whatever a file name or argparse echoes
        raise SettingsError(one_line(str(error))) from None
    return settings._replace(notes=(*notes, *settings.notes)) if notes else settings


def main(argv: Sequence[str] | None = None) -> NoReturn:
    redactor = Redactor()
    out = RedactingStream(sys.stdout, redactor)
    settings: Settings | None = None
    try:
        settings = parse_settings(argv)
        for secret in settings.secrets:
            redactor.add(secret)
        import nagiosplugin

        from check_mailgw.nagios_check import build_check

        check = build_check(settings, functools.partial(run_mode, settings, redactor),
                            redactor)
        # A watchdog past -t, in case a step ever ignores the deadline.
        watchdog = math.ceil(settings.timeout) + 2
        if settings.output_format == "json":
            from check_mailgw.json_output import run_json

            sys.exit(run_json(check, settings, watchdog, redactor, out))
        nagiosplugin.Runtime().stdout = out
        check.main(verbose=settings.verbosity, timeout=watchdog)
    except SettingsError as error:
        failure = ("bad_input", str(error), None)
    except KeyboardInterrupt:
        failure = ("interrupted", "interrupted", None)
    except Exception as error:
        failure = (*describe_crash(error), error)
    from check_mailgw.failure import Failure, write_failure

    write_failure(Failure(*failure), settings, argv, redactor, out)
    sys.exit(UNKNOWN_EXIT)


def describe_crash(error: Exception) -> tuple[str, str]:
    """The kind of failure and its one line: the run's watchdog, or a bug of ours."""
    import nagiosplugin

    if isinstance(error, nagiosplugin.Timeout):
        return "timeout", f"timed out: the run exceeded its time limit ({error})"
    return "internal_error", (f"internal error: {type(error).__name__}: {error} "
                              "(run with -vvv for details)")
