"""What a step of the chain found: the values the output layer judges and words."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class State(enum.IntEnum):
    """Domain model: a monitoring state, ordered so that max() is the worst."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Diagnosis:
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


@dataclass
class Passed:
    """What a step that worked reports: a brief for the first line, facts (-v), details (-vv).

    An advisory is a warning about a link that works today (a retirement date, a lookup
    that was refused): it sets the step's state but does not stop the chain.
    """

    brief: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    advisory: Diagnosis | None = None


@dataclass
class StepOutcome:
    """Domain model: one step's result: timing, facts, and a diagnosis when it failed."""

    name: str
    elapsed: float
    brief: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    diagnosis: Diagnosis | None = None
    advisory: Diagnosis | None = None
    dialogue: list[str] = field(default_factory=list)
    detail: str | None = None
    started: float = 0.0  # seconds since the run began
    target: str | None = None  # the host it talked to, when not the chain's
    timed_out: bool = False  # the run's deadline ended it

    @property
    def state(self) -> State:
        if self.diagnosis:
            return self.diagnosis.state
        return self.advisory.state if self.advisory else State.OK

    @property
    def concern(self) -> Diagnosis | None:
        """What the output should say about this step: its failure, else its advisory."""
        return self.diagnosis or self.advisory


@dataclass
class Report:
    """Domain model: everything a run found, in chain order."""

    mode: str
    target: str
    outcomes: list[StepOutcome]
    total_time: float
    planned: list[str] = field(default_factory=list)  # every step the mode meant to run

    @property
    def failure(self) -> StepOutcome | None:
        return next((o for o in self.outcomes if o.diagnosis), None)

    @property
    def metrics(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for outcome in self.outcomes:
            merged.update(outcome.metrics)
        return merged
