"""pytest fixtures: a local Microsoft 365 and SMTP servers for tests of any mail code.

Installing check_mailgw[sandbox] registers this plugin. It starts nothing, and imports
nothing of the sandbox, until a test asks for one of its fixtures:

- mailgw_sandbox: the running sandbox (a MailSandbox) playing the test's scenario, with
  nothing received yet: endpoints, credentials, files, and what the servers received;
- mailgw_sandbox_session: the same servers, for fixtures of a wider scope;
- mailgw_check: runs check_mailgw against the sandbox, a CheckResult.

@pytest.mark.mailgw_scenario("secret-expired") plays a scenario during one test (or
mailgw_sandbox.play("...") in the test); the next test finds "ok" again. Under
pytest-xdist each worker has servers of its own, on free ports.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from check_mailgw.sandbox.check_result import CheckResult
    from check_mailgw.sandbox.mail_sandbox import MailSandbox

MARKER = "mailgw_scenario"
HEALTHY = "ok"
# Longer than any check's own limit (-t, 30 s at most by default), so that its own
# words, not this one's, say why it took long.
CHECK_TIMEOUT = 120.0
# The order of check_commands.smtp_commands.
_SMTP_COMMAND = {"starttls": 0, "implicit": 1, "plain": 3}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name): the check_mailgw sandbox plays this scenario during the test "
        "(mailgw-sandbox --list-scenarios lists them)",
    )


@pytest.fixture(scope="session")
def mailgw_sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSandbox]:
    """Every sandbox server, started once per session (per xdist worker), playing "ok"."""
    from check_mailgw.sandbox.mailgw_sandbox import missing_requirements

    missing = missing_requirements()
    if missing:
        pytest.fail(f"the mailgw_sandbox fixtures: {missing}", pytrace=False)
    from check_mailgw.sandbox.mail_sandbox import start_mail_sandbox
    from check_mailgw.sandbox.plumbing.ca import SandboxCA

    # aiosmtpd reports every odd client at WARNING; tests of failures make odd clients.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    directory = tmp_path_factory.mktemp("mailgw-sandbox")
    with start_mail_sandbox(ca=SandboxCA()) as sandbox:
        sandbox.write_files(directory)
        yield sandbox


@pytest.fixture
def mailgw_sandbox(
    mailgw_sandbox_session: MailSandbox, request: pytest.FixtureRequest
) -> Iterator[MailSandbox]:
    """The sandbox playing the test's mailgw_scenario (default "ok"), nothing received yet."""
    sandbox = mailgw_sandbox_session
    sandbox.forget()
    sandbox.play(_marked_scenario(request))
    try:
        yield sandbox
    finally:
        sandbox.play(HEALTHY)


@pytest.fixture
def mailgw_check(
    mailgw_sandbox: MailSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., CheckResult]:
    """check("smtp" | "o365-smtp" | "graph", *more_arguments, security="starttls"):
    runs check_mailgw against the sandbox, with its credentials, and returns the result."""
    from check_mailgw.sandbox.check_commands import oauth_args, smtp_commands
    from check_mailgw.sandbox.check_result import CheckResult

    sandbox = mailgw_sandbox
    # The plugin's discovery cache stays in the test run's own directory.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("mailgw-cache"))}

    def check(mode: str = "smtp", *arguments: object, security: str = "starttls") -> CheckResult:
        assert sandbox.directory is not None
        if mode == "smtp":
            if security not in _SMTP_COMMAND:
                raise ValueError(f"security {security!r}: one of {', '.join(_SMTP_COMMAND)}")
            base = smtp_commands(sandbox.directory, sandbox.ports)[_SMTP_COMMAND[security]]
        elif mode in ("o365-smtp", "graph"):
            base = oauth_args(sandbox.cloud, mode, sandbox.ca_file, sandbox.client_secret_file)
        else:
            raise ValueError(f"mode {mode!r}: one of smtp, o365-smtp, graph")
        done = subprocess.run(
            [sys.executable, "-m", "check_mailgw", *base, *map(str, arguments)],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return CheckResult(done.returncode, done.stdout, done.stderr)

    return check


def _marked_scenario(request: pytest.FixtureRequest) -> str:
    from check_mailgw.sandbox.scenarios import SCENARIOS

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return HEALTHY
    if len(marker.args) != 1 or marker.kwargs or not isinstance(marker.args[0], str):
        pytest.fail(f'{MARKER} takes one scenario name: @pytest.mark.{MARKER}("secret-expired")',
                    pytrace=False)
    name: str = marker.args[0]
    if name not in SCENARIOS:
        pytest.fail(f"{MARKER}({name!r}): no such scenario; mailgw-sandbox --list-scenarios "
                    "lists them", pytrace=False)
    return name
