"""nagiosplugin glue: step outcomes become metrics, states, perfdata and words.

The Resource runs the mode's chain and cleans what the servers said, the Contexts judge
each step and each value with a threshold, the Summary words the first line (first_line.py
keeps it short) and, at -v, the long output.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import nagiosplugin
from nagiosplugin import Context, Metric, Performance, Range, Result, ScalarContext, Summary

from check_mailgw.first_line import fit_ok, fit_problem, fit_text, line_budget
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


class PlainDecimal(float):
    """A float that prints without exponent: perfdata parsers do not read '3e-05'."""

    def __str__(self) -> str:
        return f"{self:.6f}".rstrip("0").rstrip(".") or "0"


def seconds(value: float) -> PlainDecimal:
    return PlainDecimal(round(value, 6))


def perf_label(step: str) -> str:
    return PERF_LABELS.get(step, f"{step}_time")


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
    if type(value) in (list, tuple):
        return type(value)(printable(item, redact) for item in value)
    return value


def printable_diagnosis(diagnosis: Diagnosis | None,
                        redact: Callable[[str], str]) -> Diagnosis | None:
    if diagnosis is None:
        return None
    return diagnosis._replace(
        problem=printable(diagnosis.problem, redact),
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
    if type(value) in (list, tuple):  # a NamedTuple (the app's settings) speaks for itself
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


def settings_notes(settings: Settings | None) -> list[str]:
    """What the settings are worth knowing about without changing the state."""
    return list(settings.notes) if settings else []
