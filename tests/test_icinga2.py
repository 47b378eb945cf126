"""A real Icinga 2 core runs the plugin through contrib's CheckCommand against the sandbox.

Needs Debian's icinga2-bin (CI installs it); without it the test is skipped, except
under CI, where a missing core is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from check_mailgw.sandbox.accounts import SANDBOX_PASSWORD, SANDBOX_USER

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


def service(name: str, **variables: object) -> str:
    lines = [f'object Service "{name}" {{', '  host_name = "gateway"',
             '  check_command = "mailgw"', "  check_interval = 1s", "  retry_interval = 1s"]
    for key, value in variables.items():
        literal = f'"{value}"' if isinstance(value, str | Path) else str(value).lower()
        lines.append(f"  vars.mailgw_{key} = {literal}")
    return "\n".join([*lines, "}"])


def run_icinga2(workdir: Path, objects: str, wanted: set[str]) -> dict[str, dict[str, str]]:
    """Starts the daemon with contrib's config plus objects; returns each service's result."""
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
