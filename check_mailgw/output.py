"""nagiosplugin glue: step outcomes become metrics, states, perfdata and words."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import nagiosplugin
from nagiosplugin import Context, Metric, Performance, Range, Result, ScalarContext, Summary

from check_mailgw.outcome import Report, State, StepOutcome
from check_mailgw.settings import Settings

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


class GatewayRun(nagiosplugin.Resource):
    """Resource: runs the mode's chain once and yields a metric per step and per value judged."""

    def __init__(self, run: Callable[[], Report]) -> None:
        self._run = run
        self.report: Report | None = None

    @property
    def name(self) -> str:
        return "MAILGW"

    def outcome(self, label: str) -> StepOutcome:
        assert self.report is not None
        return next(o for o in self.report.outcomes if perf_label(o.name) == label)

    def probe(self) -> Iterator[Metric]:
        report = self.report = self._run()
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
        briefs = ", ".join(o.brief for o in report.outcomes if o.brief)
        return f"{report.mode} {report.target}: {briefs} in {report.total_time:.2f}s"

    def problem(self, results: nagiosplugin.Results) -> str:
        worst = results.first_significant
        named = worst.context.name == "step" or isinstance(worst.context, DaysLeftContext)
        return worst.hint if worst.hint and named else str(worst)

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        lines: list[str] = []
        for outcome in self.report.outcomes:
            lines.extend(step_lines(outcome, self.verbosity))
        for result in results:
            if result.state == nagiosplugin.Ok:
                continue
            if result.context.name == "step" and resource_concern(self.report, result):
                continue  # the step's own lines already say it
            lines.append(f"{result.state}: {result}")
            fix = THRESHOLD_FIXES.get(result.context.name)
            if result.context.name == "step":
                fix = THRESHOLD_FIXES.get(result.metric.name)
            if fix:
                lines.append(f"{'':<9} fix: {fix}")
        if self.verbosity >= 3:  # the effective settings, after profile and options merged
            lines.append("settings: " + ", ".join(
                f"{f.name}={format_fact(getattr(self.settings, f.name))}"
                for f in fields(self.settings)))
        return lines


def resource_concern(report: Report, result: nagiosplugin.Result) -> bool:
    """The result is a step whose outcome has a diagnosis or advisory of its own."""
    metric = result.metric
    return metric is None or any(
        perf_label(o.name) == metric.name and o.concern for o in report.outcomes)


def step_lines(outcome: StepOutcome, verbosity: int) -> list[str]:
    state = outcome.state.name
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


def build_check(settings: Settings, run: Callable[[], Report]) -> nagiosplugin.Check:
    gateway = GatewayRun(run)
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


def as_json(check: nagiosplugin.Check) -> str:
    """The whole outcome for scripts and incident tooling (after the check has run)."""
    gateway = next(r for r in check.resources if isinstance(r, GatewayRun))
    report = gateway.report
    assert report is not None
    document = {
        "state": str(check.state).upper(),
        "exit_code": check.exitcode,
        "summary": check.summary_str,
        "mode": report.mode,
        "target": report.target,
        "total_time": round(report.total_time, 6),
        "steps": [
            {
                "name": o.name,
                "state": o.state.name,
                "started": round(o.started, 6),
                "elapsed": round(o.elapsed, 6),
                "brief": o.brief,
                "facts": {**o.facts, **o.details},
                "problem": o.concern.problem if o.concern else None,
                "reply": o.concern.reply if o.concern else None,
                "fix": o.concern.fix if o.concern else None,
            }
            for o in report.outcomes
        ],
        "perfdata": check.perfdata,
    }
    return json.dumps(document, indent=2, default=str)
