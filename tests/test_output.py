"""Output for people and scripts: a first line that fits a phone or an SMS, --format json
for every outcome, and a --help that starts with the version and ends with examples."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from checkrun import CheckRun, run_check

from check_mailgw import __version__
from check_mailgw.sandbox.accounts import SANDBOX_USER, write_password_file
from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.plumbing.dns_server import start_dns
from check_mailgw.sandbox.scenarios import SCENARIOS

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
FIRST_LINE_LIMIT = 160
README = Path(__file__).resolve().parent.parent / "README.md"

# Codes a shortened first line must keep: SMTP's basic and enhanced status, an HTTP status
# with Graph's error code, Entra ID's AADSTS number, an HTTP status, a DNS answer.
CODES = re.compile(r"\b[2-5]\d\d [245]\.\d{1,3}\.\d{1,3}\b|\b[2-5]\d\d [A-Z][a-z]+[A-Z_]\w*"
                   r"|\bAADSTS\d+|\bHTTP \d{3}\b|\b(?:NXDOMAIN|SERVFAIL)\b")
FACTS = re.compile(r" - (?=[\w-]+=)")  # where a -v step line's facts begin


# --- the first line -----------------------------------------------------------------------------

# Which sandbox scenarios each mode meets: a scenario changes one part of the sandbox.
MODE_PARTS = {
    "smtp": {"all", "smtp"},
    "o365-smtp": {"all", "smtp", "token", "exchange", "credentials", "several"},
    "graph": {"all", "token", "graph", "credentials", "several"},
}
# Scenarios whose failure shows only when a message is sent.
SENDING_PARTS = {"all", "exchange"}
CORPUS = [
    (mode, name, send)
    for mode, parts in MODE_PARTS.items()
    for name, scenario in SCENARIOS.items() if scenario.part in parts
    for send in (False, True) if not send or scenario.part in SENDING_PARTS
]


def assert_first_line_fits(result: CheckRun) -> None:
    """At most 160 characters before the perfdata; where it was shortened, the long output
    (-v) has the whole text, and every code of that text is still on the first line."""
    line = result.first_line
    assert len(line) <= FIRST_LINE_LIMIT, f"{len(line)} characters: {line}"
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    for cut in re.finditer(r"\.\.\.", line):
        # The words just before the ellipsis, within one brief or one part of the line.
        before = re.split(r", |: ", line[:cut.start()])[-1][-20:]
        whole = [FACTS.split(text, maxsplit=1)[0] for text in result.long_output.splitlines()
                 if before in text]
        assert whole, f"the long output lacks the whole of {before!r}...: {result.stdout}"
        for code in CODES.findall(whole[0]):
            assert code in line, f"{code!r} lost: {line}"


@pytest.mark.parametrize(("mode", "scenario", "send"), CORPUS,
                         ids=[f"{m}-{s}{'-send' if send else ''}" for m, s, send in CORPUS])
def test_first_line_fits_a_phone_and_keeps_the_code(mode, scenario, send, smtp_server, m365,
                                                    ca_file, password_file,
                                                    client_secret_file) -> None:
    if mode == "smtp":
        server = smtp_server("starttls", scenario)
        args = ["-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                "-U", SANDBOX_USER, "--password-file", password_file, "--ca-file", ca_file]
    else:
        args = oauth_args(m365(scenario), mode, ca_file, client_secret_file)
    sending = ("--send-to", "ops@sandbox.test") if send else ()
    result = run_check(*args, *sending, "-t", "2", "-v")
    assert result.exit_code in (OK, WARNING, CRITICAL, UNKNOWN)
    assert_first_line_fits(result)
    assert_fix_lines_read_well(result)


FIX_LIMIT = 300
IDS = re.compile(r"\b(?:trace_id|correlation_id|request_id|client_request_id|server_id)=")


def nested_brackets(text: str) -> bool:
    depth = 0
    for character in text:
        depth += character == "("
        if depth > 1:
            return True
        depth -= character == ")" and depth > 0
    return False


def assert_fix_lines_read_well(result: CheckRun) -> None:
    """A fix fits a screen, nests no brackets, shows the ids it promises, and never tells an
    address that it may not send as itself."""
    for line in result.long_output.splitlines():
        fix = line.strip().removeprefix("fix: ") if line.strip().startswith("fix: ") else None
        if fix is None:
            continue
        assert len(fix) <= FIX_LIMIT, f"{len(fix)} characters: {fix}"
        assert not nested_brackets(fix), fix
        if "ids below" in fix or "the ids" in fix:
            assert IDS.search(result.long_output), f"no ids for: {fix}\n{result.stdout}"
        for match in re.finditer(r"(\S+@\S+) (?:is )?not allowed to send as (\S+@\S+)", fix):
            assert match.group(1) != match.group(2).rstrip(".,;:)"), match.group()


def test_the_longest_exchange_reply_keeps_its_code_and_the_long_output_has_it_all(
        m365, ca_file, client_secret_file) -> None:
    result = run_check(*oauth_args(m365("mailbox-logon-failure-auth"), "o365-smtp", ca_file,
                                   client_secret_file), "-v")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(r"^MAILGW CRITICAL - auth on 127\.0\.0\.1:\d+: authentication refused "
                     r"\(Exchange could not open the mailbox \(mailbox logon failure\)\): "
                     r"430 4\.2\.0 .*\.\.\.$", result.first_line), result.first_line
    assert re.search(r"^auth .* 430 4\.2\.0 STOREDRV; .*\[Hostname=\S+\]", result.long_output,
                     re.M)
    assert_first_line_fits(result)


def test_a_long_host_name_loses_its_middle_not_the_port_or_the_code(smtp_server) -> None:
    name = ".".join(["a" * 60, "b" * 60, "c" * 60, "sandbox.test"])
    server = smtp_server("plain", "bad-greeting")
    with start_dns({name: ["127.0.0.1"]}) as dns:
        result = run_check("-H", name, "-p", server.port, "--from", SANDBOX_USER,
                           "--dns-server", f"{dns.host}:{dns.port}", "-v")
        healthy = smtp_server("plain", "ok")
        fine = run_check("-H", name, "-p", healthy.port, "--from", SANDBOX_USER,
                         "--dns-server", f"{dns.host}:{dns.port}")
    assert result.exit_code == CRITICAL, result.stdout
    assert re.search(rf"^MAILGW CRITICAL - greeting on a+\.\.\.c*\.sandbox\.test:{server.port}: "
                     r"server refused the session: 554 5\.3\.2", result.first_line)
    assert len(result.first_line) <= FIRST_LINE_LIMIT
    assert fine.exit_code == OK, fine.stdout
    assert re.search(rf"^MAILGW OK - smtp a+\.\.\.c*\.sandbox\.test:{healthy.port}: MAIL/RCPT "
                     r"accepted, nothing sent in \d+\.\d\ds$", fine.first_line), fine.first_line


def test_an_ok_line_keeps_what_matters_when_too_long(m365, ca_file, client_secret_file) -> None:
    result = run_check(*oauth_args(m365("ok"), "o365-smtp", ca_file, client_secret_file),
                       "--send-to", "ops@sandbox.test", "-v")
    assert result.exit_code == OK, result.stdout
    line = result.first_line
    assert len(line) <= FIRST_LINE_LIMIT, line
    assert re.search(r"^MAILGW OK - o365-smtp 127\.0\.0\.1:\d+: .*AUTH XOAUTH2.*, test message "
                     r"to ops@sandbox\.test accepted \(250 2\.0\.0 .*\), client secret 180 days "
                     r"left in \d+\.\d\ds$", line), line
    # What the first line left out is in the long output.
    assert re.search(r"^token .*token \(SMTP\.SendAsApp\)", result.long_output, re.M)
    assert re.search(r"^send .*accepted \(250 2\.0\.0 OK <\S+> \[Hostname=\S+\]\)",
                     result.long_output, re.M)


def test_a_long_bad_input_line_is_shortened_and_given_whole_below(tmp_path) -> None:
    deep = tmp_path.joinpath(*["nested-directory-name"] * 8, "mailgw.toml")
    result = run_check("--config", deep, "--profile", "p")
    assert result.exit_code == UNKNOWN
    assert len(result.first_line) <= FIRST_LINE_LIMIT, result.first_line
    assert re.fullmatch(r"MAILGW UNKNOWN - --config /\S+\.\.\.\S+/mailgw\.toml: cannot read.*",
                        result.first_line), result.first_line
    assert result.long_output.startswith(f"--config {deep}: cannot read")


# --- --format json --------------------------------------------------------------------------

def documented_keys() -> set[str]:
    """The keys README.md's "JSON output" section lists in its tables."""
    section = README.read_text().split("\n## JSON output\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w.\[\]]+)` \|", section, re.M))


