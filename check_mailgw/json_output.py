"""--format json: the whole outcome as one document for scripts and incident tooling.

README.md, section "JSON output", documents every key.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import nagiosplugin
from nagiosplugin import Performance, Result

from check_mailgw import __version__
from check_mailgw.nagios_check import GatewayRun, settings_notes, step_state, thresholds_by_step
from check_mailgw.outcome import State, StepOutcome

if TYPE_CHECKING:
    from check_mailgw.settings import Settings

# Raised when a key changes meaning or goes away; new keys do not raise it.
SCHEMA_VERSION = 1
NOT_RUN = "NOT_RUN"


class Writable(Protocol):
    def write(self, text: str, /) -> int: ...


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


def run_json(check: nagiosplugin.Check, settings: Settings, watchdog: int,
             redact: Callable[[str], str], out: Writable) -> int:
    """Runs the check under the same watchdog as the Nagios form, prints JSON, the exit code."""
    from nagiosplugin.platform import with_timeout

    with_timeout(watchdog, check)
    out.write(as_json(check, settings, redact) + "\n")
    return int(check.exitcode)
