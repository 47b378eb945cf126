"""A real Icinga 2 core runs the plugin through contrib's CheckCommand against the sandbox,
and shows which services contrib's apply rules make.

Needs Debian's icinga2-bin (CI installs it); without it the test is skipped, except
under CI, where a missing core is a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.m365.cloud import M365Sandbox
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

REPO = Path(__file__).resolve().parent.parent
CHECK_COMMAND = REPO / "contrib" / "icinga2" / "check_mailgw.conf"
ICINGA2 = shutil.which("icinga2") or "/usr/sbin/icinga2"
# One line per check result: name, state, first line of output, perfdata.
RESULT_FIELDS = ("name", "state", "output", "perfdata")
RESULT_FORMAT = "\\t".join(f"$service.{field}$" for field in RESULT_FIELDS)

pytestmark = pytest.mark.skipif(
    not Path(ICINGA2).exists() and not os.environ.get("CI"),
    reason="Icinga 2 is not installed (apt-get install icinga2-bin)",
)


def service(name: str, check_timeout: str | None = None, **variables: object) -> str:
    lines = [f'object Service "{name}" {{', '  host_name = "gateway"',
             '  check_command = "mailgw"', "  check_interval = 1s", "  retry_interval = 1s"]
    if check_timeout is not None:
        lines.append(f"  check_timeout = {check_timeout}")
    for key, value in variables.items():
        literal = f'"{value}"' if isinstance(value, str | Path) else str(value).lower()
        lines.append(f"  vars.mailgw_{key} = {literal}")
    return "\n".join([*lines, "}"])


def write_config(workdir: Path, objects: str) -> tuple[Path, list[str]]:
    """contrib's config plus objects, and the -D options of an instance living in workdir.

    Validates it as `icinga2 daemon -C` does; the objects file it writes is what
    `icinga2 object list` reads.
    """
    plugins, state, results = workdir / "plugins", workdir / "state", workdir / "results"
    for directory in (plugins, state / "icinga2", results):
        directory.mkdir(parents=True)
    (plugins / "check_mailgw").symlink_to(Path(sys.executable).parent / "check_mailgw")
    config = workdir / "icinga2.conf"
    config.write_text(f"""
const PluginDir = "{plugins}"
const NodeName = "check-mailgw-test"
const ZoneName = NodeName
include <itl>
include "{CHECK_COMMAND}"
object CheckerComponent "checker" {{ }}
object PerfdataWriter "results" {{
  service_perfdata_path = "{results}/service"
  service_temp_path = "{results}/service.tmp"
  host_perfdata_path = "{results}/host"
  host_temp_path = "{results}/host.tmp"
  service_format_template = "{RESULT_FORMAT}"
  rotation_interval = 1s
}}
object Host "gateway" {{
  check_command = "dummy"
  address = "127.0.0.1"
}}
{objects}
""")
    paths = {f"Configuration.{key}": state for key in
             ("DataDir", "InitRunDir", "CacheDir", "LogDir", "SpoolDir")}
    paths.update({
        "Configuration.PidPath": state / "icinga2.pid",
        "Configuration.StatePath": state / "icinga2.state",
        "Configuration.ModAttrPath": state / "modified-attributes.conf",
        "Configuration.ObjectsPath": state / "icinga2.debug",
        "Configuration.VarsPath": state / "icinga2.vars",
        "Configuration.RunAsUser": "root" if os.geteuid() == 0 else os.environ.get("USER", ""),
        "Configuration.RunAsGroup": "root" if os.geteuid() == 0 else "",
    })
    defines = [f"-D{key}={value}" for key, value in paths.items()]
    validated = subprocess.run([ICINGA2, "daemon", "-C", "-c", str(config), *defines],
                               capture_output=True, text=True, timeout=60)
    assert validated.returncode == 0, validated.stdout[-3000:]
    return config, defines


def applied_services(workdir: Path, objects: str) -> dict[str, dict[str, Any]]:
    """The services the config defines, as `icinga2 object list` shows them, by host!name.

    Each has its attributes (check_interval in seconds ...) and "vars"; no check runs.
    """
    _, defines = write_config(workdir, objects)
    listed = subprocess.run([ICINGA2, "object", "list", "--type", "Service", *defines],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    services: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    attribute = ""
    for line in listed.stdout.splitlines():
        if header := re.fullmatch(r"Object '(.+)' of type 'Service':", line):
            current = services.setdefault(header[1], {"vars": {}})
        elif top := re.fullmatch(r"  \* (\w+)(?: = (.*))?", line):
            attribute = top[1]
            if top[2] is not None:
                current[attribute] = listed_value(top[2])
        elif (var := re.fullmatch(r"    \* (\w+) = (.*)", line)) and attribute == "vars":
            current["vars"][var[1]] = listed_value(var[2])
    return services


def listed_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_icinga2(workdir: Path, objects: str, wanted: set[str]) -> dict[str, dict[str, str]]:
    """Starts the daemon with contrib's config plus objects; returns each service's result."""
    config, defines = write_config(workdir, objects)
    results = workdir / "results"
    log = workdir / "icinga2.log"
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            [ICINGA2, "daemon", "-c", str(config), *defines, "-x", "warning"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    seen: dict[str, dict[str, str]] = {}
    try:
        deadline = time.monotonic() + 60
        while not wanted <= set(seen) and time.monotonic() < deadline:
            for file in results.glob("service*"):
                for line in file.read_text().splitlines():
                    name, state, output, perfdata = [*line.split("\t"), "", "", ""][:4]
                    seen.setdefault(name, {"state": state, "output": output,
                                           "perfdata": perfdata})
            time.sleep(0.2)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    said = log.read_text(errors="replace")[-3000:]
    assert wanted <= set(seen), f"no result for {wanted - set(seen)}; the daemon said:\n{said}"
    return seen


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Short paths: the daemon's API socket path must fit in a Unix socket address.
    path = Path(tmp_path_factory.mktemp("icinga2"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_icinga2_runs_the_check_command_against_the_sandbox(
        workdir, smtp_server, ca_file, password_file):
    healthy = smtp_server("starttls", "ok")
    disabled = smtp_server("starttls", "auth-disabled")
    profile = workdir / "gateways.toml"
    profile.write_text(f"""
