"""A real Nagios 4 core checks contrib's Nagios configuration and runs its commands against
the sandbox, read back from status.dat as a web interface would show them.

Needs Debian's nagios4-core (CI installs it); without it the tests are skipped, except
under CI, where a missing core is a failure.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib" / "nagios" / "check_mailgw.cfg"
NAGIOS4 = shutil.which("nagios4") or "/usr/sbin/nagios4"
STATES = {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}

pytestmark = pytest.mark.skipif(
    not Path(NAGIOS4).exists() and not os.environ.get("CI"),
    reason="Nagios 4 is not installed (apt-get install nagios4-core)",
)

# What contrib's examples take from Debian's /etc/nagios4/objects: the templates, the
# 24x7 period and the admins group. Active checks are off in these templates, so that
# contrib's example hosts and services (smtp.example.com ...) never run here: only the
# tests' own services, which turn them on, do.
STOCK_OBJECTS = """
define timeperiod {
    timeperiod_name         24x7
    alias                   24 hours a day, 7 days a week
    monday                  00:00-24:00
    tuesday                 00:00-24:00
    wednesday               00:00-24:00
    thursday                00:00-24:00
    friday                  00:00-24:00
    saturday                00:00-24:00
    sunday                  00:00-24:00
}
define command {
    command_name            notify-nobody
    command_line            /bin/true
}
define contact {
    contact_name            nagiosadmin
    host_notifications_enabled      0
    service_notifications_enabled   0
    host_notification_period        24x7
    service_notification_period     24x7
    host_notification_options       n
    service_notification_options    n
    host_notification_commands      notify-nobody
    service_notification_commands   notify-nobody
}
define contactgroup {
    contactgroup_name       admins
    alias                   Nagios Administrators
    members                 nagiosadmin
}
define host {
    name                    generic-host
    max_check_attempts      3
    check_period            24x7
    contact_groups          admins
    notification_period     24x7
    active_checks_enabled   0
    register                0
}
define host {
    name                    linux-server
    use                     generic-host
    register                0
}
define service {
    name                    generic-service
    max_check_attempts      3
    check_interval          10
    retry_interval          2
    check_period            24x7
    contact_groups          admins
    notification_period     24x7
    active_checks_enabled   0
    register                0
}
"""


def define(kind: str, **attributes: object) -> str:
    lines = [f"    {key:<24}{value}" for key, value in attributes.items()]
    return "\n".join([f"define {kind} {{", *lines, "}"])


def gateway_host(name: str, port: int, password_file: Path, ca_file: Path, **more: object) -> str:
    """A host of contrib's mailgw-gateway template: the sandbox's account, this host's port."""
    return define("host", use="generic-host,mailgw-gateway", host_name=name,
                  address="127.0.0.1", _MAILGW_PORT=port, _MAILGW_FROM=SANDBOX_USER,
                  _MAILGW_USERNAME=SANDBOX_USER, _MAILGW_PASSWORD_FILE=password_file,
                  _MAILGW_OPTIONS=f"--ca-file {ca_file}", **more)


def checked_service(host: str, description: str, **attributes: object) -> str:
    """A service that runs every second whatever its template's interval says."""
    return define("service", host_name=host, service_description=description,
                  active_checks_enabled=1, check_interval=1, retry_interval=1,
                  max_check_attempts=1, **attributes)


