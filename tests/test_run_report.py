"""A run reports the same at every run, and each step line says the state that step produced.

Background steps (the token, the expiry lookup) race the chain; what the first line, the
long output and the perfdata say must not depend on which thread was quicker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.plumbing.ca import SandboxCA
from tests.checkrun import run_check

CRITICAL = 2
RUNS = 6


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signs neither the Exchange SMTP server nor the sign-in host."""
    path = tmp_path_factory.mktemp("foreign") / "other-ca.pem"
    SandboxCA().write_ca(path)
    return path


@pytest.mark.parametrize("mode", ["o365-smtp", "graph"])
def test_several_failing_steps_give_the_same_first_line_every_run(
        mode, m365, foreign_ca, client_secret_file) -> None:
    sandbox = m365("ok")
    runs = [run_check(*oauth_args(sandbox, mode, foreign_ca, client_secret_file), "-v")
            for _ in range(RUNS)]
    assert {run.exit_code for run in runs} == {CRITICAL}
    # The mode's chain lists the token first: its failure names the first line every time.
    first_lines = {re.sub(r"\d+\.\d+s", "", run.first_line) for run in runs}
    assert len(first_lines) == 1, first_lines
    assert first_lines.pop().startswith("MAILGW CRITICAL - token on 127.0.0.1:")
    for run in runs:
        assert re.search(r"^token\s+CRITICAL", run.long_output, re.M), run.stdout
        assert re.search(r"^tls\s+CRITICAL", run.long_output, re.M), run.stdout


def test_the_expiry_lookup_is_reported_whenever_the_chain_breaks(
        m365, ca_file, client_secret_file) -> None:
    sandbox = m365("graph-denied")
    args = oauth_args(sandbox, "graph", ca_file, client_secret_file)
    for _ in range(RUNS):
        run = run_check(*args, "--format", "json")
        document = json.loads(run.stdout)
        states = {step["name"]: step["state"] for step in document["steps"]}
        assert states["send"] == "CRITICAL", document["summary"]
        assert states["expiry"] == "OK", states
        labels = {value["label"] for value in document["perfdata_values"]}
        assert "secret_days" in labels, labels


def test_a_step_line_shows_the_state_its_thresholds_gave(m365, ca_file,
                                                          client_secret_file) -> None:
    sandbox = m365("secret-ends-in-3-days")
    run = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file), "-v")
    assert run.exit_code == CRITICAL
    lines = run.long_output.splitlines()
    expiry = next(index for index, line in enumerate(lines) if line.startswith("expiry"))
    assert re.match(r"expiry\s+CRITICAL\s", lines[expiry]), lines[expiry]
    # What it was judged against, and the fix, indented under the step.
    assert re.match(r" {10}critical: client secret expires in 3 days \(warning below 30, "
                    r"critical below 7\)$", lines[expiry + 1]), lines[expiry + 1]
    assert lines[expiry + 2].startswith(" " * 10 + "fix: create a new client secret")
    assert not any(line.startswith(("critical:", "warning:")) for line in lines)
    document = json.loads(run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file),
                                    "--format", "json").stdout)
    assert next(s for s in document["steps"] if s["name"] == "expiry")["state"] == "CRITICAL"


def test_the_total_time_has_a_line_of_its_own(m365, ca_file, client_secret_file) -> None:
    sandbox = m365("ok")
    run = run_check(*oauth_args(sandbox, "graph", ca_file, client_secret_file),
                    "-v", "-w", "0.000001", "-c", "100")
    assert run.exit_code == 1, run.stdout
    assert re.search(r"^total\s+WARNING\s+\d+\.\d{3}s  total time ", run.long_output, re.M)
    assert re.search(r"^ {10}fix: the gateway works, but slowly", run.long_output, re.M)
