"""The pytest plugin: the README's example, its fixtures, markers and records, run by pytest."""

import re
import textwrap
from pathlib import Path

import pytest

from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET
from check_mailgw.sandbox.mail_sandbox import MailSandbox

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Testing your own mail code with pytest"


def readme_example() -> str:
    """The Python example of the README's pytest section."""
    text = README.read_text()
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"{SECTION}: expected one python block, found {len(blocks)}"
    return blocks[0]


def run(pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    # A process of its own: the plugin as an installed user has it, entry point and all.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *arguments, timeout=600)


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_alerts=readme_example())
    result = run(pytester)
    result.assert_outcomes(passed=5)


def test_the_readme_example_passes_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_alerts=readme_example())
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=5)
    # Each worker started servers of its own.
    assert re.search(r"created: 2/2 workers", result.stdout.str())


def test_a_run_that_uses_no_fixture_starts_and_imports_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=textwrap.dedent("""
        import sys
        import threading

        def test_nothing_of_the_sandbox_is_loaded(request):
            assert request.config.pluginmanager.has_plugin("mailgw_sandbox")
            heavy = ["aiosmtpd", "trustme", "cryptography", "msal", "requests",
                     "check_mailgw.sandbox.mail_sandbox", "check_mailgw.sandbox.scenarios"]
            assert [name for name in heavy if name in sys.modules] == []
            assert threading.active_count() == 1
    """))
    run(pytester).assert_outcomes(passed=1)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    assert re.search(r"@pytest\.mark\.mailgw_scenario\(name\): the check_mailgw sandbox plays",
                     result.stdout.str())


def test_an_unknown_scenario_fails_the_test_in_plain_words(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=textwrap.dedent("""
        import pytest

        @pytest.mark.mailgw_scenario("secret-expird")
        def test_misspelt(mailgw_sandbox):
            pass

        @pytest.mark.mailgw_scenario("secret-expired", "app-disabled")
        def test_two(mailgw_sandbox):
            pass
    """))
    result = run(pytester)
    result.assert_outcomes(errors=2)
    output = result.stdout.str()
    assert "mailgw_scenario('secret-expird'): no such scenario; mailgw-sandbox " \
        "--list-scenarios lists them" in output
    assert 'mailgw_scenario takes one scenario name: @pytest.mark.mailgw_scenario(' \
        '"secret-expired")' in output
    assert "Traceback" not in output


def test_a_scenario_lasts_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_order=textwrap.dedent("""
        import pytest

        PORTS = []

        @pytest.mark.mailgw_scenario("secret-expired")
        def test_expired(mailgw_check, mailgw_sandbox):
            PORTS.append(mailgw_sandbox.ports)
            result = mailgw_check("graph")
            assert result.state == "CRITICAL"
            assert "AADSTS7000222" in result.first_line

        def test_healthy_again(mailgw_check, mailgw_sandbox):
            assert mailgw_sandbox.scenario == "ok"
            assert mailgw_check("graph").state == "OK"
            assert mailgw_sandbox.ports == PORTS[0]

        def test_switched_within_a_test(mailgw_check, mailgw_sandbox):
            mailgw_sandbox.play("graph-denied")
            assert "ErrorAccessDenied" in mailgw_check("graph", "--send-to",
                                                       "ops@sandbox.test").first_line
    """))
    run(pytester).assert_outcomes(passed=3)


def test_a_listener_of_another_kind_comes_back_on_the_same_port(
    pytester: pytest.Pytester,
) -> None:
    # An expired certificate and a scripted server each need another listener.
    pytester.makepyfile(test_listeners=textwrap.dedent("""
        import pytest

        PORTS = []

        @pytest.mark.mailgw_scenario("cert-expired")
        def test_expired(mailgw_check, mailgw_sandbox):
            PORTS.append(mailgw_sandbox.starttls)
            result = mailgw_check("smtp")
            assert result.state == "CRITICAL", result.stdout
            assert "expired" in result.first_line

        @pytest.mark.mailgw_scenario("busy")
        def test_scripted(mailgw_check, mailgw_sandbox):
            assert mailgw_sandbox.starttls == PORTS[0]
            result = mailgw_check("smtp")
            assert (result.state, "421" in result.first_line) == ("WARNING", True), result.stdout

        def test_healthy(mailgw_check, mailgw_sandbox):
            assert mailgw_sandbox.starttls == PORTS[0]
            result = mailgw_check("smtp", security="implicit")
            assert result.state == "OK", result.stdout
            assert mailgw_check("smtp").state == "OK"
    """))
    run(pytester).assert_outcomes(passed=3)


# The fixtures in check_mailgw's own suite.


def test_a_check_sees_what_the_servers_recorded(
    mailgw_sandbox: MailSandbox, mailgw_check
) -> None:
    result = mailgw_check("o365-smtp", "--send-to", "ops@sandbox.test")
    assert result.state == "OK", result.stdout
    assert result.value("token_time") > 0
    [sent] = mailgw_sandbox.messages
    assert sent.mail_from == "monitor@sandbox.test"
    assert sent.rcpt_tos == ("ops@sandbox.test",)
    assert sent.authenticated_as == "monitor@sandbox.test"
    assert sent.message["Subject"].startswith("check_mailgw")
    [dialogue] = mailgw_sandbox.smtp_dialogues
    assert dialogue.listener == "exchange"
    assert dialogue.commands[:3] == ["EHLO " + dialogue.commands[0][5:], "STARTTLS",
                                     dialogue.commands[0]]
    assert "AUTH XOAUTH2" in dialogue.commands
    assert dialogue.replies[-1].startswith("221 ")
    services = [(seen.service, seen.method, seen.status) for seen in mailgw_sandbox.http_requests]
    assert ("identity", "POST", 200) in services
    audiences = [claims["aud"] for claims in mailgw_sandbox.issued_tokens]
    assert "https://outlook.office365.com" in audiences


def test_the_json_document(mailgw_check) -> None:
    result = mailgw_check("graph", "--format", "json")
    assert result.exit_code == 0
    assert result.document["state"] == "OK"


def test_no_secret_reaches_the_records(mailgw_sandbox: MailSandbox, mailgw_check) -> None:
    for mode in ("smtp", "o365-smtp", "graph"):
        assert mailgw_check(mode, "--send-to", "ops@sandbox.test").state == "OK"
    records = repr((
        [dialogue.lines for dialogue in mailgw_sandbox.smtp_dialogues],
        mailgw_sandbox.http_requests,
        mailgw_sandbox.issued_tokens,
    ))
    assert len(mailgw_sandbox.smtp_dialogues) == 2
    for secret in (mailgw_sandbox.password, SANDBOX_CLIENT_SECRET):
        assert secret not in records
    # No token (a JWT begins with the base64 of '{"'), no base64 of the password login.
    assert "eyJ" not in records
    assert "AUTH PLAIN ****" in records
