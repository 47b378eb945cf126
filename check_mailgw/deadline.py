"""The run's time budget: every network operation asks it how long it may wait."""

from __future__ import annotations

import time


class DeadlineExceeded(TimeoutError):
    """The run's -t budget ran out while waiting for something."""

    def __init__(self, waiting_for: str) -> None:
        super().__init__(f"no answer in time while waiting for {waiting_for}")
        self.waiting_for = waiting_for


class Deadline:
    """Domain model: a point in time after which the run must give up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = time.monotonic()
        self._end = self._start + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def budget(self, waiting_for: str, cap: float | None = None) -> float:
        """Seconds a blocking call may take now; raises once nothing is left."""
        left = self.remaining()
        if left <= 0.0:
            raise DeadlineExceeded(waiting_for)
        return left if cap is None else min(left, cap)