def write_config(workdir: Path, objects: str = "") -> Path:
    """A minimal main config: contrib's file, the stock objects, and objects; in workdir."""
    plugins = workdir / "plugins"
    plugins.mkdir()
    # As installed in production: the package's command linked into the plugin directory.
    (plugins / "check_mailgw").symlink_to(Path(sys.executable).parent / "check_mailgw")
    (workdir / "checkresults").mkdir()
    (workdir / "resource.cfg").write_text(f"$USER1$={plugins}\n")
    (workdir / "objects.cfg").write_text(STOCK_OBJECTS + objects)
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    settings = {
        "cfg_file": workdir / "objects.cfg",
        "resource_file": workdir / "resource.cfg",
        "log_file": workdir / "nagios.log",
        "object_cache_file": workdir / "objects.cache",
        "precached_object_file": workdir / "objects.precache",
        "status_file": workdir / "status.dat",
        "status_update_interval": 1,
        "lock_file": workdir / "nagios.lock",
        "temp_file": workdir / "nagios.tmp",
        "temp_path": workdir,
        "check_result_path": workdir / "checkresults",
        "query_socket": workdir / "nagios.qh",
        # Root in CI: Nagios drops to this user, so the user that runs the tests.
        "nagios_user": user,
        "nagios_group": group,
        "check_external_commands": 0,
        "retain_state_information": 0,
        "state_retention_file": workdir / "retention.dat",
        "use_syslog": 0,
        "check_for_updates": 0,
        "enable_notifications": 0,
        "enable_event_handlers": 0,
        # Seconds, not minutes: the services run every second, all from the start.
        "interval_length": 1,
        "service_inter_check_delay_method": "n",
        "host_inter_check_delay_method": "n",
        "max_service_check_spread": 1,
        "max_host_check_spread": 1,
        "service_interleave_factor": 1,
        "check_result_reaper_frequency": 1,
        # As Debian's nagios.cfg has it.
        "illegal_macro_output_chars": "`~$&|'\"<>",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.insert(1, f"cfg_file={CONTRIB}")
    config = workdir / "nagios.cfg"
    config.write_text("\n".join(lines) + "\n")
    return config


def verify(config: Path) -> str:
    """`nagios4 -v`, as after every change to a live configuration; also precaches the
    objects with their templates resolved (objects.precache)."""
    checked = subprocess.run([NAGIOS4, "-vp", str(config)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert re.search(r"^Total Warnings: +0$", checked.stdout, re.M), checked.stdout[-3000:]
    assert re.search(r"^Total Errors: +0$", checked.stdout, re.M), checked.stdout[-3000:]
    return checked.stdout


def precached(workdir: Path, kind: str) -> dict[str, dict[str, str]]:
    """The objects of a kind as Nagios resolved them, by host_name (and
    !service_description for services)."""
    objects: dict[str, dict[str, str]] = {}
    text = (workdir / "objects.precache").read_text()
    for body in re.findall(rf"^define {kind} {{\n(.*?)^\t}}", text, re.M | re.S):
        attributes = dict(line.strip().split("\t", 1) for line in body.splitlines()
                          if "\t" in line.strip())
        name = attributes.get("host_name", "")
        if kind == "service":
            name += "!" + attributes["service_description"]
        objects[name] = attributes
    return objects


def status_of_services(status_file: Path) -> dict[str, dict[str, str]]:
    """The checked services in status.dat, by host!service."""
    found: dict[str, dict[str, str]] = {}
    text = status_file.read_text(errors="replace") if status_file.exists() else ""
    for body in re.findall(r"^servicestatus {\n(.*?)\n\t}", text, re.M | re.S):
        fields = dict(line.strip().split("=", 1) for line in body.splitlines() if "=" in line)
        if fields.get("has_been_checked") == "1":
            found[f"{fields['host_name']}!{fields['service_description']}"] = {
                "state": STATES[fields["current_state"]],
                "output": fields["plugin_output"],
                "long_output": fields["long_plugin_output"].replace("\\n", "\n"),
                "perfdata": fields["performance_data"],
            }
    return found


def run_nagios(workdir: Path, config: Path, wanted: set[str]) -> dict[str, dict[str, str]]:
    """Runs the daemon in the foreground until every wanted service has a result."""
    log = workdir / "nagios4.out"
    with log.open("wb") as log_file:
        daemon = subprocess.Popen([NAGIOS4, str(config)], stdout=log_file,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    results: dict[str, dict[str, str]] = {}
    try:
        deadline = time.monotonic() + 90
        while not wanted <= set(results) and time.monotonic() < deadline:
            assert daemon.poll() is None, log.read_text(errors="replace")[-3000:]
            results = status_of_services(workdir / "status.dat")
            time.sleep(0.3)
    finally:
        # The daemon, its workers and any check still running: one process group.
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    said = (workdir / "nagios.log").read_text(errors="replace")[-3000:]
    assert wanted <= set(results), f"no result for {wanted - set(results)}; Nagios said:\n{said}"
    return results


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Short paths: the query handler's socket path must fit in a Unix socket address.
    path = Path(tmp_path_factory.mktemp("nagios4"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_nagios4_accepts_contribs_configuration(workdir: Path) -> None:
    verify(write_config(workdir))

    services = precached(workdir, "service")
    submission = services["smtp.example.com!mail gateway submission"]
    assert submission["check_command"] == "check_mailgw_gateway!-w 5 -c 9"
    assert float(submission["check_interval"]) == 5
    certificate = services["smtp.example.com!mail gateway certificate"]
    assert certificate["check_command"] == "check_mailgw_gateway!-D 30,14"
    assert float(certificate["check_interval"]) == 1440  # minutes: daily
    assert float(certificate["retry_interval"]) == 60
    expiry = services["exchange-online!mail gateway credential expiry"]
    assert expiry["check_command"] == "check_mailgw_profile_expiry!exchange"
    assert float(expiry["check_interval"]) == 1440
    app = services["exchange-online!mail gateway app"]  # its days left are the daily's
    assert app["check_command"] == "check_mailgw_profile_chain!exchange"
    assert float(app["check_interval"]) == 5

    gateway = precached(workdir, "host")["smtp.example.com"]
    # The template's defaults, and the host's own values.
    assert gateway["_MAILGW_PORT"] == "587"
    assert gateway["_MAILGW_TLS"] == "starttls"
    assert gateway["_MAILGW_PASSWORD_FILE"] == "/etc/check_mailgw/smtp.example.com.password"


def test_nagios4_runs_contribs_commands_against_the_sandbox(
        workdir, smtp_server, m365, ca_file, password_file, client_secret_file):
    healthy = smtp_server("starttls", "ok")
    implicit = smtp_server("implicit", "ok")
    disabled = smtp_server("starttls", "auth-disabled")
    expiring = smtp_server("starttls", "cert-expiring")
    app = m365("secret-ends-in-20-days")
    files = {"password_file": password_file, "ca_file": ca_file}
    app_options = (f"--client-secret-file {client_secret_file} --authority {app.authority} "
                   f"--graph-url {app.graph_url} --ca-file {ca_file}")
    objects = "\n".join([
        gateway_host("healthy", healthy.port, **files),
        checked_service("healthy", "submission", use="mailgw-submission"),
        checked_service(
            "healthy", "smtp arguments", use="generic-service",
            check_command=f"check_mailgw_smtp!127.0.0.1!{healthy.port}!{SANDBOX_USER}!--tls "
            f"starttls -U {SANDBOX_USER} --password-file {password_file} --ca-file {ca_file}"),
        # The host's own port and TLS, over the template's 587 and STARTTLS.
        gateway_host("implicit", implicit.port, _MAILGW_TLS="implicit", **files),
        checked_service("implicit", "submission", use="mailgw-submission"),
        gateway_host("broken", disabled.port, **files),
        checked_service("broken", "submission", use="mailgw-submission"),
        gateway_host("expiring", expiring.port, **files),
        checked_service("expiring", "submission", use="mailgw-submission"),
        checked_service("expiring", "certificate", use="mailgw-server-certificate"),
        define("host", use="generic-host", host_name="app", address="127.0.0.1"),
        checked_service(
            "app", "credential expiry", use="mailgw-credential-expiry",
            check_command=f"check_mailgw_app_expiry!{app.tenant_id}!{app.client_id}!"
            f"{app_options}"),
        checked_service(
            "app", "chain", use="mailgw-app",
            check_command=f"check_mailgw_app!graph!{app.tenant_id}!{app.client_id}!"
            f"--from {SANDBOX_USER} {app_options}"),
    ])
    config = write_config(workdir, objects)
    verify(config)
    wanted = {"healthy!submission", "healthy!smtp arguments", "implicit!submission",
              "broken!submission", "expiring!submission", "expiring!certificate",
              "app!credential expiry", "app!chain"}
    results = run_nagios(workdir, config, wanted)

    for name, port, security in (("healthy!submission", healthy.port, "STARTTLS"),
                                 ("healthy!smtp arguments", healthy.port, "STARTTLS"),
                                 ("implicit!submission", implicit.port, "implicit TLS")):
        result = results[name]
        assert result["state"] == "OK", (name, result)
        assert result["output"].startswith(f"MAILGW OK - smtp 127.0.0.1:{port}: {security}"), \
            (name, result)
        assert "cert_days=" in result["perfdata"] and "total_time=" in result["perfdata"]
    # -w 5 -c 9 from the template's command.
    assert re.search(r"total_time=[\d.]+s;5;9;0", results["healthy!submission"]["perfdata"])

    broken = results["broken!submission"]
    assert broken["state"] == "CRITICAL", broken
    assert "535 5.7.139" in broken["output"]
    assert "auth_time=" in broken["perfdata"]

    # Days left under 14: WARNING for the 5-minute service (14,7), CRITICAL for the daily
    # certificate service (30,14).
    soon = results["expiring!submission"]
    assert soon["state"] == "WARNING", soon
    assert soon["output"].startswith("MAILGW WARNING - server certificate expires in ")
    assert re.search(r"cert_days=\d+;14:;7:", soon["perfdata"])
    daily = results["expiring!certificate"]
    assert daily["state"] == "CRITICAL", daily
    assert daily["output"].startswith("MAILGW CRITICAL - server certificate expires in ")
    assert "(warning below 30, critical below 14)" in daily["output"]
    assert re.search(r"cert_days=\d+;30:;14:", daily["perfdata"])

    secret = results["app!credential expiry"]
    assert secret["state"] == "WARNING", secret
    assert secret["output"].startswith("MAILGW WARNING - client secret expires in 20 days")
    assert "secret_days=20;30:;7:" in secret["perfdata"]
    # The same app every 5 minutes: the chain alone, so the ending secret alerts once.
    chain = results["app!chain"]
    assert chain["state"] == "OK", chain
    assert chain["output"].startswith("MAILGW OK - graph 127.0.0.1:"), chain
    assert "secret_days=" not in chain["perfdata"]

    for result in results.values():
        assert SANDBOX_PASSWORD not in str(result)
        assert SANDBOX_CLIENT_SECRET not in str(result)
