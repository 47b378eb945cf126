"""The chain runner: runs a mode's steps in order, times them, stops at the first broken link."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.outcome import Diagnosis, Passed, Report, State, StepFailed, StepOutcome


@dataclass(frozen=True)
class Step:
    """Domain model: one link of the chain: a name, what it waits for, and the work."""

    name: str
    doing: str
    run: Callable[[], Passed]
    silence_hint: str | None = None  # what a silent peer at this step usually means


class Dialogue:
    """The protocol dialogue of the run so far, already redacted; steps append to it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def timeout_diagnosis(deadline: Deadline, step: Step, waiting_for: str, state: State) -> Diagnosis:
    return Diagnosis(
        state,
        f"timed out after {deadline.seconds:g}s (-t) waiting for {waiting_for}",
        fix=step.silence_hint or "the server or the network is too slow or silent: check the "
        "server's load and any firewall between, or raise -t if the gateway is known to be slow",
    )


def run_chain(
    mode: str,
    target: str,
    steps: Sequence[Step],
    deadline: Deadline,
    dialogue: Dialogue,
    timeout_state: State = State.UNKNOWN,
) -> Report:
    outcomes: list[StepOutcome] = []
    for step in steps:
        started = time.monotonic()
        outcome = StepOutcome(step.name, 0.0)
        try:
            deadline.budget(step.doing)
            passed = step.run()
            outcome.brief, outcome.facts = passed.brief, passed.facts
            outcome.metrics, outcome.details = passed.metrics, passed.details
        except StepFailed as failed:
            outcome.diagnosis, outcome.facts = failed.diagnosis, failed.facts
        except DeadlineExceeded as exceeded:
            outcome.diagnosis = timeout_diagnosis(
                deadline, step, exceeded.waiting_for, timeout_state
            )
        except TimeoutError:
            outcome.diagnosis = timeout_diagnosis(deadline, step, step.doing, timeout_state)
        except Exception as error:  # a bug of ours: one line now, the traceback at -vvv
            outcome.diagnosis = Diagnosis(
                State.UNKNOWN,
                f"internal error in step {step.name}: {type(error).__name__}: {error}",
                fix="please report this with the output of -vvv",
            )
            outcome.detail = traceback.format_exc()
        outcome.elapsed = time.monotonic() - started
        outcome.dialogue = dialogue.take()
        outcomes.append(outcome)
        if outcome.diagnosis:
            break
    return Report(mode, target, outcomes, deadline.elapsed())
