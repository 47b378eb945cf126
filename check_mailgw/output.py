"""nagiosplugin glue: step outcomes become metrics, states, perfdata and words.

Two forms: the Nagios text (a first line short enough for a phone or an SMS, long output
at -v, perfdata) and --format json for scripts, for every outcome including bad input
and the plugin's own failures.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nagiosplugin
from nagiosplugin import Context, Metric, Performance, Range, Result, ScalarContext, Summary

from check_mailgw import __version__
from check_mailgw.outcome import Diagnosis, Report, State, StepOutcome
from check_mailgw.settings import Settings
from check_mailgw.text import one_line

NAGIOS_STATES = {
    State.OK: nagiosplugin.Ok,
    State.WARNING: nagiosplugin.Warn,
    State.CRITICAL: nagiosplugin.Critical,
    State.UNKNOWN: nagiosplugin.Unknown,
}
PERF_LABELS = {"resolve": "dns_time"}
METRIC_UNITS = {"token_ttl": "s"}
THRESHOLD_FIXES = {
    "total_time": "the gateway works, but slowly: the step times show where the time goes; "
    "check the server's load and the network path",
    "cert_days": "renew the server's certificate and install it on the gateway before it "
    "expires",
    "token_time": "the identity provider answers slowly: check the proxy and the network path "
    "to it, and Microsoft's service health",
    "secret_days": "create a new client secret (Entra ID, App registrations, the app, "
    "Certificates & secrets), put its Value in the gateway and in this check, then delete the "
    "old one",
    "cert_credential_days": "make a new certificate, upload its public part under the app's "
    "Certificates & secrets, switch the gateway and this check to it, then remove the old one",
}


# --- the first line: at most 160 characters, the reply code always kept -----------------------

# An SMS carries 160 characters of the GSM alphabet, which has no "…": three dots it is.
FIRST_LINE_LIMIT = 160
ELLIPSIS = "..."
PREFIX = "MAILGW"

# What a shortened line never loses: SMTP's basic and enhanced status ("535 5.7.139"), an
# HTTP status with Graph's error code ("403 ErrorAccessDenied"), Entra ID's AADSTS number,
# a DNS answer's code, and how long the server asks to wait.
_CODE = (r"(?:HTTP )?[1-5]\d\d\b(?:[ ;,]+[245]\.\d{1,3}\.\d{1,3}\b)?"
         r"(?: [A-Z][a-z]+[A-Z_]\w*)?|AADSTS\d+\b|retry after \d+s"
         r"|(?:NXDOMAIN|SERVFAIL|REFUSED|NOERROR|FORMERR|NOTIMP)\b")
# A run of codes at the start of a reply ("HTTP 503, retry after 20s: AADSTS90033"), or
# inside the parenthesis of a brief ("accepted (250 2.0.0 Ok: queued as ...)").
# Patterns, not compiled: only a line that is too long needs them (re caches them then).
_LEADING_CODES = rf"(?:^|\()(?:{_CODE})(?:[:;,]? (?:{_CODE}))*"
# A closing clause that is kept whole: a code, a hint, or just the parenthesis itself.
_CLOSING_CLAUSE = (r" ?\((?:retry after \d+s|OpenSSL verify code \d+|"
                   r"[A-Z][A-Z0-9_]{3,}|run with -vvv[^()]*)\)$|\)$")
_PORT = r":\d+$"
# Briefs an OK line can do without when it is too long; the long output has them.
EXPENDABLE_BRIEFS = ("token", "tls", "tunnel", "resolve", "connect", "greeting")


def line_budget(state: str) -> int:
    """Characters left for the summary after "MAILGW <STATE> - "."""
    return FIRST_LINE_LIMIT - len(f"{PREFIX} {state.upper()} - ")


@dataclass
class Piece:
    """Part of the first line that may be shortened, never into its protected head and tail."""

    text: str
    head: int = 0  # leading characters never cut (a reply code)
    tail: int = 0  # trailing characters never cut (a closing clause, a port)
    middle: bool = False  # cut in the middle: a host name keeps its domain and port
    keep: int | None = None  # characters of the cuttable body kept, once cut
    dropped: bool = False

    @classmethod
    def protecting_codes(cls, text: str) -> Piece:
        codes = re.search(_LEADING_CODES, text)
        closing = re.search(_CLOSING_CLAUSE, text)
        head = codes.end() if codes else 0
        tail = len(closing.group()) if closing and closing.start() >= head else 0
        return cls(text, head, tail)

    @classmethod
    def host(cls, target: str) -> Piece:
        port = re.search(_PORT, target)
        return cls(target, tail=len(port.group()) if port else 0, middle=True)

    @property
    def body(self) -> str:
        return self.text[self.head:len(self.text) - self.tail]

    def kept(self) -> int:
        return len(self.body) if self.keep is None else self.keep

    def can_shrink(self, floor: int) -> bool:
        # The first cut adds the ellipsis, so it must take more than that to gain anything.
        after = self.kept() - (len(ELLIPSIS) + 1 if self.keep is None else 1)
        return not self.dropped and after >= max(floor, 0)

    def shrink(self) -> None:
        self.keep = self.kept() - (len(ELLIPSIS) + 1 if self.keep is None else 1)

    def __str__(self) -> str:
        if self.dropped:
            return ""
        if self.keep is None:
            return self.text
        head, body, tail = self.text[:self.head], self.body, self.text[len(self.text) - self.tail:]
        if self.middle:
            front = (self.keep + 1) // 2
            back = body[len(body) - (self.keep - front):] if self.keep > front else ""
            return f"{head}{body[:front]}{ELLIPSIS}{back}{tail}"
        if self.keep == 0 and head.strip():
            return head.rstrip(" ,;:") + tail  # a code alone says what it says
        return f"{cut_at_word(head, body, self.keep)}{ELLIPSIS}{tail}"


def cut_at_word(head: str, body: str, keep: int) -> str:
    """The head and the first `keep` characters of the body, ending on a word if one is near."""
    part = body[:keep]
    space = part.rfind(" ")
    if keep < len(body) and space > 0 and space >= keep - 12:
        part = part[:space]
    return head + part.rstrip(" ,;:.(")


Shortening = Callable[[], bool]


def shorten(compose: Callable[[], str], limit: int, shortenings: Iterable[Shortening]) -> str:
    """Applies each shortening, in order, until the composed line fits (or none is left)."""
    for shortening in shortenings:
        while len(compose()) > limit and shortening():
            pass
    return compose()


def fit(compose: Callable[[], str], limit: int, shortenings: Iterable[Shortening]) -> str:
    """The composed line shortened to fit; cut hard at its end if the shortenings fall short."""
    line = shorten(compose, limit, shortenings)
    return line if len(line) <= limit else line[:limit - len(ELLIPSIS)] + ELLIPSIS


def level(pieces: Sequence[Piece], floor: int) -> Shortening:
    """Shortens the longest of the pieces by one, down to `floor` characters of body each."""
    def shorten_longest() -> bool:
        candidates = [piece for piece in pieces if piece.can_shrink(floor)]
        if not candidates:
            return False
        max(candidates, key=lambda piece: len(str(piece))).shrink()
        return True
    return shorten_longest


def drop(pieces: Sequence[Piece]) -> Shortening:
    """Leaves out one more of the pieces, in their order."""
    queue = list(pieces)

    def drop_next() -> bool:
        while queue:
            piece = queue.pop(0)
            if not piece.dropped:
                piece.dropped = True
                return True
        return False
    return drop_next


def fit_problem(step: str, target: str, concern: Diagnosis, limit: int) -> str:
    """"<step> on <host>: <problem>: <reply>": the server's words go first (its code stays),
    then ours, then the host's middle."""
    whole = f"{step} on {target}: " + (f"{concern.problem}: {concern.reply}" if concern.reply
                                       else concern.problem)
    if len(whole) <= limit:
        return whole
    host = Piece.host(target)
    problem = Piece.protecting_codes(concern.problem)
    reply = Piece.protecting_codes(concern.reply) if concern.reply else None
    replies = [reply] if reply else []

    def compose() -> str:
        words = f"{problem}: {reply}" if reply else str(problem)
        return f"{step} on {host}: {words}"
    return fit(compose, limit, [level(replies, 0), level([problem], 40), level([host], 40),
                                level([problem], 16), level([host], 20)])