def keys_of(document: dict) -> set[str]:
    keys = set(document)
    for step in document["steps"]:
        keys |= {f"steps[].{key}" for key in step}
    for value in document["perfdata_values"]:
        keys |= {f"perfdata_values[].{key}" for key in value}
    if document["error"]:
        keys |= {f"error.{key}" for key in document["error"]}
    return keys


def json_run(*args: object, env: dict[str, str] | None = None) -> dict:
    result = run_check(*args, "--format", "json", env=env)
    document = json.loads(result.stdout)
    assert keys_of(document) <= documented_keys(), keys_of(document) - documented_keys()
    assert {"schema_version", "state", "exit_code", "summary", "steps", "perfdata_values",
            "notes", "error"} <= set(document)
    assert document["schema_version"] == 1
    assert document["exit_code"] == result.exit_code
    assert document["state"] == ["OK", "WARNING", "CRITICAL", "UNKNOWN"][result.exit_code]
    assert len(f"MAILGW {document['state']} - {document['summary']}") <= FIRST_LINE_LIMIT
    return document


def login(server, ca_file: Path, password_file: Path) -> tuple[object, ...]:
    return ("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
            "-U", SANDBOX_USER, "--password-file", password_file, "--ca-file", ca_file)


def perf_string(value: dict) -> str:
    """A perfdata_values entry written the Nagios way, to compare with the strings."""
    def text(number: float | int | None) -> str:
        if isinstance(number, float):
            return f"{number:.6f}".rstrip("0").rstrip(".") or "0"
        return "" if number is None else str(number)
    fields = [value["warn"] or "", value["crit"] or "", text(value["min"]), text(value["max"])]
    while fields and fields[-1] == "":
        fields.pop()
    return ";".join([f"{value['label']}={text(value['value'])}{value['unit'] or ''}", *fields])


