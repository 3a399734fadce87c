"""Restart policies' books: backoff, give-up windows and the host-wide budget.

Pure (the caller passes the time, from trio's clock), so the arithmetic is
tested with trio's MockClock and no real sleeps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lxcflow.rules.model import RestartPolicy


class TokenBucket:
    """At most ``per_minute`` restarts a minute across all containers, in
    bursts of up to ``per_minute``: a mass failure cannot become a fork storm.

    :meth:`reserve` hands out tokens in order, and says how long the caller
    must wait for its own.
    """

    def __init__(self, per_minute: float, now: float) -> None:
        if not per_minute > 0:
            raise ValueError("the restart budget must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._tokens = self.capacity
        self._at = now

    def reserve(self, now: float) -> float:
        """Take a token; seconds to wait before using it (0: at once)."""
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def tokens(self, now: float) -> float:
        """Restarts that could go at once now (negative: owed to those waiting)."""
        return min(self.capacity, self._tokens + (now - self._at) * self.rate)


@dataclass
class RestartBook:
    """One restart policy's record of one container."""

    policy: RestartPolicy
    #: when each restart within the window was decided
    restarts: deque[float] = field(default_factory=deque)
    #: restarts since the last run that lasted ``reset_after``: the backoff step
    streak: int = 0
    running_since: float | None = None
    gave_up: bool = False
    #: when the pending restart is due (None: none pending)
    due: float | None = None

    def running(self, now: float) -> None:
        self.running_since = now
        self.due = None

    def died(self, now: float, random: float = 0.5) -> float | None:
        """A death that calls for a restart: the delay before it, or None
        once ``max_restarts`` restarts happened within the window (given up)."""
        if self.running_since is not None and now - self.running_since >= self.policy.reset_after:
            self.streak = 0
        self.running_since = None
        while self.restarts and now - self.restarts[0] >= self.policy.window:
            self.restarts.popleft()
        limit = self.policy.max_restarts
        if limit is not None and len(self.restarts) >= limit:
            self.gave_up = True
            self.due = None
            return None
        delay = self.policy.backoff.delay(self.streak, random)
        self.streak += 1
        self.restarts.append(now)
        self.due = now + delay
        return delay

    def describe(self, now: float) -> str:
        """One line for ``rules list``."""
        count = f"{len(self.restarts)} restart{'' if len(self.restarts) == 1 else 's'}"
        if self.gave_up:
            return f"gave up after {count}"
        text = f"{count} in the last {self.policy.window:g} s"
        if self.due is not None:
            text += f", next in {max(0.0, self.due - now):.1f} s"
        return text