[profiles.alerts]
server = "127.0.0.1"
port = {healthy.port}
tls = "starttls"
from = "{SANDBOX_USER}"
username = "{SANDBOX_USER}"
password_file = "{password_file}"
ca_file = "{ca_file}"
""")
    login = {"tls": "starttls", "from": SANDBOX_USER, "username": SANDBOX_USER,
             "ca_file": ca_file}
    objects = "\n".join([
        service("healthy", port=healthy.port, password_file=password_file, **login),
        service("auth-disabled", port=disabled.port, password_file=password_file, **login),
        service("password-in-env", port=healthy.port, password=SANDBOX_PASSWORD, **login),
        service("profile", config=profile, profile="alerts"),
    ])
    results = run_icinga2(workdir, objects,
                          {"healthy", "auth-disabled", "password-in-env", "profile"})

    for name in ("healthy", "password-in-env", "profile"):
        result = results[name]
        assert result["state"] == "OK", (name, result)
        assert result["output"].startswith(f"MAILGW OK - smtp 127.0.0.1:{healthy.port}: STARTTLS")
        assert "cert_days=" in result["perfdata"] and "total_time=" in result["perfdata"]
    broken = results["auth-disabled"]
    assert broken["state"] == "CRITICAL"
    assert "535 5.7.139" in broken["output"]
    assert "auth_time=" in broken["perfdata"]
    assert all(SANDBOX_PASSWORD not in str(r) for r in results.values())


def test_icinga2_keeps_the_checks_time_limit_under_the_cores(workdir, smtp_server, ca_file):
    # A server that never greets: the check runs until its -t, and says so itself.
    silent = smtp_server("plain", "silent")
    login = {"port": silent.port, "from": SANDBOX_USER}
    objects = "\n".join([
        service("as-asked", timeout=2, **login),
        # -t 60 would outlast the core's 8 s: the command gives the plugin 3 s.
        service("capped", check_timeout="8s", timeout=60, **login),
    ])
    results = run_icinga2(workdir, objects, {"as-asked", "capped"})

    for name, seconds in (("as-asked", 2), ("capped", 3)):
        result = results[name]
        assert result["state"] == "UNKNOWN", (name, result)
        assert result["output"].startswith("MAILGW UNKNOWN - greeting on 127.0.0.1:"), result
        assert f"timed out after {seconds}s (-t)" in result["output"], (name, result)


def expiry_vars(sandbox: M365Sandbox, ca_file: Path) -> dict[str, object]:
    """The variables of a daily expiry service for the sandbox's app, without its credential."""
    return {"mode": "graph", "check": "expiry", "tenant_id": sandbox.tenant_id,
            "client_id": sandbox.client_id, "from": SANDBOX_USER,
            "authority": sandbox.authority, "graph_url": sandbox.graph_url, "ca_file": ca_file}


