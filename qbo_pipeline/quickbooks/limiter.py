"""Per-realm request limiter: QBO's 500 requests a minute and 10 in flight, client side.

QBO meters every request a realm receives from an app, so every request a run makes for a
realm takes a slot from the same limiter (`limiter_for`), whichever thread makes it.
Staying under the limits costs a short wait here instead of a 429 and a 60 s penalty.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFAULT_REQUESTS_PER_MINUTE = 500
DEFAULT_MAX_IN_FLIGHT = 10


@dataclass(frozen=True)
class Limits:
    requests_per_window: int = DEFAULT_REQUESTS_PER_MINUTE
    window_seconds: float = 60.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT


DEFAULT_LIMITS = Limits()


class RealmLimiter:
    """A sliding-window rate limit plus a cap on concurrent requests, shared by threads."""

    def __init__(
        self, limits: Limits = DEFAULT_LIMITS, clock: Callable[[], float] = time.monotonic
    ):
        self.limits = limits
        self._clock = clock
        self._starts: deque[float] = deque()
        self._in_flight = threading.BoundedSemaphore(limits.max_in_flight)
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one in-flight slot and one entry of the rate window for a request."""
        with self._in_flight:
            self._reserve_window_entry()
            yield

    def _reserve_window_entry(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                horizon = now - self.limits.window_seconds
                while self._starts and self._starts[0] <= horizon:
                    self._starts.popleft()
                if len(self._starts) < self.limits.requests_per_window:
                    self._starts.append(now)
                    return
                wait = self._starts[0] - horizon
            time.sleep(min(max(wait, 0.001), 1.0))


_registry: dict[tuple[str, str, Limits], RealmLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(base_url: str, realm_id: str, limits: Limits = DEFAULT_LIMITS) -> RealmLimiter:
    """The process-wide limiter of one realm at one API host."""
    key = (base_url, realm_id, limits)
    with _registry_lock:
        if key not in _registry:
            _registry[key] = RealmLimiter(limits)
        return _registry[key]
