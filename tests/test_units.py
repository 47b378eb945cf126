"""Units: settings validation, reply classification, redaction and output wording."""

from __future__ import annotations

import pytest

from check_mailgw.errors import SettingsError
from check_mailgw.from_options import build_settings
from check_mailgw.microsoft.exchange_smtp import PASSWORD_LOGIN, is_exchange_online
from check_mailgw.nagios_check import build_check, step_lines
from check_mailgw.outcome import Diagnosis, Report, State, StepOutcome
from check_mailgw.secret import Redactor, Secret
from check_mailgw.smtp.client import Reply
from check_mailgw.smtp.replies import diagnose
from check_mailgw.validators import resolve_tls

BASE = {"hostname": "mail.example.com", "sender": "noreply@example.com"}


def settings(**given):
    return build_settings({**BASE, **given}, env={})


@pytest.mark.parametrize(("tls", "port", "expected"), [
    (None, None, ("none", 25)),
    ("auto", None, ("starttls", 587)),
    ("auto", 465, ("implicit", 465)),
    (None, 465, ("implicit", 465)),
    ("implicit", None, ("implicit", 465)),
    ("starttls", 2525, ("starttls", 2525)),
    ("auto", 25, ("starttls", 25)),
])
def test_tls_mode_and_port_defaults(tls, port, expected):
    assert resolve_tls(tls, port) == expected


def test_settings_defaults():
    s = settings()
    assert (s.port, s.tls, s.auth, s.timeout) == (25, "none", False, 10)
    assert s.certificate_days == (14, 7)
    assert s.target == "mail.example.com:25"


def test_auth_follows_the_username_and_the_password_stays_wrapped():
    s = settings(username="u", password="pw", tls="auto")
    assert s.auth and isinstance(s.password, Secret)
    assert "pw" not in repr(s)
    assert s.secrets == ["pw"]


def test_password_precedence_option_then_environment_then_profile():
    cli = {**BASE, "username": "u", "tls": "auto"}
    profile = {"password": "from-profile"}
    assert build_settings(cli, profile, env={}).password == Secret("from-profile")
    env = {"MAILGW_PASSWORD": "from-env"}
    assert build_settings(cli, profile, env=env).password == Secret("from-env")
    assert build_settings({**cli, "password": "opt"}, profile, env=env).password == Secret("opt")


def test_options_override_the_profile():
    s = build_settings({"port": "2525"}, {**BASE, "port": 587, "tls": True}, env={})
    assert (s.port, s.tls) == (2525, "starttls")


@pytest.mark.parametrize("host", ["2001:db8::1", "[2001:db8::1]"])
def test_ipv6_literal_target(host):
    assert settings(hostname=host).target == "[2001:db8::1]:25"


@pytest.mark.parametrize(("given", "message"), [
    ({"port": 0}, "out of range"),
    ({"sender": "a b@c"}, "not a valid e-mail address"),
    ({"hostname": "-bad.example"}, "not a valid host name"),
    ({"certificate_days": "x"}, r"expected WARN\[,CRIT\] days"),
    ({"timeout_state": "sometimes"}, "expected ok, warning, critical or unknown"),
    ({"dns_server": "[::1]:99999"}, "out of range"),
    ({"auth": "yes"}, "expected true or false"),
])
def test_invalid_settings_name_the_option(given, message):
    with pytest.raises(SettingsError, match=message):
        settings(**given)


def test_dns_server_forms():
    assert settings(dns_server="127.0.0.1").dns_server == ("127.0.0.1", 53)
    assert settings(dns_server="127.0.0.1:5353").dns_server == ("127.0.0.1", 5353)
    assert settings(dns_server="[::1]:5353").dns_server == ("::1", 5353)
    assert settings(dns_server="::1").dns_server == ("::1", 53)


def reply(code: int, *lines: str) -> Reply:
    return Reply(code, lines)


def test_reply_parts():
    r = reply(535, "5.7.8 Authentication credentials invalid")
    assert (r.enhanced, str(r)) == ("5.7.8", "535 5.7.8 Authentication credentials invalid")
    assert reply(250, "mail.example.com", "PIPELINING").text == "mail.example.com PIPELINING"
    assert reply(220, "ready").enhanced is None


def test_basic_auth_retirement_points_to_oauth_only_on_exchange():
    r = reply(550, "5.7.30 Basic authentication is not supported for Client Submission.")
    exchange = diagnose("auth", r, PASSWORD_LOGIN.reply_meaning)
    other = diagnose("auth", r)
    assert exchange.state == other.state == State.CRITICAL
    assert "retiring basic authentication" in (exchange.fix or "")
    assert "--mode o365-smtp" in (exchange.fix or "")
    assert "retiring" not in (other.fix or "")
    assert exchange.reply == other.reply == str(r)