def test_icinga2_runs_the_daily_expiry_check_against_the_sandbox(
        workdir, m365, ca_file, client_secret_file):
    ending = m365("secret-ends-in-20-days")
    expiring_certificate = m365("certificate-expiring")
    certificate = expiring_certificate.write_client_certificate(workdir / "client-certificate.pem")
    forbidden = m365("lookup-forbidden")
    dated = m365("lookup-forbidden")
    # A date 45 days ahead: 44 or 45 days left, below the critical 50 whatever the hour.
    secret_ends = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=45)
    objects = "\n".join([
        service("secret", client_secret_file=client_secret_file, **expiry_vars(ending, ca_file)),
        service("chain", client_secret_file=client_secret_file,
                **{**expiry_vars(ending, ca_file), "check": "chain"}),
        service("certificate", client_certificate=certificate,
                **expiry_vars(expiring_certificate, ca_file)),
        service("lookup-denied-info", client_secret_file=client_secret_file,
                expiry_lookup_denied="info", **expiry_vars(forbidden, ca_file)),
        service("secret-expires", client_secret_file=client_secret_file,
                secret_expires=secret_ends.isoformat(), secret_warning=60, secret_critical=50,
                **expiry_vars(dated, ca_file)),
    ])
    results = run_icinga2(workdir, objects, {"secret", "chain", "certificate",
                                             "lookup-denied-info", "secret-expires"})

    secret = results["secret"]
    assert secret["state"] == "WARNING", secret
    assert secret["output"].startswith("MAILGW WARNING - client secret expires in 20 days")
    assert "secret_days=20;30:;7:" in secret["perfdata"]
    assert "send_time=" not in secret["perfdata"]  # no mail traffic

    # The 5-minute service of the same app: the chain alone, so the secret alerts once.
    chain = results["chain"]
    assert chain["state"] == "OK", chain
    assert chain["output"].startswith("MAILGW OK - graph 127.0.0.1:"), chain
    assert "send_time=" in chain["perfdata"] and "secret_days=" not in chain["perfdata"]

    expiring = results["certificate"]
    assert expiring["state"] == "WARNING", expiring
    assert expiring["output"].startswith("MAILGW WARNING - client certificate expires in 10 days")
    assert "cert_credential_days=10;30:;7:" in expiring["perfdata"]

    denied = results["lookup-denied-info"]
    assert denied["state"] == "OK", denied
    assert denied["output"].startswith(f"MAILGW OK - graph app {forbidden.client_id}")
    assert "secret_days=" not in denied["perfdata"]

    given = results["secret-expires"]
    assert given["state"] == "CRITICAL", given
    assert given["output"].startswith("MAILGW CRITICAL - client secret expires in 4")
    assert "(warning below 60, critical below 50)" in given["output"]
    assert re.search(r"secret_days=4[45];60:;50:", given["perfdata"])
    assert dated.app_lookups == 0

    for result in results.values():
        assert SANDBOX_CLIENT_SECRET not in str(result)
        assert "PRIVATE KEY" not in str(result)


