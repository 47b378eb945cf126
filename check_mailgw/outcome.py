"""What a step of the chain found: the values the output layer judges and words.

Plain classes and NamedTuples, not dataclasses: defining a dataclass runs generated code on
every import, and the dataclasses module pulls in inspect; a check pays for both each run.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple


class State(enum.IntEnum):
    """Domain model: a monitoring state, ordered so that max() is the worst."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class Diagnosis(NamedTuple):
    """Domain model: why a link of the chain is broken, in the server's words, and the fix."""

    state: State
    problem: str
    reply: str | None = None
    fix: str | None = None

    def headline(self) -> str:
        return f"{self.problem}: {self.reply}" if self.reply else self.problem


class StepFailed(Exception):
    """Raised by a step when its link of the chain is broken."""

    def __init__(self, diagnosis: Diagnosis, facts: dict[str, Any] | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(diagnosis.headline())
        self.diagnosis = diagnosis
        self.facts = facts or {}
        self.details = details or {}


class Passed:
    """What a step that worked reports: a brief for the first line, facts (-v), details (-vv).

    An advisory is a warning about a link that works today (a retirement date, a lookup
    that was refused): it sets the step's state but does not stop the chain.
    """

    __slots__ = ("advisory", "brief", "details", "facts", "metrics")

    def __init__(self, brief: str = "", facts: dict[str, Any] | None = None,
                 metrics: dict[str, float] | None = None, details: dict[str, Any] | None = None,
                 advisory: Diagnosis | None = None) -> None:
        self.brief = brief
        self.facts: dict[str, Any] = {} if facts is None else facts
        self.metrics: dict[str, float] = {} if metrics is None else metrics
        self.details: dict[str, Any] = {} if details is None else details
        self.advisory = advisory


class StepOutcome:
    """Domain model: one step's result: timing, facts, and a diagnosis when it failed."""

    __slots__ = ("advisory", "brief", "detail", "details", "diagnosis", "dialogue", "elapsed",
                 "facts", "metrics", "name", "started", "target", "timed_out")

    def __init__(self, name: str, elapsed: float, brief: str = "",
                 facts: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                 details: dict[str, Any] | None = None, diagnosis: Diagnosis | None = None,
                 advisory: Diagnosis | None = None, dialogue: list[str] | None = None,
                 detail: str | None = None, started: float = 0.0, target: str | None = None,
                 timed_out: bool = False) -> None:
        self.name = name
        self.elapsed = elapsed
        self.brief = brief
        self.facts: dict[str, Any] = {} if facts is None else facts
        self.metrics: dict[str, float] = {} if metrics is None else metrics
        self.details: dict[str, Any] = {} if details is None else details
        self.diagnosis = diagnosis
        self.advisory = advisory
        self.dialogue: list[str] = [] if dialogue is None else dialogue
        self.detail = detail
        self.started = started  # seconds since the run began
        self.target = target  # the host it talked to, when not the chain's
        self.timed_out = timed_out  # the run's deadline ended it

    @property
    def state(self) -> State:
        if self.diagnosis:
            return self.diagnosis.state
        return self.advisory.state if self.advisory else State.OK

    @property
    def concern(self) -> Diagnosis | None:
        """What the output should say about this step: its failure, else its advisory."""
        return self.diagnosis or self.advisory


class Report:
    """Domain model: everything a run found, in chain order."""

    __slots__ = ("mode", "outcomes", "planned", "target", "total_time")

    def __init__(self, mode: str, target: str, outcomes: list[StepOutcome], total_time: float,
                 planned: list[str] | None = None) -> None:
        self.mode = mode
        self.target = target
        self.outcomes = outcomes
        self.total_time = total_time
        self.planned: list[str] = [] if planned is None else planned  # every step meant to run

    @property
    def failure(self) -> StepOutcome | None:
        return next((o for o in self.outcomes if o.diagnosis), None)

    @property
    def metrics(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for outcome in self.outcomes:
            merged.update(outcome.metrics)
        return merged