@pytest.mark.parametrize(("phase", "code", "text", "state", "problem"), [
    ("greeting", 421, "4.3.2 Service not available", State.WARNING, "service not available"),
    ("mail", 452, "4.3.1 Insufficient system storage", State.WARNING, "temporary failure"),
    ("auth", 535, "5.7.8 Authentication credentials invalid", State.CRITICAL,
     "authentication refused"),
    ("auth", 530, "5.7.0 Must issue a STARTTLS command first", State.CRITICAL, "TLS required"),
    ("mail", 530, "5.7.0 Authentication required", State.CRITICAL, "authentication required"),
    ("rcpt", 554, "5.7.1 Relay access denied", State.CRITICAL, "recipient refused"),
    ("greeting", 554, "5.3.2 No SMTP service here", State.CRITICAL, "refused the session"),
])
def test_reply_classification(phase, code, text, state, problem):
    diagnosis = diagnose(phase, reply(code, text))
    assert diagnosis.state == state
    assert problem in diagnosis.problem
    assert diagnosis.reply == f"{code} {text}"
    assert diagnosis.fix


@pytest.mark.parametrize(("host", "banner", "expected"), [
    ("smtp.office365.com", "", True),
    ("SMTP.Office365.com.", "", True),
    ("smtp.office365.us", "", True),
    ("relay.example.com", "AM0PR01CA0001.outlook.office365.com Microsoft ESMTP MAIL Service", True),
    ("relay.example.com", "relay.example.com ESMTP Postfix", False),
    ("mail.example.com", "EXCH01.corp.example.com Microsoft ESMTP MAIL Service ready", False),
    ("office365.com.evil.example", "", False),
])
def test_exchange_online_detection(host, banner, expected):
    assert is_exchange_online(host, banner) is expected


def test_every_clouds_smtp_host_is_exchange_online():
    from check_mailgw.microsoft.clouds import CLOUDS

    for cloud in CLOUDS.values():
        assert is_exchange_online(cloud.smtp_host), cloud.name
    assert is_exchange_online("smtp-mail.outlook.com")
    assert is_exchange_online("smtp-legacy.office365.com")


def test_redactor_masks_plain_and_base64_forms():
    redact = Redactor(["hunter2-secret"])
    assert redact("pw=hunter2-secret") == "pw=****"
    assert redact("AUTH LOGIN aHVudGVyMi1zZWNyZXQ=") == "AUTH LOGIN ****"


def failed_report() -> Report:
    return Report("smtp", "mail.example.com:587", [
        StepOutcome("resolve", 0.002, facts={"addresses": ["192.0.2.1"]}),
        StepOutcome("connect", 0.01, facts={"address": "192.0.2.1"}),
        StepOutcome("auth", 0.03, diagnosis=Diagnosis(
            State.CRITICAL, "authentication refused", "535 5.7.8 Bad credentials",
            fix="check the password"), dialogue=["C: AUTH PLAIN ****", "S: 535 5.7.8 Bad"]),
    ], 0.05)


def test_first_line_names_the_broken_step_and_quotes_the_server():
    check = build_check(settings(certificate_days="20,5"), failed_report)
    check()
    assert check.exitcode == 2
    assert check.summary_str == ("auth on mail.example.com:587: authentication refused: "
                                 "535 5.7.8 Bad credentials")
    assert check.perfdata == ["auth_time=0.03s;;;0", "connect_time=0.01s;;;0",
                              "dns_time=0.002s;;;0", "total_time=0.05s;;;0"]


def test_tiny_times_print_as_plain_decimals():
    report = Report("smtp", "mail.example.com:25", [StepOutcome("connect", 0.00003)], 0.0000004)
    check = build_check(settings(), lambda: report)
    check()
    assert check.perfdata == ["connect_time=0.00003s;;;0", "total_time=0s;;;0"]


def test_step_lines_by_verbosity():
    auth = failed_report().outcomes[2]
    one = step_lines(auth, 1)
    assert one[0].startswith("auth      CRITICAL   0.030s  authentication refused: 535")
    assert one[1].strip() == "fix: check the password"
    assert len(one) == 2
    assert step_lines(auth, 2)[2:] == ["          C: AUTH PLAIN ****", "          S: 535 5.7.8 Bad"]


@pytest.fixture
def wire():
    """An SmtpConnection on one end of a socket pair; the test plays the server on the other."""
    import socket

    from check_mailgw.chain import Dialogue
    from check_mailgw.deadline import Deadline
    from check_mailgw.smtp.client import SmtpConnection

    client, server = socket.socketpair()
    connection = SmtpConnection(client, Deadline(5), Dialogue())
    yield connection, server
    client.close()
    server.close()


def test_multiline_ehlo_reply_and_old_auth_form(wire):
    connection, server = wire
    server.sendall(b"250-mail.example.com Hello\r\n250-PIPELINING\r\n250-AUTH=LOGIN PLAIN\r\n")
    server.sendall(b"250 STARTTLS\r\n")
    reply = connection.ehlo("client.example.com")
    assert server.recv(100) == b"EHLO client.example.com\r\n"
    assert reply.code == 250 and reply.lines[0] == "mail.example.com Hello"
    assert connection.offers("pipelining") and connection.offers("STARTTLS")
    assert connection.auth_mechanisms() == ["LOGIN", "PLAIN"]