def test_json_ok_has_every_step_and_perfdata_as_numbers(smtp_server, ca_file,
                                                        password_file) -> None:
    document = json_run(*login(smtp_server("starttls", "ok"), ca_file, password_file),
                        "-D", "30,10")
    assert document["state"] == "OK" and document["error"] is None
    assert [s["name"] for s in document["steps"]] == ["connect", "greeting", "tls", "auth",
                                                      "envelope"]
    assert {s["state"] for s in document["steps"]} == {"OK"}
    values = {v["label"]: v for v in document["perfdata_values"]}
    assert values["cert_days"]["warn"] == "30:" and values["cert_days"]["crit"] == "10:"
    assert isinstance(values["cert_days"]["value"], int)
    assert values["auth_time"]["unit"] == "s" and values["auth_time"]["min"] == 0
    assert values["auth_time"]["warn"] is None and values["auth_time"]["max"] is None
    assert sorted(perf_string(v) for v in document["perfdata_values"]) == \
        sorted(document["perfdata"])


def test_json_warning_names_the_threshold(smtp_server, ca_file, password_file) -> None:
    document = json_run(*login(smtp_server("starttls", "cert-expiring"), ca_file,
                               password_file))
    assert document["state"] == "WARNING"
    assert document["summary"].startswith("server certificate expires in 9 days")
    cert_days = next(v for v in document["perfdata_values"] if v["label"] == "cert_days")
    assert (cert_days["value"], cert_days["warn"], cert_days["crit"]) == (9, "14:", "7:")


