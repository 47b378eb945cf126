"""How the check is run: entry points, config profiles, real test sends, JSON, secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from checkrun import CheckRun, run_check

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER

REPO = Path(__file__).resolve().parent.parent


def login(server, ca_file: Path, password_file: Path, *extra: object) -> tuple[object, ...]:
    return ("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
            "-U", SANDBOX_USER, "--password-file", password_file, "--ca-file", ca_file, *extra)


@pytest.mark.parametrize("entry", ["console-script", "python-m", "plugins-dir"])
def test_every_entry_point_runs_the_same_check(entry, smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    args = [str(a) for a in login(server, ca_file, password_file)]
    if entry == "console-script":
        result = run_check(*args)
    else:
        command = [sys.executable, "-m", "check_mailgw"] if entry == "python-m" else \
            [sys.executable, str(REPO / "plugins" / "check_mailgw")]
        done = subprocess.run(command + args, capture_output=True, text=True, timeout=60)
        result = CheckRun(done.returncode, done.stdout, done.stderr)
    assert result.exit_code == 0, result.stdout
    assert result.first_line.startswith("MAILGW OK - smtp 127.0.0.1:")


def test_send_to_delivers_one_message_that_says_what_it_is(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    result = run_check(*login(server, ca_file, password_file, "--send-to", "ops@sandbox.test",
                              "-v"))
    assert result.exit_code == 0, result.stdout
    assert re.search(r"test message to ops@sandbox\.test accepted \(250 ", result.first_line)
    assert "send_time" in result.perfdata and "envelope_time" not in result.perfdata
    assert len(server.messages) == 1
    received = server.messages[0]
    assert received.mail_from == SANDBOX_USER and list(received.rcpt_tos) == ["ops@sandbox.test"]
    message = received.message
    assert message["Subject"].startswith("check_mailgw test ")
    assert message["Message-ID"] in result.long_output
    assert "monitoring check" in message.get_content()


def test_two_sends_have_distinct_subjects_and_ids(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    for _ in range(2):
        assert run_check(*login(server, ca_file, password_file, "--send-to",
                                "ops@sandbox.test")).exit_code == 0
    first, second = (m.message for m in server.messages)
    assert first["Subject"] != second["Subject"]
    assert first["Message-ID"] != second["Message-ID"]


def test_without_send_to_nothing_is_delivered(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    assert run_check(*login(server, ca_file, password_file)).exit_code == 0
    assert server.messages == []


def test_profile_from_config_and_options_override_it(smtp_server, ca_file, password_file,
                                                     tmp_path):
    server = smtp_server("starttls", "ok")
    config = tmp_path / "mailgw.toml"
    config.write_text(f"""
[defaults]
timeout = 5
ca_file = "{ca_file}"