def test_icinga2_applies_the_gateway_services_with_the_hosts_overrides(workdir):
    objects = """
template Service "generic-service" {
  enable_active_checks = false
}
object Host "smtp.example.com" {
  check_command = "dummy"
  address = "192.0.2.25"
  vars.mailgw_server = "smtp.example.com"
  vars.mailgw_from = "monitoring@example.com"
  vars.mailgw_username = "monitoring@example.com"
}
object Host "smtps.example.com" {
  check_command = "dummy"
  address = "192.0.2.26"
  vars.mailgw_server = "smtps.example.com"
  vars.mailgw_from = "monitoring@example.com"
  vars.mailgw_username = "relay@example.com"
  vars.mailgw_port = 4465
  vars.mailgw_tls = "implicit"
  vars.mailgw_password_file = "/etc/check_mailgw/relay.password"
  vars.mailgw_ca_file = "/etc/ssl/certs/internal-ca.pem"
  vars.mailgw_timeout = 20
}
"""
    services = applied_services(workdir, objects)

    default = services["smtp.example.com!mail gateway submission"]
    assert default["check_interval"] == 300
    assert default["vars"]["mailgw_tls"] == "starttls"
    assert default["vars"].get("mailgw_port") is None  # the plugin's: 587 with STARTTLS
    assert default["vars"]["mailgw_password_file"] == \
        "/etc/check_mailgw/smtp.example.com.password"
    assert default["vars"].get("mailgw_ca_file") is None
    assert "mailgw_timeout" not in default["vars"]  # the CheckCommand's 10

    overridden = services["smtps.example.com!mail gateway submission"]
    assert overridden["vars"]["mailgw_port"] == 4465
    assert overridden["vars"]["mailgw_tls"] == "implicit"
    assert overridden["vars"]["mailgw_password_file"] == "/etc/check_mailgw/relay.password"
    assert overridden["vars"]["mailgw_ca_file"] == "/etc/ssl/certs/internal-ca.pem"
    assert overridden["vars"]["mailgw_timeout"] == 20

    certificate = services["smtps.example.com!mail gateway certificate"]
    assert certificate["check_interval"] == 86400 and certificate["retry_interval"] == 3600
    assert certificate["vars"]["mailgw_certificate_days"] == "30,14"
    assert certificate["vars"]["mailgw_tls"] == "implicit"
    assert "smtp.example.com!mail gateway certificate" in services
    # No test recipient: no daily test message.
    assert "smtp.example.com!mail gateway test send" not in services


def test_icinga2_applies_the_app_services_to_hosts_with_an_app(workdir):
    # generic-service comes from conf.d/templates.conf on a real system; here it keeps the
    # applied services from running: only what the apply rules make is looked at.
    objects = """
template Service "generic-service" {
  enable_active_checks = false
}
object Host "exchange-online" {
  check_command = "dummy"
  vars.mailgw_tenant_id = "contoso.onmicrosoft.com"
  vars.mailgw_client_id = "00000000-0000-0000-0000-000000000000"
  vars.mailgw_from = "alerts@contoso.com"
  vars.mailgw_secret_expires = "2027-06-30"
}
object Host "graph-app" {
  check_command = "dummy"
  vars.mailgw_mode = "graph"
  vars.mailgw_tenant_id = "contoso.onmicrosoft.com"
  vars.mailgw_client_id = "00000000-0000-0000-0000-000000000000"
  vars.mailgw_from = "alerts@contoso.com"
  vars.mailgw_client_certificate = "/etc/check_mailgw/graph-app.pem"
}
"""
    services = applied_services(workdir, objects)

    daily = services["exchange-online!mail gateway credential expiry"]
    assert daily["check_interval"] == 86400 and daily["retry_interval"] == 3600
    assert daily["vars"]["mailgw_check"] == "expiry"
    assert daily["vars"]["mailgw_mode"] == "graph"
    assert daily["vars"]["mailgw_client_secret_file"] == \
        "/etc/check_mailgw/exchange-online.client-secret"
    assert daily["vars"]["mailgw_secret_expires"] == "2027-06-30"
    gateway = services["exchange-online!mail gateway app"]
    assert gateway["check_interval"] == 300
    assert gateway["vars"]["mailgw_mode"] == "o365-smtp"
    assert gateway["vars"]["mailgw_check"] == "chain"  # the days left are the daily's

    certificate = services["graph-app!mail gateway credential expiry"]
    assert certificate["vars"]["mailgw_client_certificate"] == "/etc/check_mailgw/graph-app.pem"
    assert "mailgw_client_secret_file" not in certificate["vars"]
    assert services["graph-app!mail gateway app"]["vars"]["mailgw_mode"] == "graph"
    # The test host of the other tests defines no app: it gets none of these services.
    assert not [name for name in services if name.startswith("gateway!")]
