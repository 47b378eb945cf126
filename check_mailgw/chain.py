"""The chain runner: runs a mode's steps in order, times them, stops at the first broken link.

A step may run in the background: it starts with the chain, beside the steps before the
first one that needs it, which then waits for it. The token request of the OAuth modes
overlaps DNS, TCP and TLS this way, so the wall time is about max(token, transport). A
background step may itself need one that started before it (the expiry lookup needs the
token): it waits in its own thread, and does not run if that step failed. When the chain
breaks, the background steps under way are still waited for, so that what a run reports
does not depend on which thread was quicker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from check_mailgw.deadline import Deadline, DeadlineExceeded
from check_mailgw.outcome import Diagnosis, Passed, Report, State, StepFailed, StepOutcome


class Dialogue:
    """The protocol dialogue of the run so far, already redacted; steps append to it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


class Step(NamedTuple):
    """Domain model: one link of the chain: a name, what it waits for, and the work."""

    name: str
    doing: str
    run: Callable[[], Passed]
    silence_hint: str | None = None  # what a silent peer at this step usually means
    background: bool = False  # starts with the chain instead of after the step before
    needs: tuple[str, ...] = ()  # earlier background steps that must pass before this one
    dialogue: Dialogue | None = None  # its own, for a background step; else the chain's
    target: str | None = None  # the host it talks to, when not the chain's


def timeout_diagnosis(deadline: Deadline, step: Step, waiting_for: str, state: State) -> Diagnosis:
    return Diagnosis(
        state,
        f"timed out after {deadline.seconds:g}s (-t) waiting for {waiting_for}",
        fix=step.silence_hint or "the server or the network is too slow or silent: check the "
        "server's load and any firewall between, or raise -t if the gateway is known to be slow",
    )


def run_step(step: Step, deadline: Deadline, timeout_state: State,
             dialogue: Dialogue | None = None) -> StepOutcome:
    """Runs one step; whatever happens becomes its outcome, never an exception."""
    started = time.monotonic()
    outcome = StepOutcome(step.name, 0.0, started=deadline.elapsed(), target=step.target)
    try:
        deadline.budget(step.doing)
        passed = step.run()
        outcome.brief, outcome.facts = passed.brief, passed.facts
        outcome.metrics, outcome.details = passed.metrics, passed.details
        outcome.advisory = passed.advisory
    except StepFailed as failed:
        outcome.diagnosis, outcome.facts = failed.diagnosis, failed.facts
        outcome.details = failed.details
    except DeadlineExceeded as exceeded:
        outcome.diagnosis = timeout_diagnosis(deadline, step, exceeded.waiting_for, timeout_state)
        outcome.timed_out = True
    except TimeoutError:
        outcome.diagnosis = timeout_diagnosis(deadline, step, step.doing, timeout_state)
        outcome.timed_out = True
    except Exception as error:  # a bug of ours: one line now, the traceback at -vvv
        outcome.diagnosis = Diagnosis(
            State.UNKNOWN,
            f"internal error in step {step.name}: {type(error).__name__}: {error}",
            fix="please report this with the output of -vvv",
        )
        import traceback  # only a run that hit a bug pays for it

        outcome.detail = traceback.format_exc()
    outcome.elapsed = time.monotonic() - started
    if (lines := step.dialogue or dialogue) is not None:
        outcome.dialogue = lines.take()
    return outcome


class BackgroundStep:
    """A step running in its own thread; the chain collects its outcome when it needs it."""

    def __init__(self, step: Step, deadline: Deadline, timeout_state: State,
                 needs: Sequence[BackgroundStep] = ()) -> None:
        self.step = step
        self.needs = needs
        self.outcome: StepOutcome | None = None
        self.skipped = False  # a step it needs failed, so it did not run
        self._thread = threading.Thread(
            target=self._run, args=(deadline, timeout_state), name=f"step-{step.name}",
            daemon=True,  # bounded by the deadline; never keeps the process alive past it
        )
        self._thread.start()

    def _run(self, deadline: Deadline, timeout_state: State) -> None:
        for need in self.needs:
            need._thread.join(deadline.remaining())
            if need.outcome is None or need.outcome.diagnosis:
                self.skipped = True
                return
        self.outcome = run_step(self.step, deadline, timeout_state)

    def join(self, deadline: Deadline, timeout_state: State) -> StepOutcome | None:
        """Its outcome, waiting at most what is left of the run; None if it did not run."""
        self._thread.join(deadline.remaining())
        if self.outcome is not None or self.skipped:
            return self.outcome
        return StepOutcome(self.step.name, deadline.elapsed(), target=self.step.target,
                           timed_out=True, diagnosis=timeout_diagnosis(
                               deadline, self.step, self.step.doing, timeout_state))

    def finish(self, deadline: Deadline) -> StepOutcome | None:
        """Its outcome once it has finished, waiting at most what is left of the run; None if
        it did not run, or is still running when the deadline ends."""
        self._thread.join(deadline.remaining())
        if self._thread.is_alive() or (self.outcome is not None and self.outcome.timed_out):
            return None  # whether it gave up a moment before the end or after is chance
        return self.outcome


def run_chain(
    mode: str,
    target: str,
    steps: Sequence[Step],
    deadline: Deadline,
    dialogue: Dialogue,
    timeout_state: State = State.UNKNOWN,
) -> Report:
    running: dict[str, BackgroundStep] = {}
    for step in steps:
        if step.background:
            needs = [running[name] for name in step.needs if name in running]
            running[step.name] = BackgroundStep(step, deadline, timeout_state, needs)
    outcomes: list[StepOutcome] = []

    def collect(name: str) -> StepOutcome | None:
        outcome = running.pop(name).join(deadline, timeout_state)
        if outcome is not None:
            outcomes.append(outcome)
        return outcome

    for step in steps:
        if step.background:
            continue
        waited = [collect(name) for name in step.needs if name in running]
        if any(o is None or o.diagnosis for o in waited):
            break
        outcome = run_step(step, deadline, timeout_state, dialogue)
        outcomes.append(outcome)
        if outcome.diagnosis:
            break
    else:
        for name in list(running):  # nothing needed them: they still belong to the run
            collect(name)
    for background in running.values():
        # The chain broke first. What is under way still belongs to the run, and waiting for
        # it (within the deadline) makes the report the same at every run: a failure there
        # counts in chain order, and the expiry lookup's perfdata does not come and go. A step
        # still running when the deadline ends is left out: the chain's break is the news.
        if (outcome := background.finish(deadline)) is not None:
            outcomes.append(outcome)
    order = {step.name: index for index, step in enumerate(steps)}
    outcomes.sort(key=lambda outcome: order[outcome.name])  # the mode's order, not the finish
    return Report(mode, target, outcomes, deadline.elapsed(), [step.name for step in steps])