def test_json_critical_lists_the_steps_that_did_not_run(smtp_server, ca_file,
                                                        password_file) -> None:
    document = json_run(*login(smtp_server("starttls", "auth-disabled"), ca_file,
                               password_file), "--send-to", "ops@sandbox.test")
    assert document["state"] == "CRITICAL"
    states = {s["name"]: s["state"] for s in document["steps"]}
    assert states == {"connect": "OK", "greeting": "OK", "tls": "OK", "auth": "CRITICAL",
                      "send": "NOT_RUN"}
    auth = next(s for s in document["steps"] if s["name"] == "auth")
    assert auth["reply"].startswith("535 5.7.139 Authentication unsuccessful")
    assert auth["reply"] not in document["summary"]  # shortened there, whole here
    assert "535 5.7.139" in document["summary"]
    not_run = next(s for s in document["steps"] if s["name"] == "send")
    assert not_run["elapsed"] is None and not_run["facts"] == {}


def test_json_microsoft_mode_plans_its_own_steps(m365, ca_file, client_secret_file) -> None:
    document = json_run(*oauth_args(m365("secret-expired"), "graph", ca_file,
                                    client_secret_file))
    assert document["state"] == "CRITICAL" and document["mode"] == "graph"
    states = {s["name"]: s["state"] for s in document["steps"]}
    assert states["token"] == "CRITICAL"
    assert states["send"] == states["expiry"] == "NOT_RUN"
    token = next(s for s in document["steps"] if s["name"] == "token")
    assert token["reply"].startswith("AADSTS7000222")


def test_json_timeout_at_t_is_unknown_naming_the_step(smtp_server, ca_file,
                                                      password_file) -> None:
    document = json_run(*login(smtp_server("starttls", "silent"), ca_file, password_file),
                        "-t", "1")
    assert document["state"] == "UNKNOWN" and document["error"] is None
    states = {s["name"]: s["state"] for s in document["steps"]}
    assert states == {"connect": "OK", "greeting": "UNKNOWN", "tls": "NOT_RUN",
                      "auth": "NOT_RUN", "envelope": "NOT_RUN"}
    greeting = next(s for s in document["steps"] if s["name"] == "greeting")
    assert greeting["problem"].startswith("timed out after 1s (-t)")


@pytest.mark.parametrize(("args", "message"), [
    (("-H", "127.0.0.1", "-p", "99999"), "-p/--port 99999: out of range"),
    (("--no-such-option",), "unrecognized arguments: --no-such-option"),
])
def test_json_bad_input_is_unknown_with_the_reason(args, message) -> None:
    document = json_run(*args)
    assert document["state"] == "UNKNOWN"
    assert document["error"]["kind"] == "bad_input"
    assert document["error"]["message"].startswith(message)
    assert document["error"]["traceback"] is None
    assert document["steps"] == [] and document["perfdata_values"] == []


def test_json_notes_and_the_long_output_tell_of_a_readable_secret_file(
        smtp_server, ca_file, tmp_path) -> None:
    server = smtp_server("starttls", "ok")
    shared = write_password_file(tmp_path / "password")
    shared.chmod(0o644)
    document = json_run(*login(server, ca_file, shared))
    assert document["state"] == "OK"
    assert any("readable by" in note for note in document["notes"]), document["notes"]
    text = run_check(*login(server, ca_file, shared), "-v")
    assert text.exit_code == OK, text.stdout
    assert re.search(r"^note: .*readable by", text.long_output, re.M), text.stdout


# Our own mode replaced by one that fails the way a bug or a hung step would: the product has
# no switch for this, so nothing but a test can set it off.
BROKEN_MODE = """
import sys, time, types
from check_mailgw import modes
from check_mailgw.cli import main

def run(settings, redactor):
    if sys.argv[1] == "hang":
        time.sleep(60)
    raise RuntimeError("the mode broke")

broken = types.ModuleType("broken_mode")
broken.run = run
sys.modules["broken_mode"] = broken
modes.MODES["smtp"] = "broken_mode"
main(sys.argv[2:])
"""


def broken_run(how: str, *args: object) -> CheckRun:
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_MODE, how, "-H", "127.0.0.1", "--from", SANDBOX_USER,
         *map(str, args)], capture_output=True, text=True, timeout=60)
    return CheckRun(done.returncode, done.stdout, done.stderr)


