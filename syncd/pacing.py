"""Pacing and retrying calls to a CRM, shared by every connector.

`Pacer` keeps a connector under a self-imposed number of calls per rolling window, so that a
healthy run sees no 429 at all. A call made in a `slot()` is counted from when its answer came
back: the server counted it when it arrived, which is no later, so the window needs no margin
for the network's latency and the allowance can be used whole. `retrying()` is the tenacity
policy for `RetryableError`: it honours the server's `retry_after` when given, else backs off
exponentially with jitter. Clocks and sleeps are injected, so tests never sleep.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import tenacity

from syncd.errors import RetryableError


class Pacer:
    """At most `limit` calls in any `window` seconds; `wait()` blocks until one may go."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError(f"a pacer needs a positive limit and window, got {limit}/{window}s")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def wait(self) -> float:
        """Block until a call fits in the window, then count it. Returns the seconds waited."""
        return self._take()[0]

    @contextmanager
    def slot(self) -> Iterator[float]:
        """`wait()`, then make the call inside: it is counted from when it returns (answered
        or failed), not from when it left. Yields the seconds waited."""
        waited, sent = self._take()
        try:
            yield waited
        finally:
            with self._lock:
                with contextlib.suppress(ValueError):  # a call slower than the window left it
                    self._sent.remove(sent)
                # No stamp in the window is later than now: appended, the window stays sorted.
                self._sent.append(self._clock())

    def _take(self) -> tuple[float, float]:
        """Block until a call fits, count it now: (seconds waited, the stamp counted)."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self.waited += waited
                    return waited, now
                pause = self._sent[0] + self.window - now
                self._sleep(pause)
                waited += pause


class _WaitRetryAfter(tenacity.wait.wait_base):
    """The server's Retry-After when it gave one, else exponential backoff with jitter."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return max(0.0, float(error.retry_after))
        return float(self.fallback(retry_state))


def retrying(
    *,
    attempts: int = 6,
    max_wait: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
) -> tenacity.Retrying:
    """A tenacity policy: retry `RetryableError` up to `attempts` times, then re-raise it."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        wait=_WaitRetryAfter(tenacity.wait_random_exponential(multiplier=0.5, max=max_wait)),
        stop=tenacity.stop_after_attempt(attempts),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