def fit_ok(mode: str, target: str, briefs: Sequence[tuple[str, str]], took: str,
           limit: int) -> str:
    """"<mode> <host>: <brief>, <brief>, ... in <time>": the briefs that matter least go
    first, then replies quoted in briefs shrink, then a long host's middle, then all."""
    whole = f"{mode} {target}: {', '.join(brief for _, brief in briefs)} {took}"
    if len(whole) <= limit:
        return whole
    host = Piece.host(target)
    by_step = {step: Piece.protecting_codes(brief) for step, brief in briefs}
    pieces = list(by_step.values())
    quoting = [piece for piece in pieces if piece.head]
    expendable = [by_step[step] for step in EXPENDABLE_BRIEFS if step in by_step]

    def compose() -> str:
        shown = ", ".join(str(piece) for piece in pieces if not piece.dropped)
        return f"{mode} {host}: {shown} {took}"
    return fit(compose, limit, [drop(expendable), level(quoting, 16), level([host], 40),
                                level(pieces, 12), level([host], 20), level(pieces, 0)])


_LONG_WORD = r"(\S{41,})"


def fit_text(text: str, limit: int) -> str:
    """Any other line: long words (file paths) lose their middle first, then the text its
    end, keeping a closing code or hint."""
    parts = [Piece(part, middle=bool(index % 2))
             for index, part in enumerate(re.split(_LONG_WORD, text))]
    shorten(lambda: "".join(map(str, parts)), limit, [level(parts[1::2], 24)])
    piece = Piece.protecting_codes("".join(map(str, parts)))
    return fit(lambda: str(piece), limit, [level([piece], 0)])