def test_our_own_crash_is_unknown_with_the_reason_and_a_traceback_only_at_vvv() -> None:
    text = broken_run("crash", "-v")
    assert text.exit_code == UNKNOWN
    assert text.first_line == ("MAILGW UNKNOWN - internal error: RuntimeError: the mode broke "
                               "(run with -vvv for details)")
    assert "Traceback" not in text.stdout + text.stderr
    assert "Traceback (most recent call last)" in broken_run("crash", "-vvv").stdout
    for verbosity, traced in (("-v", False), ("-vvv", True)):
        result = broken_run("crash", "--format", "json", verbosity)
        document = json.loads(result.stdout)
        assert result.exit_code == UNKNOWN and document["state"] == "UNKNOWN"
        assert keys_of(document) <= documented_keys()
        assert document["error"]["kind"] == "internal_error"
        assert "RuntimeError: the mode broke" in document["error"]["message"]
        assert document["mode"] == "smtp"
        assert (document["error"]["traceback"] is not None) is traced
        assert result.stderr == ""


def test_a_hung_run_is_cut_by_the_watchdog_in_json_too() -> None:
    result = broken_run("hang", "-t", "1", "--format", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == UNKNOWN
    assert document["error"]["kind"] == "timeout"
    assert document["summary"] == "timed out: the run exceeded its time limit (3s)"


# --- --help ---------------------------------------------------------------------------------

def help_examples(text: str) -> list[list[str]]:
    """The example command lines at the end of --help, continuation lines joined."""
    section = text.split("\nExamples:\n", 1)[1]
    commands = re.findall(r"^ +(check_mailgw (?:.*\\\n)*.*)$", section, re.M)
    return [shlex.split(command.replace("\\\n", " ")) for command in commands]


def test_help_starts_with_the_version_and_ends_with_one_example_per_mode() -> None:
    result = run_check("--help")
    assert result.exit_code == UNKNOWN  # as --version: the plugin guidelines' exit code
    lines = result.stdout.rstrip().splitlines()
    assert lines[0] == f"check_mailgw {__version__} - checks a mail gateway end to end"
    examples = help_examples(result.stdout)
    assert lines[-1].strip() == shlex.join(examples[-1][-2:])  # nothing after the examples
    modes = [args[args.index("--mode") + 1] if "--mode" in args else "smtp"
             for args in examples]
    assert sorted(set(modes)) == ["graph", "o365-smtp", "smtp"]
    assert any("--check" in args and args[args.index("--check") + 1] == "expiry"
               for args in examples)
    smtp = examples[modes.index("smtp")]
    assert "--tls" in smtp and "-U" in smtp and "--password-file" in smtp
    text = " ".join(" ".join(args) for args in examples)
    assert "example.com" in text and "contoso.onmicrosoft.com" in text
    assert "00000000-0000-0000-0000-000000000000" in text
    assert not re.search(r"\b(?!0{8}-)[0-9a-f]{8}-[0-9a-f]{4}-", text)  # placeholders only


def test_every_help_example_is_valid_input(tmp_path) -> None:
    """Each example, with its secret files made real, gets past every input check."""
    from check_mailgw.cli import parse_settings

    examples = help_examples(run_check("--help").stdout)
    secrets = {"/etc/check_mailgw/password": "a-password",
               "/etc/check_mailgw/client-secret": "Abc8Q~placeholder-client-secret-value00"}
    for args in examples:
        files = []
        for index, arg in enumerate(args):
            if arg in secrets:
                path = tmp_path / Path(arg).name
                write_password_file(path, secrets[arg])
                args[index] = str(path)
                files.append(path)
        settings = parse_settings(args[1:])
        assert settings.mode == (args[args.index("--mode") + 1] if "--mode" in args else "smtp")
        assert files, args


def test_help_is_text_even_with_format_json() -> None:
    result = run_check("--format", "json", "--help")
    assert result.exit_code == UNKNOWN
    assert result.stdout.startswith(f"check_mailgw {__version__} - ")
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_the_readme_documents_the_schema_version() -> None:
    section = README.read_text().split("\n## JSON output\n", 1)[1].split("\n## ", 1)[0]
    assert '"schema_version": 1' in section
    example = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    assert keys_of(example) <= documented_keys()