[profiles.alerts]
server = "127.0.0.1"
port = {server.port}
tls = true
from = "{SANDBOX_USER}"
username = "{SANDBOX_USER}"
password_file = "{password_file}"
""")
    result = run_check("--config", config, "--profile", "alerts")
    assert result.exit_code == 0, result.stdout
    assert result.first_line.startswith(f"MAILGW OK - smtp 127.0.0.1:{server.port}: STARTTLS")
    overridden = run_check("--config", config, "--profile", "alerts", "--from",
                           "stranger@elsewhere.test")
    assert overridden.exit_code == 2
    assert "sender refused at MAIL FROM: 553" in overridden.first_line


def test_password_from_the_environment(smtp_server, ca_file):
    server = smtp_server("starttls", "ok")
    env = {**os.environ, "MAILGW_PASSWORD": SANDBOX_PASSWORD}
    result = run_check("-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
                       "-U", SANDBOX_USER, "--ca-file", ca_file, env=env)
    assert result.exit_code == 0, result.stdout


def test_total_time_thresholds_apply(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    # '@0:100' alerts inside 0 to 100 s, where every loopback run is.
    result = run_check(*login(server, ca_file, password_file, "-w", "@0:100", "-c", "200",
                              "-v"))
    assert result.exit_code == 1, result.stdout
    assert "fix: the gateway works, but slowly" in result.long_output
    assert re.search(r"^MAILGW WARNING - total time [\d.]+s \(.*0:100\)",
                     result.first_line), result.stdout
    assert re.fullmatch(r"[\d.]+s;@(0:)?100;200;0", result.perfdata["total_time"])


def test_perfdata_units_and_threshold_ranges(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "ok")
    result = run_check(*login(server, ca_file, password_file, "-D", "30,10"))
    assert result.exit_code == 0
    for label in ("connect_time", "greeting_time", "tls_time", "auth_time", "envelope_time"):
        assert re.fullmatch(r"\d+(\.\d+)?s;;;0", result.perfdata[label]), label
    assert re.fullmatch(r"\d+;30:;10:", result.perfdata["cert_days"])


def test_json_format_has_every_step(smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "auth-disabled")
    result = run_check(*login(server, ca_file, password_file, "--format", "json"))
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["state"] == "CRITICAL"
    assert [s["name"] for s in document["steps"]] == ["connect", "greeting", "tls", "auth",
                                                      "envelope"]
    assert document["steps"][-1]["state"] == "NOT_RUN"  # the chain broke before it
    auth = document["steps"][-2]
    assert auth["reply"].startswith("535 5.7.139")
    assert "Set-CASMailbox" in auth["fix"]


SECRET_SCENARIOS = ["ok", "auth-disabled", "drop-mid-session", "slow-auth"]


@pytest.mark.parametrize("scenario", SECRET_SCENARIOS)
@pytest.mark.parametrize("how", ["file", "option", "environment"])
def test_the_password_never_appears(scenario, how, smtp_server, ca_file, password_file):
    import base64

    server = smtp_server("starttls", scenario)
    args = ["-H", server.host, "-p", server.port, "--tls", "--from", SANDBOX_USER,
            "-U", SANDBOX_USER, "--ca-file", ca_file, "-t", "2", "--send-to", "ops@sandbox.test"]
    env = dict(os.environ)
    if how == "file":
        args += ["--password-file", password_file]
    elif how == "option":
        args += ["--password", SANDBOX_PASSWORD]
    else:
        env["MAILGW_PASSWORD"] = SANDBOX_PASSWORD
    plain_blob = base64.b64encode(f"\0{SANDBOX_USER}\0{SANDBOX_PASSWORD}".encode()).decode()
    for extra in (["-vvv"], ["--format", "json"]):
        result = run_check(*args, *extra, env=env)
        output = result.stdout + result.stderr
        assert "AUTH PLAIN ****" in output or scenario == "ok" or extra[0] == "--format"
        for leak in (SANDBOX_PASSWORD, plain_blob,
                     base64.b64encode(SANDBOX_PASSWORD.encode()).decode()):
            assert leak not in output


def test_vvv_shows_the_effective_settings_with_the_password_masked(
        smtp_server, ca_file, password_file, tmp_path):
    server = smtp_server("starttls", "ok")
    config = tmp_path / "mailgw.toml"
    config.write_text('[profiles.p]\ntimeout = 7\ncertificate_days = "30,10"\n')
    result = run_check("--config", config, *login(server, ca_file, password_file, "-vvv"))
    assert result.exit_code == 0, result.stdout
    settings_line = next(line for line in result.stdout.splitlines()
                         if line.startswith("settings: "))
    assert "timeout=7.0" in settings_line and "certificate_days=30,10" in settings_line
    assert "password=Secret('****')" in settings_line


def test_auth_login_is_used_when_plain_is_not_offered_and_stays_secret(
        smtp_server, ca_file, password_file):
    server = smtp_server("starttls", "login-only")
    result = run_check(*login(server, ca_file, password_file, "-vv"))
    assert result.exit_code == 0, result.stdout
    assert "AUTH LOGIN as monitor@sandbox.test" in result.first_line
    assert re.search(r"connect\s+OK .*port=\d+; from=127\.0\.0\.1:\d+", result.long_output)
    assert SANDBOX_PASSWORD not in result.stdout
    assert base64_of(SANDBOX_PASSWORD) not in result.stdout


def base64_of(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# What a run of the smtp mode may leave out: the OAuth modes' libraries, what only sending a
# message needs, and dnspython while the system resolver answers. (traceback is not among
# them: logging imports it, and nagiosplugin imports logging.)
ONLY_WHEN_NEEDED = ("msal", "requests", "urllib3", "email", "uuid", "dns")
# Runs the plugin in-process, then names the modules of that list it loaded.
LOADED_MODULES = f"""\
import sys
from check_mailgw.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({ONLY_WHEN_NEEDED!r}))
    print("loaded:", ",".join(loaded) or "none")
    sys.exit(done.code)
"""


@pytest.mark.parametrize(("host", "extra", "loaded"), [
    ("127.0.0.1", (), "none"),
    ("localhost", (), "none"),  # the hosts file answers, through the system resolver
    ("127.0.0.1", ("--send-to", "ops@sandbox.test"), "email,uuid"),
])
def test_the_smtp_mode_imports_only_what_the_run_uses(host, extra, loaded, smtp_server, ca_file,
                                                      password_file):
    """Start-up cost: a run pays only for the libraries it uses."""
    server = smtp_server("starttls", "ok")
    args = [str(a) for a in login(server, ca_file, password_file, *extra)]
    args[args.index("-H") + 1] = host
    done = subprocess.run([sys.executable, "-c", LOADED_MODULES, *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == f"loaded: {loaded}"