class PlainDecimal(float):
    """A float that prints without exponent: perfdata parsers do not read '3e-05'."""

    def __str__(self) -> str:
        return f"{self:.6f}".rstrip("0").rstrip(".") or "0"


def seconds(value: float) -> PlainDecimal:
    return PlainDecimal(round(value, 6))


def perf_label(step: str) -> str:
    return PERF_LABELS.get(step, f"{step}_time")


# --- server text: redacted and kept on its line -------------------------------------------------

def printable(value: Any, redact: Callable[[str], str]) -> Any:
    """The value with every string redacted, then its control characters escaped: a server's
    ESC sequence, NUL or line feed reaches no terminal, log or first line as such, and no
    server text can start a line of its own (a forged "MAILGW OK" below a failure).

    Redacted before anything is cut, so a shortened line cannot keep part of a secret.
    """
    if isinstance(value, str):
        return one_line(redact(value))
    if isinstance(value, dict):
        return {printable(key, redact): printable(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable(item, redact) for item in value)
    return value


def printable_diagnosis(diagnosis: Diagnosis | None,
                        redact: Callable[[str], str]) -> Diagnosis | None:
    if diagnosis is None:
        return None
    return dataclasses.replace(
        diagnosis, problem=printable(diagnosis.problem, redact),
        reply=printable(diagnosis.reply, redact), fix=printable(diagnosis.fix, redact))


def printable_report(report: Report, redact: Callable[[str], str]) -> Report:
    for outcome in report.outcomes:
        for name in ("brief", "facts", "metrics", "details", "dialogue", "target"):
            setattr(outcome, name, printable(getattr(outcome, name), redact))
        outcome.diagnosis = printable_diagnosis(outcome.diagnosis, redact)
        outcome.advisory = printable_diagnosis(outcome.advisory, redact)
        if outcome.detail:  # our traceback at -vvv: its lines, each kept to itself
            outcome.detail = "\n".join(printable(line, redact)
                                        for line in outcome.detail.splitlines())
    report.target = printable(report.target, redact)
    return report


class GatewayRun(nagiosplugin.Resource):
    """Resource: runs the mode's chain once and yields a metric per step and per value judged.

    Everything the steps report passes through printable() first: much of it is the
    servers' own words.
    """

    def __init__(self, run: Callable[[], Report], redact: Callable[[str], str]) -> None:
        self._run = run
        self._redact = redact
        self.report: Report | None = None

    @property
    def name(self) -> str:
        return "MAILGW"

    def outcome(self, label: str) -> StepOutcome:
        assert self.report is not None
        return next(o for o in self.report.outcomes if perf_label(o.name) == label)

    def probe(self) -> Iterator[Metric]:
        report = self.report = printable_report(self._run(), self._redact)
        for outcome in report.outcomes:
            yield Metric(perf_label(outcome.name), seconds(outcome.elapsed), "s", min=0,
                         context="step")
        yield Metric("total_time", seconds(report.total_time), "s", min=0, context="total_time")
        for name, value in report.metrics.items():
            yield Metric(name, value, METRIC_UNITS.get(name, ""), context=name)


class StepContext(Context):
    """Context: a step is as healthy as its outcome says; its perfdata is its time.

    A step's time may have thresholds of its own (token_time): a step that worked but
    took too long is WARNING or CRITICAL.
    """

    def __init__(self, time_limits: dict[str, tuple[Range, Range]] | None = None) -> None:
        super().__init__("step")
        self.time_limits = time_limits or {}

    def evaluate(self, metric: Metric, resource: GatewayRun) -> Result:
        outcome = resource.outcome(metric.name)
        if concern := outcome.concern:
            assert resource.report is not None
            where = outcome.target or resource.report.target
            hint = f"{outcome.name} on {where}: {concern.headline()}"
            return Result(NAGIOS_STATES[outcome.state], hint, metric)
        warn, crit = self.time_limits.get(metric.name, (Range(), Range()))
        for state, limit, word in ((nagiosplugin.Critical, crit, "critical"),
                                   (nagiosplugin.Warn, warn, "warning")):
            if limit != Range() and not limit.match(metric.value):
                return Result(state, f"{metric.name.removesuffix('_time')} took "
                              f"{metric.value:.2f}s ({word} outside {limit})", metric)
        return Result(nagiosplugin.Ok, None, metric)

    def performance(self, metric: Metric, resource: GatewayRun) -> Performance:
        warn, crit = self.time_limits.get(metric.name, (None, None))
        return Performance(metric.name, metric.value, metric.uom, warn or None, crit or None,
                           min=0)


class DaysLeftContext(ScalarContext):
    """Context: days left before something expires; thresholds are 'at least N days'.

    Perfdata carries them as N: ranges, so graphers read "alert below N". Whatever the
    thresholds, something that has already expired is CRITICAL.
    """

    def __init__(self, name: str, what: str, warn_days: int, crit_days: int) -> None:
        super().__init__(name, f"{warn_days}:", f"{crit_days}:")
        self.what, self.warn_days, self.crit_days = what, warn_days, crit_days

    def evaluate(self, metric: Metric, resource: GatewayRun) -> Result:
        days = int(metric.value)
        state = nagiosplugin.Critical if days < 0 else super().evaluate(metric, resource).state
        when = f"expired {-days} days ago" if days < 0 else f"expires in {days} days"
        hint = f"{self.what} {when} (warning below {self.warn_days}, critical below " \
               f"{self.crit_days})" if state != nagiosplugin.Ok else None
        return Result(state, hint, metric)


class GatewaySummary(Summary):
    """Summary: the first line names what was checked, or the link that broke; -v adds steps."""

    def __init__(self, run: GatewayRun, settings: Settings) -> None:
        self.run = run
        self.settings = settings
        self.verbosity = settings.verbosity

    @property
    def report(self) -> Report:
        assert self.run.report is not None
        return self.run.report

    def ok(self, results: nagiosplugin.Results) -> str:
        report = self.report
        briefs = [(o.name, o.brief) for o in report.outcomes if o.brief]
        return fit_ok(report.mode, report.target, briefs, f"in {report.total_time:.2f}s",
                      line_budget("ok"))

    def problem(self, results: nagiosplugin.Results) -> str:
        worst = results.first_significant
        budget = line_budget(str(worst.state))
        if worst.context.name == "step" and worst.metric is not None:
            outcome = self.run.outcome(worst.metric.name)
            if outcome.concern:
                return fit_problem(outcome.name, outcome.target or self.report.target,
                                   outcome.concern, budget)
        named = worst.context.name == "step" or isinstance(worst.context, DaysLeftContext)
        return fit_text(worst.hint if worst.hint and named else str(worst), budget)

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        lines: list[str] = []
        judged = thresholds_by_step(self.report, results)
        for outcome in self.report.outcomes:
            lines.extend(step_lines(outcome, self.verbosity, judged.pop(outcome.name, [])))
        for result in judged.pop(None, []):  # the run as a whole: its total time
            lines.append(f"{'total':<9} {result_state(result).name:<8} "
                         f"{self.report.total_time:7.3f}s  {result}")
            lines.extend(threshold_lines(result)[1:])
        lines.extend(f"note: {note}" for note in settings_notes(self.settings))
        if self.verbosity >= 3:  # the effective settings, after profile and options merged
            lines.append("settings: " + ", ".join(
                f"{name}={format_fact(value)}" for name, value in self.settings.shown().items()))
        return lines


def result_state(result: Result) -> State:
    return State(result.state.code)


def thresholds_by_step(report: Report,
                       results: Iterable[Result]) -> dict[str | None, list[Result]]:
    """The values over their thresholds, by the step that measured them (None: the run's).

    A step's own failure or advisory is its outcome's to tell, not repeated here.
    """
    owner: dict[str, str] = {}
    for outcome in report.outcomes:
        owner[perf_label(outcome.name)] = outcome.name
        owner.update(dict.fromkeys(outcome.metrics, outcome.name))
    concerned = {outcome.name for outcome in report.outcomes if outcome.concern}
    judged: dict[str | None, list[Result]] = {}
    for result in results:
        if result.state == nagiosplugin.Ok or result.metric is None:
            continue
        step = owner.get(result.metric.name)
        if result.context.name == "step" and step in concerned:
            continue
        judged.setdefault(step, []).append(result)
    return judged


def result_words(result: Result) -> str:
    """Our contexts write whole sentences as hints; nagiosplugin's own adds the value."""
    own = isinstance(result.context, DaysLeftContext | StepContext)
    return result.hint if own and result.hint else str(result)


def threshold_lines(result: Result) -> list[str]:
    """A value over its threshold, under the step that measured it, and what to do."""
    lines = [f"{'':<9} {result.state}: {result_words(result)}"]
    if fix := THRESHOLD_FIXES.get(result.metric.name if result.metric else ""):
        lines.append(f"{'':<9} fix: {fix}")
    return lines


def step_state(outcome: StepOutcome, thresholds: Sequence[Result] = ()) -> State:
    """What the step produced: its outcome, and the values it measured judged."""
    return max([outcome.state, *map(result_state, thresholds)])


def step_lines(outcome: StepOutcome, verbosity: int,
               thresholds: Sequence[Result] = ()) -> list[str]:
    state = step_state(outcome, thresholds).name
    facts = {**outcome.facts, **(outcome.details if verbosity >= 2 else {})}
    words = outcome.diagnosis.headline() if outcome.diagnosis else outcome.brief
    detail = "; ".join(f"{key}={format_fact(value)}" for key, value in facts.items())
    text = " - ".join(part for part in (words, detail) if part)
    lines = [f"{outcome.name:<9} {state:<8} {outcome.elapsed:7.3f}s  {text}".rstrip()]
    if outcome.advisory:
        label = outcome.advisory.state.name.lower() if outcome.advisory.state else "note"
        lines.append(f"{'':<9} {label}: {outcome.advisory.headline()}")
    if (concern := outcome.concern) and concern.fix:
        lines.append(f"{'':<9} fix: {concern.fix}")
    for result in thresholds:
        lines.extend(threshold_lines(result))
    if verbosity >= 2:
        lines.extend(f"{'':<9} {line}" for line in outcome.dialogue)
    if verbosity >= 3 and outcome.detail:
        lines.extend(outcome.detail.rstrip().splitlines())
    return lines


def format_fact(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def build_check(settings: Settings, run: Callable[[], Report],
                redact: Callable[[str], str] = str) -> nagiosplugin.Check:
    """The nagiosplugin check; redact masks the run's secrets (cli passes its Redactor)."""
    gateway = GatewayRun(run, redact)
    warn_days, crit_days = settings.certificate_days
    time_limits = {}
    credential_contexts = []
    if settings.oauth:
        time_limits["token_time"] = (Range(settings.oauth.token_warning or ""),
                                     Range(settings.oauth.token_critical or ""))
        secret_warn, secret_crit = settings.oauth.secret_days
        credential_contexts = [
            DaysLeftContext("secret_days", "client secret", secret_warn, secret_crit),
            DaysLeftContext("cert_credential_days", "client certificate", secret_warn,
                            secret_crit)]
    return nagiosplugin.Check(
        gateway,
        StepContext(time_limits),
        ScalarContext("token_ttl"),
        ScalarContext("total_time", settings.warning, settings.critical,
                      fmt_metric="total time {valueunit}"),
        DaysLeftContext("cert_days", "server certificate", warn_days, crit_days),
        *credential_contexts,
        GatewaySummary(gateway, settings),
        name="MAILGW",
    )


# --- --format json ----------------------------------------------------------------------------

# Raised when a key changes meaning or goes away; new keys do not raise it.
SCHEMA_VERSION = 1
NOT_RUN = "NOT_RUN"


def settings_notes(settings: Settings | None) -> list[str]:
    """What the settings are worth knowing about without changing the state."""
    return list(settings.notes) if settings else []


def as_json(check: nagiosplugin.Check, settings: Settings, redact: Callable[[str], str]) -> str:
    """The whole outcome for scripts and incident tooling (after the check has run)."""
    gateway = next(r for r in check.resources if isinstance(r, GatewayRun))
    report = gateway.report
    assert report is not None
    verbosity = settings.verbosity
    judged = thresholds_by_step(report, check.results)
    ran = {outcome.name: step_document(outcome, verbosity, judged.get(outcome.name, []),
                                       report.target)
           for outcome in report.outcomes}
    steps = [ran.pop(name, None) or not_run_document(name) for name in report.planned]
    return dump(redact, document(
        State(check.exitcode), check.summary_str, settings, steps=[*steps, *ran.values()],
        target=report.target, total_time=round(report.total_time, 6),
        perfdata=check.perfdata, values=perfdata_values(check)))


def document(state: State, summary: str, settings: Settings | None, *,
             steps: list[dict[str, Any]] | None = None, target: str | None = None,
             total_time: float | None = None, perfdata: list[str] | None = None,
             values: list[dict[str, Any]] | None = None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
    """Schema version 1; README.md, section "JSON output", documents every key."""
    return {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "state": state.name,
        "exit_code": int(state),
        "summary": summary,
        "mode": settings.mode if settings else None,
        "target": target,
        "total_time": total_time,
        "steps": steps or [],
        "notes": settings_notes(settings),
        "perfdata": perfdata or [],
        "perfdata_values": values or [],
        "error": error,
    }


def step_document(outcome: StepOutcome, verbosity: int, thresholds: Sequence[Result] = (),
                  chain_target: str | None = None) -> dict[str, Any]:
    concern = outcome.concern
    return {
        "name": outcome.name,
        "state": step_state(outcome, thresholds).name,
        "started": round(outcome.started, 6),
        "elapsed": round(outcome.elapsed, 6),
        "target": outcome.target or chain_target,  # the host this step talked to
        "brief": outcome.brief,
        "facts": {**outcome.facts, **outcome.details},
        "problem": concern.problem if concern else None,
        "reply": concern.reply if concern else None,
        "fix": concern.fix if concern else None,
        "dialogue": outcome.dialogue if verbosity >= 2 else [],
        "traceback": outcome.detail if verbosity >= 3 else None,
    }


def not_run_document(name: str) -> dict[str, Any]:
    """A step the mode planned that did not run: the chain broke before it, or time ran out."""
    return {
        "name": name, "state": NOT_RUN, "started": None, "elapsed": None, "target": None,
        "brief": "", "facts": {}, "problem": None, "reply": None, "fix": None, "dialogue": [],
        "traceback": None,
    }


def perfdata_values(check: nagiosplugin.Check) -> list[dict[str, Any]]:
    """The perfdata as numbers: what a script would otherwise parse out of the strings."""
    values = []
    for result in check.results:
        performance = result.metric.performance() if result.metric else None
        if performance:
            values.append(perf_value(performance))
    return sorted(values, key=lambda value: value["label"])


def perf_value(performance: Performance) -> dict[str, Any]:
    return {
        "label": performance.label,
        "value": number(performance.value),
        "unit": performance.uom or None,
        "warn": str(performance.warn) or None,
        "crit": str(performance.crit) or None,
        "min": number(performance.min),
        "max": number(performance.max),
    }


def number(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return round(float(value), 6)


def dump(redact: Callable[[str], str], content: dict[str, Any]) -> str:
    # Masked value by value: a secret escaped by JSON would slip past the stream's mask.
    return json.dumps(redacted(content, redact), indent=2)


def redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """The value with every string masked, and anything JSON cannot hold as a string."""
    if isinstance(value, dict):
        return {redact(str(key)): redacted(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redacted(item, redact) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return redact(str(value))


# --- when the check cannot judge the gateway ----------------------------------------------------

class Writable(Protocol):
    def write(self, text: str, /) -> int: ...


@dataclass(frozen=True)
class Failure:
    """Why there is no judgement of the gateway: bad input, the run's watchdog, our own bug."""

    kind: str  # bad_input, timeout, interrupted, internal_error
    message: str
    error: BaseException | None = None  # its traceback is shown at -vvv


def run_json(check: nagiosplugin.Check, settings: Settings, watchdog: int,
             redact: Callable[[str], str], out: Writable) -> int:
    """Runs the check under the same watchdog as the Nagios form, prints JSON, the exit code."""
    from nagiosplugin.platform import with_timeout

    with_timeout(watchdog, check)
    out.write(as_json(check, settings, redact) + "\n")
    return int(check.exitcode)


def write_failure(failure: Failure, settings: Settings | None, argv: Sequence[str] | None,
                  redact: Callable[[str], str], out: Writable) -> None:
    """UNKNOWN in the form asked for; before the options were read, as far as they can tell."""
    output_format, verbosity = (settings.output_format, settings.verbosity) if settings \
        else requested_output(argv)
    trace = None
    if failure.error is not None and verbosity >= 3:
        import traceback  # costs an import on every run otherwise

        trace = "".join(traceback.format_exception(failure.error))
    message = one_line(failure.message)  # a file name may hold a line break
    summary = fit_text(message, line_budget(State.UNKNOWN.name))
    if output_format == "json":
        error = {"kind": failure.kind, "message": failure.message, "traceback": trace}
        out.write(dump(redact, document(State.UNKNOWN, summary, settings, error=error)) + "\n")
        return
    out.write(f"{PREFIX} UNKNOWN - {summary}\n")
    if summary != message:
        out.write(f"{message}\n")  # all of it, as long output
    if verbosity >= 1:
        for note in settings_notes(settings):
            out.write(f"note: {note}\n")
    if trace:
        out.write(trace)


def requested_output(argv: Sequence[str] | None) -> tuple[str, int]:
    """--format and -v as typed, for a failure before the options could be parsed."""
    args = list(sys.argv[1:] if argv is None else argv)
    output_format, verbosity = "nagios", 0
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--format" and index + 1 < len(args):
            output_format = args[index + 1]
        elif arg.startswith("--format="):
            output_format = arg.partition("=")[2]
        elif arg == "--verbose":
            verbosity += 1
        elif re.fullmatch(r"-v+", arg):
            verbosity += len(arg) - 1
    return output_format, verbosity