def test_reply_split_across_reads(wire):
    connection, server = wire
    server.sendall(b"22")
    server.sendall(b"0 ready\r")
    server.sendall(b"\n")
    assert str(connection.read_reply("the greeting")) == "220 ready"


@pytest.mark.parametrize(("wire_text", "lines", "shown"), [
    (b"220\r\n", ("",), "220"),
    (b"220 \r\n", ("",), "220"),
    (b"220\n", ("",), "220"),  # a bare LF, as some servers end their lines
    (b"220-\r\n220-ready\r\n220\r\n", ("", "ready", ""), "220 ready"),
])
def test_a_reply_code_alone_is_a_reply(wire, wire_text, lines, shown):
    """RFC 5321 4.2: the text after the code is optional, on every line of a reply."""
    connection, server = wire
    server.sendall(wire_text)
    reply = connection.read_reply("the server's greeting")
    assert (reply.code, reply.lines, str(reply)) == (220, lines, shown)


def test_an_empty_ehlo_line_names_no_extension(wire):
    connection, server = wire
    server.sendall(b"250-\r\n250-PIPELINING\r\n250\r\n")
    connection.ehlo("client.example.com")
    assert sorted(connection.capabilities) == ["PIPELINING"]


def test_a_reply_that_does_not_end_is_refused_at_the_limit(wire):
    from check_mailgw.smtp.client import MAX_LINES, ReplyDidNotEnd

    connection, server = wire
    server.sendall(b"250-mail.example.com\r\n" + b"250-X\r\n" * MAX_LINES + b"250 END\r\n")
    with pytest.raises(ReplyDidNotEnd) as endless:
        connection.read_reply("the reply to EHLO")
    assert str(endless.value) == f"the reply to EHLO did not end after {MAX_LINES} lines"
    assert endless.value.start == "250 mail.example.com"
    assert connection.dialogue.lines[-1] == (
        f"S: 250 mail.example.com ... ({MAX_LINES} lines, no last one)")


def test_the_longest_reply_that_ends_is_whole(wire):
    from check_mailgw.smtp.client import MAX_LINES

    connection, server = wire
    server.sendall(b"250-X\r\n" * (MAX_LINES - 1) + b"250 END\r\n")
    reply = connection.read_reply("the reply to EHLO")
    assert len(reply.lines) == MAX_LINES and reply.lines[-1] == "END"


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.2\r\n", b"250-a\r\n251 b\r\n",
                                     b"HTTP/1.1 400 Bad Request\r\n", b"2500 ok\r\n",
                                     b"250x\r\n"])
def test_anything_but_an_smtp_reply_is_not_smtp(wire, garbage):
    from check_mailgw.smtp.client import NotSmtp

    connection, server = wire
    server.sendall(garbage)
    with pytest.raises(NotSmtp):
        connection.read_reply("the greeting")


def test_closed_connection_names_what_was_awaited(wire):
    from check_mailgw.smtp.client import ConnectionClosed

    connection, server = wire
    server.close()
    with pytest.raises(ConnectionClosed, match="while we waited for the reply to AUTH"):
        connection.read_reply("the reply to AUTH")


def test_a_silent_server_exhausts_the_deadline(wire):
    import socket

    from check_mailgw.chain import Dialogue
    from check_mailgw.deadline import Deadline, DeadlineExceeded
    from check_mailgw.smtp.client import SmtpConnection

    connection, _ = wire
    quick = SmtpConnection(connection.sock, Deadline(0.05), Dialogue())
    assert isinstance(quick.sock, socket.socket)
    with pytest.raises(DeadlineExceeded, match="the server's greeting"):
        quick.read_reply("the server's greeting")


def test_pipelined_commands_go_in_one_write_and_the_dialogue_hides_secrets(wire):
    connection, server = wire
    connection.send("MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "RSET")
    assert server.recv(200) == b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRSET\r\n"
    connection.send("AUTH PLAIN c2VjcmV0", shown="AUTH PLAIN ****")
    assert connection.dialogue.lines[-1] == "C: AUTH PLAIN ****"
    assert all("c2VjcmV0" not in line for line in connection.dialogue.lines)


@pytest.mark.parametrize("text", ["Nov 24 06:41:41 2027 GMT", "Jan  5 00:00:00 2030 GMT",
                                  "Feb 29 12:00:00 2028 GMT", "Dec 31 23:59:59 9999 GMT"])
def test_certificate_time_reads_getpeercert_dates_as_the_standard_library(text: str) -> None:
    import ssl

    from check_mailgw.net.tls import certificate_time

    assert certificate_time(text) == ssl.cert_time_to_seconds(text)
